"""How a shape is drawn: one QGraphicsPathItem per shape (holes by odd-even fill).

A dragged vertex updates two path elements in place instead of rebuilding the path, and
vertex handles are painted by the item itself (one ``drawPoints`` call over the vertices in
the exposed rectangle) and only while the shape is selected, so a 5,000-vertex polygon and
hundreds of shapes stay responsive.
"""

from __future__ import annotations

import hashlib

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QStyleOptionGraphicsItem, QWidget

from casdesk.core.labels import geometry as ge

HANDLE_PX = 7  # vertex handle size on screen, pixels
FAST_VERTICES = 1000  # shapes this big drop antialiasing while being dragged
DEFAULT_COLOURS = {"landslide": QColor(230, 40, 40)}


def label_colour(name: str) -> QColor:
    """A stable colour per label name (landslide is red), so shapes read at a glance."""
    if name in DEFAULT_COLOURS:
        return QColor(DEFAULT_COLOURS[name])
    h = int(hashlib.md5(name.encode()).hexdigest()[:6], 16)
    return QColor.fromHsv(h % 360, 200, 230)


def parts_path(parts: ge.Parts) -> tuple[QPainterPath, dict[tuple[int, int], int]]:
    """Path of all rings (each explicitly closed) and the first element index of each ring."""
    path = QPainterPath()
    path.setFillRule(Qt.FillRule.OddEvenFill)
    starts: dict[tuple[int, int], int] = {}
    n = 0
    for i, part in enumerate(parts):
        for j, ring in enumerate(part):
            if not len(ring):
                continue
            starts[(i, j)] = n
            poly = QPolygonF([QPointF(float(x), float(y)) for x, y in ring])
            poly.append(poly.first())
            path.addPolygon(poly)
            n += len(ring) + 1
    return path, starts


class ShapeItem(QGraphicsPathItem):
    def __init__(self, key: int, name: str, parts: ge.Parts):
        super().__init__()
        self.key = key
        self.parts = parts  # shared with the document's record (same arrays)
        self.selected = False
        self.hover_vertex: ge.VertexRef | None = None
        self._bounds = QRectF()
        self._starts: dict[tuple[int, int], int] = {}
        self._handles: dict[tuple[int, int], QPolygonF] = {}
        self.fast = False  # set while dragging: big shapes drop antialiasing
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, False)
        # unselected shapes repaint from a cached pixmap: a full-view repaint while one
        # shape is dragged then redraws only that shape's path
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.set_name(name)
        self.rebuild(parts)

    def set_name(self, name: str) -> None:
        self.name = name
        colour = label_colour(name)
        pen = QPen(colour, 2)
        pen.setCosmetic(True)
        self.setPen(pen)
        fill = QColor(colour)
        fill.setAlpha(70)
        self.setBrush(QBrush(fill))
        self._colour = colour
        self.update()

    def rebuild(self, parts: ge.Parts) -> None:
        self.parts = parts
        self._handles = {}
        path, self._starts = parts_path(parts)
        self.prepareGeometryChange()
        self._bounds = path.controlPointRect()
        self.setPath(path)

    def move_vertex(self, ref: ge.VertexRef) -> None:
        """Follow a vertex the document moved: two path elements, no rebuild."""
        start = self._starts.get((ref.part, ref.ring))
        if start is None:
            self.rebuild(self.parts)
            return
        ring = self.parts[ref.part][ref.ring]
        x, y = float(ring[ref.index, 0]), float(ring[ref.index, 1])
        cached = self._handles.get((ref.part, ref.ring))
        if cached is not None:
            cached[ref.index] = QPointF(x, y)  # type: ignore[index]  # PySide6's stubs: QPolygonF (a QList) has no __setitem__
        path = self.path()
        path.setElementPositionAt(start + ref.index, x, y)
        if ref.index == 0:
            path.setElementPositionAt(start + len(ring), x, y)
        if not self._bounds.contains(x, y):
            self.prepareGeometryChange()
            b = self._bounds
            left, top = min(b.left(), x), min(b.top(), y)
            self._bounds = QRectF(left, top, max(b.right(), x) - left, max(b.bottom(), y) - top)
        self.setPath(path)

    def set_selected(self, selected: bool) -> None:
        if selected != self.selected:
            self.selected = selected
            self.setZValue(20 if selected else 10)
            self.setCacheMode(
                QGraphicsItem.CacheMode.NoCache if selected else QGraphicsItem.CacheMode.DeviceCoordinateCache
            )
            self.update()

    # hit testing on the filled area only (the stroked outline is costly for big paths)
    def shape(self) -> QPainterPath:
        return self.path()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        pad = 0.0
        scene = self.scene()
        if scene is not None and scene.views():
            scale = scene.views()[0].transform().m11() or 1.0
            pad = (HANDLE_PX + 2) / scale
        return self._bounds.adjusted(-pad, -pad, pad, pad)

    def _ring_handles(self, i: int, j: int) -> QPolygonF:
        poly = self._handles.get((i, j))
        if poly is None:
            poly = QPolygonF([QPointF(float(x), float(y)) for x, y in self.parts[i][j]])
            self._handles[(i, j)] = poly
        return poly

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.save()
        try:
            self._paint(painter)
        finally:
            painter.restore()

    def _paint(self, painter: QPainter) -> None:
        big = self._n_vertices() > FAST_VERTICES
        if self.fast and big:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setPen(self.pen())
        painter.setBrush(self.brush())
        painter.drawPath(self.path())
        if not self.selected:
            return
        handle = QPen(QColor(255, 255, 255), HANDLE_PX, Qt.PenStyle.SolidLine, Qt.PenCapStyle.SquareCap)
        handle.setCosmetic(True)
        inner = QPen(self._colour, HANDLE_PX - 3, Qt.PenStyle.SolidLine, Qt.PenCapStyle.SquareCap)
        inner.setCosmetic(True)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        scale = painter.worldTransform().m11() or 1.0
        for i, part in enumerate(self.parts):
            for j, ring in enumerate(part):
                if not len(ring):
                    continue
                pts = self._ring_handles(i, j)
                if len(ring) * HANDLE_PX > 4 * max(1.0, self._bounds.width() + self._bounds.height()) * scale:
                    continue  # zoomed out: handles would merge into a solid line
                painter.setPen(handle)
                painter.drawPoints(pts)
                painter.setPen(inner)
                painter.drawPoints(pts)
        if self.hover_vertex is not None:
            try:
                x, y = self.parts[self.hover_vertex.part][self.hover_vertex.ring][self.hover_vertex.index]
            except IndexError:
                return
            hot = QPen(QColor(255, 230, 0), HANDLE_PX + 4, Qt.PenStyle.SolidLine, Qt.PenCapStyle.SquareCap)
            hot.setCosmetic(True)
            painter.setPen(hot)
            painter.drawPoint(QPointF(float(x), float(y)))

    def _n_vertices(self) -> int:
        return sum(len(r) for part in self.parts for r in part)


def ring_array(points: list[tuple[float, float]]) -> np.ndarray:
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)
