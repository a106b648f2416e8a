"""What the mouse does in each editor mode. A tool turns gestures into undo commands; it
never touches the catalog (the document autosaves when a command runs).

Tolerances are in *screen* pixels and converted with the view scale, so snapping and
picking feel the same at every zoom.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsRectItem

from casdesk.core.labels import geometry as ge
from casdesk.gui.editor import commands as cmd

if TYPE_CHECKING:
    from casdesk.gui.editor.canvas import EditorCanvas

log = logging.getLogger(__name__)
PICK_PX = 8  # how close (screen pixels) a click must be to a vertex or edge
SNAP_PX = 10  # snapping distance for new vertices (screen pixels)
CLOSE_PX = 10  # clicking this close to the first vertex closes a polygon


def _pen(colour: QColor, width: float = 2, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(colour, width, style)
    pen.setCosmetic(True)
    return pen


class Tool:
    name = "tool"
    cursor = Qt.CursorShape.ArrowCursor

    def __init__(self, canvas: EditorCanvas):
        self.canvas = canvas

    def press(self, pos: QPointF, event: QMouseEvent) -> None: ...
    def move(self, pos: QPointF, event: QMouseEvent) -> None: ...
    def release(self, pos: QPointF, event: QMouseEvent) -> None: ...
    def double_click(self, pos: QPointF, event: QMouseEvent) -> None: ...

    def key(self, event: QKeyEvent) -> bool:
        """Handle a key; True when used."""
        return False

    def cancel(self) -> None:
        """Drop any gesture in progress (mode switch, Esc)."""

    def tol(self, px: float) -> float:
        return px / max(self.canvas.zoom(), 1e-9)


# --------------------------------------------------------------------------- polygon
class PolygonTool(Tool):
    """Click adds a vertex; click the first vertex, double-click or Enter closes; Esc
    cancels; Backspace removes the last vertex. With ``cut`` the closed polygon is cut out of
    the shapes it overlaps (a hole when it lies inside one)."""

    name = "polygon"
    cursor = Qt.CursorShape.CrossCursor

    def __init__(self, canvas: EditorCanvas, cut: bool = False):
        super().__init__(canvas)
        self.cut = cut
        self.name = "cut" if cut else "polygon"
        self.points: list[tuple[float, float]] = []
        self.cursor_pos: tuple[float, float] | None = None
        self.preview = QGraphicsPathItem()
        self.preview.setPen(_pen(QColor(255, 255, 0) if not cut else QColor(0, 200, 255)))
        self.preview.setZValue(100)
        canvas.scene().addItem(self.preview)

    def press(self, pos: QPointF, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        xy = (pos.x(), pos.y())
        if len(self.points) >= 3 and np.hypot(xy[0] - self.points[0][0], xy[1] - self.points[0][1]) <= self.tol(CLOSE_PX):
            self.finish()
            return
        snapped = self.canvas.snap(xy)
        xy = snapped or xy
        if not self.points or xy != self.points[-1]:
            self.points.append(xy)
        self._draw()

    def move(self, pos: QPointF, event: QMouseEvent) -> None:
        if self.points:
            self.cursor_pos = (pos.x(), pos.y())
            self._draw()

    def double_click(self, pos: QPointF, event: QMouseEvent) -> None:
        self.finish()

    def key(self, event: QKeyEvent) -> bool:
        k = event.key()
        if k in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.points:
            self.finish()
            return True
        if k == Qt.Key.Key_Escape and self.points:
            self.cancel()
            return True
        if k == Qt.Key.Key_Backspace and self.points:
            self.points.pop()
            self._draw()
            return True
        return False

    def finish(self) -> None:
        pts = self.points
        self.cancel()
        if len(pts) < 3:
            return
        geom = ge.geometry_from_parts([[ge.open_ring(pts)]])
        if geom.is_empty:
            return
        if self.cut:
            self.canvas.cut_area(geom, "cut hole")
        else:
            self.canvas.add_geometry(geom, self.canvas.current_label)

    def cancel(self) -> None:
        self.points = []
        self.cursor_pos = None
        self.preview.setPath(QPainterPath())

    def _draw(self) -> None:
        path = QPainterPath()
        pts = list(self.points) + ([self.cursor_pos] if self.cursor_pos else [])
        if pts:
            path.addPolygon(QPolygonF([QPointF(x, y) for x, y in pts]))
            r = self.tol(3)
            for x, y in self.points[:1]:
                path.addEllipse(QPointF(x, y), r, r)
        self.preview.setPath(path)

    def dispose(self) -> None:
        self.canvas.scene().removeItem(self.preview)


# --------------------------------------------------------------------------- rectangles
class RectTool(Tool):
    """Drag a box, or click two corners (as LabelMe). ``purpose``: "rectangle" creates a
    shape, "grabcut" segments the box with GrabCut."""

    cursor = Qt.CursorShape.CrossCursor

    def __init__(self, canvas: EditorCanvas, purpose: str = "rectangle"):
        super().__init__(canvas)
        self.name = purpose
        self.start: tuple[float, float] | None = None
        self.dragging = False
        self.preview = QGraphicsRectItem()
        self.preview.setPen(_pen(QColor(255, 255, 0), 2, Qt.PenStyle.DashLine))
        self.preview.setZValue(100)
        canvas.scene().addItem(self.preview)

    def press(self, pos: QPointF, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        xy = (pos.x(), pos.y())
        if self.start is None:
            self.start = xy
            self.dragging = True
            self._draw(xy)
        else:
            self._finish(xy)

    def move(self, pos: QPointF, event: QMouseEvent) -> None:
        if self.start is not None:
            self._draw((pos.x(), pos.y()))

    def release(self, pos: QPointF, event: QMouseEvent) -> None:
        if self.start is None or not self.dragging:
            return
        self.dragging = False
        xy = (pos.x(), pos.y())
        if abs(xy[0] - self.start[0]) > self.tol(3) or abs(xy[1] - self.start[1]) > self.tol(3):
            self._finish(xy)

    def key(self, event: QKeyEvent) -> bool:
        if event.key() == Qt.Key.Key_Escape and self.start is not None:
            self.cancel()
            return True
        return False

    def _draw(self, xy: tuple[float, float]) -> None:
        assert self.start is not None
        self.preview.setRect(QRectF(QPointF(*self.start), QPointF(*xy)).normalized())

    def _finish(self, xy: tuple[float, float]) -> None:
        x0, y0 = self.start or xy
        self.cancel()
        box = (min(x0, xy[0]), min(y0, xy[1]), max(x0, xy[0]), max(y0, xy[1]))
        if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            return
        if self.name == "grabcut":
            self.canvas.assist_grabcut(box)
        else:
            ring = ge.open_ring([(box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])])
            self.canvas.add_geometry(ge.geometry_from_parts([[ring]]), self.canvas.current_label)

    def cancel(self) -> None:
        self.start = None
        self.dragging = False
        self.preview.setRect(QRectF())

    def dispose(self) -> None:
        self.canvas.scene().removeItem(self.preview)


# --------------------------------------------------------------------------- edit
class EditTool(Tool):
    """Select, drag vertices and shapes, Alt+click an edge to insert a vertex, Alt+Shift+click
    (or hover + Delete) to remove one, arrows nudge the selection."""

    name = "edit"

    def __init__(self, canvas: EditorCanvas):
        super().__init__(canvas)
        self.drag_vertex: tuple[int, ge.VertexRef, tuple[float, float]] | None = None
        self.drag_shapes: tuple[list[int], QPointF] | None = None
        self.hover: tuple[int, ge.VertexRef] | None = None

    def _vertex_at(self, xy: tuple[float, float]) -> tuple[int, ge.VertexRef] | None:
        for key in self.canvas.selected_keys():
            ref = ge.nearest_vertex(self.canvas.doc.shapes[key].parts, xy, self.tol(PICK_PX))
            if ref is not None:
                return key, ref
        return None

    def press(self, pos: QPointF, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        xy = (pos.x(), pos.y())
        mods = event.modifiers()
        alt = bool(mods & Qt.KeyboardModifier.AltModifier)
        shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
        hit = self._vertex_at(xy)
        if hit is not None and alt and shift:
            self.canvas.remove_vertex(*hit)
            return
        if hit is not None and not alt:
            key, ref = hit
            ring = self.canvas.doc.shapes[key].parts[ref.part][ref.ring]
            self.drag_vertex = (key, ref, (float(ring[ref.index, 0]), float(ring[ref.index, 1])))
            self.canvas.shape_items[key].fast = True
            return
        if alt and not shift:
            for key in self.canvas.selected_keys():
                edge = ge.nearest_edge(self.canvas.doc.shapes[key].parts, xy, self.tol(PICK_PX))
                if edge is not None:
                    ref, at = edge
                    self.canvas.push(cmd.InsertVertex(self.canvas.doc, key, ref, at))
                    return
        shape = self.canvas.shape_at(pos)
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        if shape is None:
            if not ctrl:
                self.canvas.select([])
            return
        if ctrl:
            sel = set(self.canvas.selected_keys()) ^ {shape}
            self.canvas.select(sorted(sel))
            return
        if shape not in self.canvas.selected_keys():
            self.canvas.select([shape])
        self.drag_shapes = (self.canvas.selected_keys(), pos)

    def move(self, pos: QPointF, event: QMouseEvent) -> None:
        xy = (pos.x(), pos.y())
        if self.drag_vertex is not None:
            key, ref, _ = self.drag_vertex
            target = self.canvas.snap(xy, exclude=key) or xy
            self.canvas.doc.preview_vertex(key, ref, target)
            return
        if self.drag_shapes is not None:
            keys, start = self.drag_shapes
            d = pos - start
            for k in keys:
                self.canvas.shape_items[k].setPos(d)
            return
        hit = self._vertex_at(xy)
        if hit != self.hover:
            self._set_hover(hit)

    def _end_fast(self, key: int) -> None:
        item = self.canvas.shape_items.get(key)
        if item is not None:
            item.fast = False
            item.update()

    def _set_hover(self, hit: tuple[int, ge.VertexRef] | None) -> None:
        for k in {h[0] for h in (self.hover, hit) if h is not None}:
            item = self.canvas.shape_items.get(k)
            if item is not None:
                item.hover_vertex = hit[1] if hit is not None and hit[0] == k else None
                item.update()
        self.hover = hit

    def release(self, pos: QPointF, event: QMouseEvent) -> None:
        if self.drag_vertex is not None:
            key, ref, old = self.drag_vertex
            self.drag_vertex = None
            self._end_fast(key)
            ring = self.canvas.doc.shapes[key].parts[ref.part][ref.ring]
            new = (float(ring[ref.index, 0]), float(ring[ref.index, 1]))
            if new != old:
                self.canvas.push(cmd.MoveVertex(self.canvas.doc, key, ref, old, new))
            return
        if self.drag_shapes is not None:
            keys, start = self.drag_shapes
            self.drag_shapes = None
            d = pos - start
            for k in keys:
                self.canvas.shape_items[k].setPos(0, 0)
            if abs(d.x()) > 0 or abs(d.y()) > 0:
                self.canvas.push(cmd.Translate(self.canvas.doc, keys, d.x(), d.y()))

    def key(self, event: QKeyEvent) -> bool:
        k = event.key()
        if k == Qt.Key.Key_Delete and self.hover is not None:
            key, ref = self.hover
            self._set_hover(None)
            self.canvas.remove_vertex(key, ref)
            return True
        steps: dict[int, tuple[int, int]] = {  # event.key() is a plain int
            Qt.Key.Key_Left: (-1, 0),
            Qt.Key.Key_Right: (1, 0),
            Qt.Key.Key_Up: (0, -1),
            Qt.Key.Key_Down: (0, 1),
        }
        if k in steps and self.canvas.selected_keys():
            dx, dy = steps[k]
            step = self.tol(1) if not event.modifiers() & Qt.KeyboardModifier.ShiftModifier else self.tol(10)
            self.canvas.push(cmd.Translate(self.canvas.doc, self.canvas.selected_keys(), dx * step, dy * step, nudge=True))
            return True
        return False

    def cancel(self) -> None:
        if self.drag_vertex is not None:
            key, ref, old = self.drag_vertex
            self.canvas.doc.preview_vertex(key, ref, old)
            self._end_fast(key)
        if self.drag_shapes is not None:
            for k in self.drag_shapes[0]:
                if k in self.canvas.shape_items:
                    self.canvas.shape_items[k].setPos(0, 0)
        self.drag_vertex = self.drag_shapes = None
        self._set_hover(None)


# --------------------------------------------------------------------------- brush / eraser
class BrushTool(Tool):
    """Paint with a round brush: adds to the selected shape (or the shape under the stroke,
    or a new one); the eraser cuts from every shape it touches."""

    cursor = Qt.CursorShape.CrossCursor

    def __init__(self, canvas: EditorCanvas, erase: bool = False):
        super().__init__(canvas)
        self.erase = erase
        self.name = "eraser" if erase else "brush"
        self.stroke: list[tuple[float, float]] = []
        self.preview = QGraphicsPathItem()
        self.preview.setZValue(100)
        canvas.scene().addItem(self.preview)

    def press(self, pos: QPointF, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.stroke = [(pos.x(), pos.y())]
            self._draw()

    def move(self, pos: QPointF, event: QMouseEvent) -> None:
        if self.stroke:
            self.stroke.append((pos.x(), pos.y()))
            self._draw()

    def release(self, pos: QPointF, event: QMouseEvent) -> None:
        if not self.stroke:
            return
        self.stroke.append((pos.x(), pos.y()))
        footprint = ge.brush_footprint(self.stroke, self.canvas.brush_radius)
        self.cancel()
        if self.erase:
            self.canvas.cut_area(footprint, "erase")
        else:
            self.canvas.paint_area(footprint)

    def _draw(self) -> None:
        colour = QColor(0, 200, 255, 120) if self.erase else QColor(255, 255, 0, 120)
        pen = QPen(colour, 2 * self.canvas.brush_radius, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)
        self.preview.setPen(pen)
        path = QPainterPath(QPointF(*self.stroke[0]))
        for x, y in self.stroke[1:] or self.stroke[:1]:
            path.lineTo(x, y)
        self.preview.setPath(path)

    def cancel(self) -> None:
        self.stroke = []
        self.preview.setPath(QPainterPath())

    def dispose(self) -> None:
        self.canvas.scene().removeItem(self.preview)


class WandTool(Tool):
    """Click a landslide: magic-wand region growing from that pixel becomes a polygon."""

    name = "wand"
    cursor = Qt.CursorShape.PointingHandCursor

    def press(self, pos: QPointF, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.canvas.assist_wand((pos.x(), pos.y()))


def make_tool(canvas: EditorCanvas, mode: str) -> Tool:
    if mode == "polygon":
        return PolygonTool(canvas)
    if mode == "cut":
        return PolygonTool(canvas, cut=True)
    if mode in ("rectangle", "grabcut"):
        return RectTool(canvas, mode)
    if mode in ("brush", "eraser"):
        return BrushTool(canvas, erase=mode == "eraser")
    if mode == "wand":
        return WandTool(canvas)
    return EditTool(canvas)

