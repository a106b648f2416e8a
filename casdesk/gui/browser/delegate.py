"""Paints one grid cell: thumbnail, mask overlay, QC and split badges, name.

Painting only draws ready ``QImage`` objects from the loader's memory cache; a cell whose
thumbnail is not there yet asks for it and draws a placeholder.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QRectF,
    QSize,
    Qt,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from casdesk.core.dataset.tile_table import PART_NAMES, qc_code
from casdesk.core.raster import thumbnails
from casdesk.gui.browser.loader import ThumbnailLoader, ThumbRequest
from casdesk.gui.browser.model import TileListModel

PAD = 4
"""Pixels around a thumbnail inside its cell."""
NAME_MIN_PX = 96
"""Thumbnails at least this wide get the tile name under them."""
MAX_NAMES = 20_000
"""Elided names kept (one per painted tile; cleared beyond)."""
_SELECTED = QStyle.StateFlag.State_Selected.value
_FOCUS = QStyle.StateFlag.State_HasFocus.value
_CENTER = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter
SPLIT_COLORS = {"train": QColor(47, 111, 208), "val": QColor(142, 68, 173), "test": QColor(22, 160, 133)}


@dataclass
class OverlayStyle:
    """How the mask is drawn: ``visible``, ``mode`` "fill"/"outline", ``opacity`` 0..1."""

    visible: bool = True
    mode: str = "fill"
    opacity: float = 0.45


def qc_badges() -> dict[int, tuple[str, QColor]]:
    """QC state code -> (badge text, colour); pending tiles get no badge."""
    green, red, orange = QColor(46, 160, 67), QColor(210, 45, 45), QColor(230, 140, 20)
    return {
        qc_code("ACCEPTED"): ("\u2713", green),
        qc_code("REJECTED"): ("\u2715", red),
        qc_code("FLAGGED"): ("!", orange),
        qc_code("MANUAL_ACCEPT"): ("\u2713 M", green),
        qc_code("MANUAL_REJECT"): ("\u2715 M", red),
    }


class TileDelegate(QStyledItemDelegate):
    def __init__(self, loader: ThumbnailLoader, model: TileListModel, parent: QObject | None = None):
        super().__init__(parent)
        self.loader = loader
        self.model = model
        self.thumb_px = 128
        self.overlay = OverlayStyle()
        self._badges = qc_badges()
        self._badge_font = QFont()
        self._badge_font.setPixelSize(11)
        self._badge_font.setBold(True)
        self._pills: dict[tuple[str, int, float], QImage] = {}
        self.paints = 0  # cells painted (the panel waits for the first screen)
        self._size = thumbnails.size_bucket(self.thumb_px)
        self._names: dict[int, str] = {}  # index row -> elided name, for _names_key
        self._names_key: tuple[int, ...] = ()
        self._names_of: object = None  # the tile index they are of

    def set_thumb_px(self, px: int) -> None:
        self.thumb_px = int(px)
        self._size = thumbnails.size_bucket(self.thumb_px)

    def cell_size(self) -> QSize:
        text = QFontMetrics(QFont()).height() + 2 if self.thumb_px >= NAME_MIN_PX else 0
        return QSize(self.thumb_px + 2 * PAD, self.thumb_px + 2 * PAD + text)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802
        return self.cell_size()

    # ---- painting
    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        data = self.model.index_data
        if data is None or index.row() >= self.model.rows.size:
            return
        self.paints += 1
        r = int(self.model.rows[index.row()])
        cell: QRect = option.rect
        state = option.state.value  # an int: Python enum flag operations cost ~10 us a cell
        selected = bool(state & _SELECTED)
        palette = option.palette
        box = QRect(cell.x() + PAD, cell.y() + PAD, self.thumb_px, self.thumb_px)
        painter.save()
        if selected:
            painter.fillRect(cell, palette.highlight())

        tile_id = int(data.ids[r])
        modified = str(data.modified[r])
        images = self.loader.cached((tile_id, self._size, modified))
        if images is None:
            mask = data.mask_path[r]
            images = self.loader.get(
                ThumbRequest(
                    tile_id, modified, self._size, data.resolve(data.image_path[r]),  # type: ignore[arg-type]
                    data.resolve(mask),
                )
            )
        if images is None or images.rgb is None:
            painter.fillRect(box, QColor(60, 60, 60) if images is None else QColor(90, 30, 30))
            if images is not None:
                painter.setPen(QPen(QColor(230, 120, 120), 2))
                painter.drawLine(box.topLeft(), box.bottomRight())
                painter.drawLine(box.topRight(), box.bottomLeft())
        else:
            target = _fit_rect(box, images.rgb.width(), images.rgb.height())
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, target.width() != images.rgb.width())
            painter.drawImage(target, images.rgb)
            layer = images.fill if self.overlay.mode == "fill" else images.outline
            if self.overlay.visible and layer is not None and self.overlay.opacity > 0:
                painter.setOpacity(self.overlay.opacity)
                painter.drawImage(target, layer)
                painter.setOpacity(1.0)

        self._paint_badges(painter, box, int(data.qc_state[r]), int(data.split_part[r]) if data.split_part.size else 0)
        if self.thumb_px >= NAME_MIN_PX:
            fm = painter.fontMetrics()
            text_rect = QRect(cell.x() + PAD, box.bottom() + 2, self.thumb_px, fm.height())
            painter.setPen(palette.highlightedText().color() if selected else palette.text().color())
            painter.drawText(text_rect, _CENTER, self._elided_name(data, r, fm))
        if state & _FOCUS:
            painter.setPen(QPen(palette.highlight().color().lighter(150), 2, Qt.PenStyle.DotLine))
            painter.drawRect(cell.adjusted(1, 1, -2, -2))
        painter.restore()

    def _elided_name(self, data: object, r: int, fm: QFontMetrics) -> str:
        """The tile's name as it fits under its thumbnail (kept per tile: eliding is ~20 us)."""
        key = (self.thumb_px, fm.height(), fm.averageCharWidth())
        if data is not self._names_of or key != self._names_key or len(self._names) > MAX_NAMES:
            self._names_of, self._names_key, self._names = data, key, {}
        name = self._names.get(r)
        if name is None:
            mode = Qt.TextElideMode.ElideMiddle if self.model.name_collides(r) else Qt.TextElideMode.ElideLeft
            name = fm.elidedText(self.model.display_name(r), mode, self.thumb_px)
            self._names[r] = name
        return name

    def _paint_badges(self, painter: QPainter, box: QRect, qc_state: int, part: int) -> None:
        ratio = painter.device().devicePixelRatioF() if painter.device() is not None else 1.0
        badge = self._badges.get(qc_state)
        if badge is not None:
            image = self._pill(*badge, ratio)
            painter.drawImage(QPoint(box.x() + 3, box.y() + 3), image)
        if part:
            name = PART_NAMES[part]
            image = self._pill(name, SPLIT_COLORS.get(name, QColor(90, 90, 90)), ratio)
            width = round(image.width() / image.devicePixelRatio())
            painter.drawImage(QPoint(box.right() - 3 - width, box.y() + 3), image)

    def _pill(self, text: str, color: QColor, ratio: float) -> QImage:
        """A badge drawn once and reused: a rounded label with white text (per pixel ratio)."""
        key = (text, color.rgb(), ratio)
        image = self._pills.get(key)
        if image is None:
            image = _render_pill(text, color, self._badge_font, ratio)
            self._pills[key] = image
        return image


def _render_pill(text: str, color: QColor, font: QFont, ratio: float) -> QImage:
    fm = QFontMetrics(font)
    height = fm.height() + 2
    width = max(height, fm.horizontalAdvance(text) + 8)
    image = QImage(round(width * ratio), round(height * ratio), QImage.Format.Format_ARGB32_Premultiplied)
    image.setDevicePixelRatio(ratio)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setFont(font)
    rect = QRectF(0.5, 0.5, width - 1, height - 1)
    painter.setPen(QPen(QColor(255, 255, 255, 200), 1))
    painter.setBrush(color)
    painter.drawRoundedRect(rect, rect.height() / 2, rect.height() / 2)
    painter.setPen(QColor(255, 255, 255))
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
    painter.end()
    return image


def _fit_rect(box: QRect, width: int, height: int) -> QRect:
    """The largest rectangle of the image's aspect ratio centred in ``box``."""
    scale = min(box.width() / max(width, 1), box.height() / max(height, 1))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    return QRect(box.x() + (box.width() - w) // 2, box.y() + (box.height() - h) // 2, w, h)
