"""The editor canvas: a QGraphicsView over image pixels (scene units = view pixels) with
shape items, LabelMe's shortcuts, zoom and pan. Gestures are delegated to tools
(:mod:`casdesk.gui.editor.tools`); edits go through the undo stack to the document.
The shortcuts, input events and zoom / fit live in :mod:`casdesk.gui.editor.canvas_input`
(:class:`CanvasInput`, the canvas's base); :data:`KEYMAP` stays importable from here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QPainter,
    QPen,
    QPixmap,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QWidget,
)
from shapely.geometry.base import BaseGeometry

from casdesk.core.jobs import CancelToken
from casdesk.core.labels import assist
from casdesk.core.labels import geometry as ge
from casdesk.gui.editor import commands as cmd
from casdesk.gui.editor.canvas_input import KEYMAP, TOOL_KEYS, CanvasInput, key_text
from casdesk.gui.editor.document import EditorDocument
from casdesk.gui.editor.items import ShapeItem, parts_path
from casdesk.gui.editor.tools import Tool, make_tool
from casdesk.gui.kit.workers import JobRunner

log = logging.getLogger(__name__)

__all__ = [
    "DUPLICATE_OFFSET_PX",
    "KEYMAP",
    "MODES",
    "TOOL_KEYS",
    "Z_CONTEXT",
    "Z_OVERLAY",
    "CanvasInput",
    "EditorCanvas",
    "key_text",
]

MODES = ("polygon", "rectangle", "edit", "brush", "eraser", "cut", "grabcut", "wand")
DUPLICATE_OFFSET_PX = 10.0
Z_CONTEXT, Z_OVERLAY = 4.0, 5.0  # above the imagery (0-2), below the edited shapes (10+)


class EditorCanvas(CanvasInput):
    mode_changed = Signal(str)
    selection_changed = Signal(object)  # list[int]
    step_requested = Signal(int)  # +1 next tile, -1 previous
    edit_label_requested = Signal()
    view_changed = Signal()  # zoom/pan: the imagery streams what is visible
    status = Signal(str)
    assist_busy = Signal(bool)
    shapes_created = Signal(object)  # list[int]: keys of shapes a drawing tool just closed

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setBackgroundBrush(Qt.GlobalColor.darkGray)
        self.scene().setItemIndexMethod(QGraphicsScene.ItemIndexMethod.BspTreeIndex)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.indexChanged.connect(lambda _i: self._mark_snap_dirty())
        self.doc = EditorDocument(None, self)
        self._connections: list[Any] = []
        self._auto_fit = False
        self.shape_items: dict[int, ShapeItem] = {}
        self._selected: list[int] = []
        self.current_label = "landslide"
        self.brush_radius = 8.0  # view pixels
        self.wand_tolerance = 24.0  # 0-255 per channel
        self.snapping = True
        self.shapes_visible = True
        self.image_rect = QRectF()
        self.pixel_reader: Callable[[int, int, int, int], np.ndarray] | None = None
        self._clipboard: list[tuple[str, ge.Parts]] = []
        self._snap_index: ge.SnapIndex | None = None
        self._pan: tuple[QPointF, int, int] | None = None
        self._space = False
        self._pressed = False
        self._runners: list[JobRunner] = []
        self.context_items: list[QGraphicsPathItem] = []  # other shapes of the scene, dimmed
        self.overlay = QGraphicsPixmapItem()  # a prediction's probability over the image
        self.overlay.setZValue(Z_OVERLAY)
        self.overlay.setOpacity(0.6)
        self.overlay.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.scene().addItem(self.overlay)
        self.mode = "edit"
        self.tool: Tool = make_tool(self, "edit")
        self._view_timer = QTimer(self, singleShot=True, interval=30)
        self._view_timer.timeout.connect(self.view_changed)
        self.horizontalScrollBar().valueChanged.connect(lambda _v: self._view_timer.start())
        self.verticalScrollBar().valueChanged.connect(lambda _v: self._view_timer.start())

    # ---- document
    def set_document(self, doc: EditorDocument, image_rect: QRectF) -> None:
        """Show a (loaded) document over an image of ``image_rect`` (view pixels)."""
        self.tool.cancel()
        self.undo_stack.clear()
        for item in self.shape_items.values():
            self.scene().removeItem(item)
        self.shape_items.clear()
        self._selected = []
        for conn in self._connections:
            QObject.disconnect(conn)
        self.doc = doc
        self._connections = [
            doc.shape_added.connect(self._on_added),
            doc.shape_removed.connect(self._on_removed),
            doc.geometry_changed.connect(self._on_geometry),
            doc.vertex_moved.connect(self._on_vertex_moved),
            doc.name_changed.connect(self._on_name),
        ]
        for key in doc.shapes:
            self._on_added(key)
        self.set_context([])
        self.clear_overlay()
        self.image_rect = QRectF(image_rect)
        margin = max(image_rect.width(), image_rect.height()) * 0.25
        self.scene().setSceneRect(image_rect.adjusted(-margin, -margin, margin, margin))
        self._mark_snap_dirty()
        self.fit()  # and keep fitting while the widget is laid out, until the user zooms
        self.selection_changed.emit([])

    def _on_added(self, key: int) -> None:
        rec = self.doc.shapes[key]
        item = ShapeItem(key, rec.name, rec.parts)
        item.setZValue(10)
        item.setVisible(self.shapes_visible)
        self.scene().addItem(item)
        self.shape_items[key] = item
        self._mark_snap_dirty()

    def _on_vertex_moved(self, key: int, ref: ge.VertexRef) -> None:
        item = self.shape_items.get(key)
        if item is not None:
            item.move_vertex(ref)

    def _on_name(self, key: int) -> None:
        item = self.shape_items.get(key)
        if item is not None:
            item.set_name(self.doc.shapes[key].name)

    def _on_removed(self, key: int) -> None:
        item = self.shape_items.pop(key, None)
        if item is not None:
            self.scene().removeItem(item)
        if key in self._selected:
            self.select([k for k in self._selected if k != key])
        self._mark_snap_dirty()

    def _on_geometry(self, key: int) -> None:
        item = self.shape_items.get(key)
        if item is not None:
            item.rebuild(self.doc.shapes[key].parts)
        self._mark_snap_dirty()

    def push(self, command: QUndoCommand) -> None:
        self.undo_stack.push(command)

    # ---- context shapes and prediction overlay
    def set_context(self, geoms: list[BaseGeometry]) -> None:
        """Draw shapes that are not edited here (the scene's shapes outside the open tile)
        dimmed: they show what lies around the tile, are not listed and take no clicks."""
        for item in self.context_items:
            self.scene().removeItem(item)
        self.context_items = []
        pen = QPen(QColor(200, 200, 200, 150), 1.5, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        for geom in geoms:
            parts = ge.parts_from_geometry(geom)
            if not parts:
                continue
            path, _ = parts_path(parts)
            item = QGraphicsPathItem(path)
            item.setPen(pen)
            item.setBrush(QBrush(QColor(200, 200, 200, 40)))
            item.setZValue(Z_CONTEXT)
            item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            item.setVisible(self.shapes_visible)
            self.scene().addItem(item)
            self.context_items.append(item)

    def set_overlay(self, rgba: np.ndarray) -> None:
        """Show an (rows, cols, 4) uint8 image over the image, one pixel per view pixel."""
        data = np.ascontiguousarray(rgba)
        h, w = data.shape[:2]
        image = QImage(data.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
        self.overlay.setPixmap(QPixmap.fromImage(image))
        self.overlay.setPos(self.image_rect.topLeft())
        self.overlay.setVisible(True)

    def clear_overlay(self) -> None:
        self.overlay.setPixmap(QPixmap())
        self.overlay.setVisible(False)

    def has_overlay(self) -> bool:
        return self.overlay.isVisible() and not self.overlay.pixmap().isNull()

    # ---- selection and picking
    def selected_keys(self) -> list[int]:
        return list(self._selected)

    def select(self, keys: list[int]) -> None:
        keys = [k for k in keys if k in self.shape_items]
        for k in set(self._selected) - set(keys):
            if k in self.shape_items:
                self.shape_items[k].set_selected(False)
        for k in keys:
            self.shape_items[k].set_selected(True)
        self._selected = keys
        self.selection_changed.emit(list(keys))

    def shape_at(self, pos: QPointF) -> int | None:
        """Topmost visible shape whose area contains ``pos`` (selected shapes first)."""
        for item in self.scene().items(pos, Qt.ItemSelectionMode.ContainsItemShape, Qt.SortOrder.DescendingOrder):
            if isinstance(item, ShapeItem) and item.isVisible():
                return item.key
        return None

    def snap(self, xy: tuple[float, float], exclude: int | None = None) -> tuple[float, float] | None:
        if not self.snapping or not self.doc.shapes:
            return None
        if self._snap_index is None:
            self._snap_index = ge.SnapIndex((k, r.parts) for k, r in self.doc.shapes.items())
        from casdesk.gui.editor.tools import SNAP_PX

        return self._snap_index.snap(xy, SNAP_PX / max(self.zoom(), 1e-9), exclude=exclude)

    def _mark_snap_dirty(self) -> None:
        self._snap_index = None

    # ---- modes
    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown editor mode {mode!r}")
        self.tool.cancel()
        dispose = getattr(self.tool, "dispose", None)
        if dispose is not None:
            dispose()
        self.mode = mode
        self.tool = make_tool(self, mode)
        self.viewport().setCursor(self.tool.cursor)
        self.mode_changed.emit(mode)

    # ---- edits the tools ask for
    def add_geometry(self, geom: BaseGeometry, name: str, attributes: dict | None = None) -> list[int]:
        polys = [p for p in getattr(geom, "geoms", [geom]) if not p.is_empty and p.area > 0]
        if not polys:
            return []
        self.undo_stack.beginMacro(f"add {name}")
        keys = []
        for p in polys:
            c = cmd.AddShape(self.doc, name, ge.parts_from_geometry(p), attributes)
            self.push(c)
            keys.append(c.key)
        self.undo_stack.endMacro()
        self.select(keys)
        self.shapes_created.emit(list(keys))
        return keys

    def cut_area(self, area: BaseGeometry, text: str) -> None:
        """Cut ``area`` out of the selected shapes (or all it touches); empty shapes go."""
        keys = self._selected or list(self.doc.shapes)
        changed = False
        for key in keys:
            rec = self.doc.shapes[key]
            geom = rec.geometry()
            if not geom.intersects(area):
                continue
            after = ge.cut_area(geom, area)
            if not changed:
                self.undo_stack.beginMacro(text)
                changed = True
            if after.is_empty:
                self.push(cmd.RemoveShapes(self.doc, [key]))
            else:
                self.push(cmd.SetParts(self.doc, key, rec.copy_parts(), ge.parts_from_geometry(after), text))
        if changed:
            self.undo_stack.endMacro()

    def paint_area(self, area: BaseGeometry) -> None:
        """Brush: add to the selected shape, else to the topmost shape it touches, else new."""
        target = self._selected[0] if self._selected else None
        if target is None:
            for key, rec in reversed(list(self.doc.shapes.items())):
                if rec.geometry().intersects(area):
                    target = key
                    break
        if target is None:
            self.add_geometry(ge.simplify_stroke(area), self.current_label)
            return
        rec = self.doc.shapes[target]
        after = ge.simplify_stroke(ge.add_area(rec.geometry(), area))
        self.push(cmd.SetParts(self.doc, target, rec.copy_parts(), ge.parts_from_geometry(after), "brush"))

    def remove_vertex(self, key: int, ref: ge.VertexRef) -> None:
        if not ge.can_remove_vertex(self.doc.shapes[key].parts, ref):
            self.status.emit("a ring keeps at least 3 vertices: delete the shape instead")
            return
        self.push(cmd.RemoveVertex(self.doc, key, ref))

    # ---- assisted labelling (in a worker: GrabCut can take a second)
    def assist_grabcut(self, box: tuple[float, float, float, float]) -> None:
        x0, y0, x1, y1 = box
        mx, my = (x1 - x0) * 0.25 + 8, (y1 - y0) * 0.25 + 8
        window = self._clip_window(x0 - mx, y0 - my, x1 + mx, y1 + my)
        if window is None or self.pixel_reader is None:
            return
        wx0, wy0, wx1, wy1 = window
        rgb = self.pixel_reader(wx0, wy0, wx1, wy1)
        local = (x0 - wx0, y0 - wy0, x1 - wx0, y1 - wy0)

        def job(token: CancelToken) -> Any:
            yield from ()
            return assist.mask_polygons(assist.grabcut_box(rgb, local), offset=(wx0, wy0), fill_holes_below=16)

        self._run_assist(job, "GrabCut")

    def assist_wand(self, xy: tuple[float, float], half: int = 384) -> None:
        window = self._clip_window(xy[0] - half, xy[1] - half, xy[0] + half, xy[1] + half)
        if window is None or self.pixel_reader is None:
            return
        wx0, wy0, wx1, wy1 = window
        rgb = self.pixel_reader(wx0, wy0, wx1, wy1)
        tol = self.wand_tolerance
        seed = (xy[0] - wx0, xy[1] - wy0)

        def job(token: CancelToken) -> Any:
            yield from ()
            polys = assist.mask_polygons(assist.magic_wand(rgb, seed, tol), offset=(wx0, wy0), fill_holes_below=16)
            pt = shapely.Point(xy)
            inside = [p for p in polys if p.buffer(1).contains(pt)]
            return inside[:1] or polys[:1]

        self._run_assist(job, "magic wand")

    def _clip_window(self, x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int] | None:
        r = self.image_rect
        wx0, wy0 = max(int(r.left()), int(np.floor(x0))), max(int(r.top()), int(np.floor(y0)))
        wx1, wy1 = min(int(r.right()), int(np.ceil(x1))), min(int(r.bottom()), int(np.ceil(y1)))
        return (wx0, wy0, wx1, wy1) if wx1 - wx0 >= 3 and wy1 - wy0 >= 3 else None

    def _run_assist(self, job: Any, what: str) -> None:
        runner = JobRunner(job, self, name="assist")
        self._runners.append(runner)
        self.assist_busy.emit(True)
        label = self.current_label

        def done(polys: Any) -> None:
            if not polys:
                self.status.emit(f"{what}: nothing found; try another box or tolerance")
                return
            geom = shapely.MultiPolygon(list(polys)) if len(polys) > 1 else polys[0]
            self.add_geometry(geom, label)
            self.status.emit(f"{what}: {len(polys)} polygon(s) added")

        runner.finished.connect(done)
        runner.failed.connect(lambda msg, _d: self.status.emit(f"{what} failed: {msg}"))
        runner.done.connect(lambda: self._runner_done(runner))
        runner.start()

    def _runner_done(self, runner: JobRunner) -> None:
        if runner in self._runners:
            self._runners.remove(runner)
        self.assist_busy.emit(bool(self._runners))

    def busy(self) -> bool:
        return bool(self._runners)

    def shutdown(self) -> None:
        for r in list(self._runners):
            r.shutdown()

    # ---- clipboard
    def copy(self) -> None:
        self._clipboard = [(self.doc.shapes[k].name, self.doc.shapes[k].copy_parts()) for k in self._selected]

    def paste(self, offset: float = 0.0) -> None:
        if not self._clipboard:
            return
        self.undo_stack.beginMacro("paste")
        keys = []
        for name, parts in self._clipboard:
            moved = [[r + offset for r in part] for part in parts]
            c = cmd.AddShape(self.doc, name, moved)
            self.push(c)
            keys.append(c.key)
        self.undo_stack.endMacro()
        self.select(keys)

    def duplicate(self) -> None:
        self.copy()
        self.paste(DUPLICATE_OFFSET_PX / max(self.zoom(), 1e-9))

    def delete_selected(self) -> None:
        if self._selected:
            self.push(cmd.RemoveShapes(self.doc, list(self._selected)))
