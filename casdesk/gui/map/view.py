"""The map canvas: zoom with the wheel, pan by dragging (as in QGIS), a scale bar, and the
map coordinate under the pointer."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QMouseEvent, QPainter, QPen, QWheelEvent
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QWidget

from casdesk.gui.map.layout import nice_length

ZOOM_STEP = 1.25


class MapView(QGraphicsView):
    """Emits ``clicked(x, y)`` on a click (not a drag), ``double_clicked(x, y)`` and
    ``moved(x, y)`` in map coordinates. The owner sets :attr:`units` for the scale bar."""

    clicked = Signal(float, float)
    zoomed = Signal(float)  # screen pixels per map unit
    double_clicked = Signal(float, float)
    moved = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setBackgroundBrush(QColor(28, 30, 34))
        self.setMouseTracking(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.units_at = lambda _x, _y: "px"  # the owner says which unit a map point is in
        self._press: QPointF | None = None

    # ---- zoom
    def zoom(self, factor: float) -> None:
        self.scale(factor, factor)
        self.zoomed.emit(abs(self.transform().m11()))

    def fit(self, rect: QRectF | None = None) -> None:
        rect = rect if rect is not None else self.scene().itemsBoundingRect()
        if not rect.isEmpty():
            self.fitInView(rect.adjusted(-rect.width() * 0.02, -rect.height() * 0.02,
                                         rect.width() * 0.02, rect.height() * 0.02),
                           Qt.AspectRatioMode.KeepAspectRatio)
            self.zoomed.emit(abs(self.transform().m11()))

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom(ZOOM_STEP ** steps)
        event.accept()

    # ---- mouse
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._press = event.position()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        super().mouseReleaseEvent(event)
        press, self._press = self._press, None
        if press is not None and event.button() == Qt.MouseButton.LeftButton:
            if (event.position() - press).manhattanLength() < 5:
                p = self.mapToScene(event.position().toPoint())
                self.clicked.emit(p.x(), p.y())

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        p = self.mapToScene(event.position().toPoint())
        self.double_clicked.emit(p.x(), p.y())
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        super().mouseMoveEvent(event)
        p = self.mapToScene(event.position().toPoint())
        self.moved.emit(p.x(), p.y())

    # ---- scale bar
    def map_units_per_pixel(self) -> float:
        return 1.0 / max(abs(self.transform().m11()), 1e-12)

    def scale_bar(self) -> tuple[float, int, str]:
        """(length in map units, length in screen pixels, unit) of the bar shown now."""
        centre = self.mapToScene(self.viewport().rect().center())
        unit = self.units_at(centre.x(), centre.y())
        per_px = self.map_units_per_pixel()
        length = nice_length(per_px * 140)
        return length, round(length / per_px) if per_px else 0, unit

    def drawForeground(self, painter: QPainter, rect: QRectF | QRect) -> None:  # noqa: N802 - Qt override
        length, px, unit = self.scale_bar()
        if length <= 0 or px <= 0:
            return
        painter.save()
        painter.resetTransform()
        h = self.viewport().height()
        x0, y0 = 16, h - 22
        painter.setPen(QPen(QColor(255, 255, 255), 2))
        painter.drawLine(x0, y0, x0 + px, y0)
        painter.drawLine(x0, y0 - 5, x0, y0 + 3)
        painter.drawLine(x0 + px, y0 - 5, x0 + px, y0 + 3)
        font = QFont()
        font.setPixelSize(12)
        painter.setFont(font)
        text = _format_length(length, unit)
        painter.drawText(x0, y0 - 8, text)
        painter.restore()


def _format_length(length: float, unit: str) -> str:
    if unit == "m" and length >= 1000:
        return f"{length / 1000:g} km"
    if unit == "px":
        return f"{length:g} tile px"
    return f"{length:g} {unit}"
