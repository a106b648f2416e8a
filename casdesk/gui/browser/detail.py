"""Detail view of one tile: zoom/pan, its neighbourhood in the scene, band and stretch choice,
mask overlay, prediction vs label, and the pixel and map coordinate under the cursor.

Files are read and stretched in a worker (:class:`~casdesk.gui.browser.loader.LatestCall`);
the GUI thread only hands finished arrays to pyqtgraph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from casdesk.core.raster import thumbnails
from casdesk.core.raster.io import default_rgb_bands, to_display_rgb
from casdesk.gui.browser.loader import LatestCall

STRETCHES = ("auto", "percentile", "none")
MIN_WIDTH = 280
"""The pane's minimum width (pixels)."""


@dataclass(frozen=True)
class DetailRequest:
    """Everything needed to read one tile for the detail view (gathered from the catalog)."""

    tile_id: int
    name: str
    image_path: Path
    mask_path: Path | None
    scene_path: Path | None = None
    tile_offset: tuple[int, int] | None = None
    predictions: list[tuple[str, Path, float | None]] = field(default_factory=list)  # model, mask, iou


@dataclass(frozen=True)
class DetailData:
    request: DetailRequest
    view: thumbnails.TileView
    rgb: np.ndarray
    mask_rgba: np.ndarray | None
    confusion: np.ndarray | None
    bands: tuple[int, ...]
    stretch: str
    prediction: str | None


def _mask_rgba(mask: np.ndarray | None) -> np.ndarray | None:
    if mask is None:
        return None
    out = np.zeros((*mask.shape, 4), np.uint8)
    out[mask > 0] = (*thumbnails.OVERLAY_RGB, 255)
    return out


def render_detail(
    request: DetailRequest,
    view: thumbnails.TileView | None,
    context_px: int,
    bands: tuple[int, ...] | None,
    stretch: str,
    prediction: str | None,
) -> DetailData:
    """Read (when ``view`` is None) and stretch a tile for display. Runs in a worker."""
    if view is None:
        pred_path = next((p for m, p, _ in request.predictions if m == prediction), None)
        view = thumbnails.read_tile_view(
            request.image_path, request.mask_path, pred_path, request.scene_path,
            request.tile_offset, context_px,
        )
    count = view.data.shape[0]
    chosen = tuple(b for b in (bands or ()) if 0 <= b < count)
    if len(chosen) != 3:
        chosen = default_rgb_bands(count)
    rgb = to_display_rgb(view.data, view.valid, bands=chosen, stretch=stretch, nodata_rgb=(30, 30, 30))
    confusion = None
    if view.prediction is not None:
        label = view.mask if view.mask is not None else np.zeros_like(view.prediction)
        confusion = thumbnails.confusion_rgba(label, view.prediction)
    return DetailData(request, view, rgb, _mask_rgba(view.mask), confusion, chosen, stretch, prediction)


class TileDetail(QWidget):
    """Shows one tile; :meth:`show_tile` may be called again at any time (latest wins)."""

    close_requested = Signal()
    loaded = Signal(int)  # tile id, after its pixels are on screen

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._call = LatestCall(self)
        self._call.finished.connect(self._on_loaded)
        self._call.failed.connect(self._on_failed)
        self.request: DetailRequest | None = None
        self.data: DetailData | None = None

        self.title = QLabel("No tile")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("\u2715")
        close.setToolTip("Close the detail view (Esc)")
        close.clicked.connect(self.close_requested)
        self.context = QCheckBox("Scene around")
        self.context.setToolTip("Show the scene around the tile (half a tile on each side)")
        self.context.setChecked(True)
        self.context.toggled.connect(lambda _on: self._reload())
        self.band_boxes = [QComboBox() for _ in range(3)]
        for box, name in zip(self.band_boxes, "RGB", strict=True):
            box.setToolTip(f"Band shown as {name}")
            box.activated.connect(lambda _i: self._restretch())
        self.stretch = QComboBox()
        self.stretch.addItems(list(STRETCHES))
        self.stretch.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.stretch.setToolTip("auto: 8-bit as is, 16-bit stretched to its 2-98 % range")
        self.stretch.activated.connect(lambda _i: self._restretch())
        self.show_mask = QCheckBox("Mask")
        self.show_mask.setChecked(True)
        self.show_mask.toggled.connect(self._update_layers)
        self.prediction = QComboBox()
        self.prediction.setToolTip("Compare a model's prediction with the label")
        self.prediction.activated.connect(lambda _i: self._reload())

        self.prediction.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.prediction.setMinimumContentsLength(12)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(close)
        # two short rows, so the pane fits beside the grid without widening the window
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Bands"))
        for box in self.band_boxes:
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            controls.addWidget(box)
        controls.addWidget(self.stretch)
        controls.addStretch(1)
        layers = QHBoxLayout()
        layers.addWidget(self.context)
        layers.addWidget(self.show_mask)
        layers.addWidget(self.prediction, 1)

        self.plot = pg.GraphicsLayoutWidget()
        self.plot.setBackground(QColor(25, 25, 25))
        self.viewbox = self.plot.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.mask_item = pg.ImageItem(axisOrder="row-major")
        self.mask_item.setOpacity(0.45)
        self.confusion_item = pg.ImageItem(axisOrder="row-major")
        self.confusion_item.setOpacity(0.6)
        self.tile_rect = QGraphicsRectItem()
        pen = QPen(QColor(255, 230, 0))
        pen.setCosmetic(True)
        pen.setWidth(2)
        pen.setStyle(Qt.PenStyle.DashLine)
        self.tile_rect.setPen(pen)
        for item in (self.image_item, self.mask_item, self.confusion_item, self.tile_rect):
            self.viewbox.addItem(item)
        self.plot.scene().sigMouseMoved.connect(self._on_mouse)

        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        self.cursor_label = QLabel("Move the mouse over the image for coordinates")
        self.cursor_label.setWordWrap(True)
        self.cursor_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(controls)
        layout.addLayout(layers)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.legend)
        layout.addWidget(self.cursor_label)
        self._set_prediction_choices([])
        self.setMinimumWidth(MIN_WIDTH)  # fixed: the layout's wish must never widen the window

    # ---- requests
    def show_tile(self, request: DetailRequest) -> None:
        same = self.request is not None and self.request.tile_id == request.tile_id
        self.request = request
        self.title.setText(f"<b>{request.name}</b> (tile {request.tile_id})")
        if not same:
            self.clear_cursor()
        self.context.setEnabled(request.scene_path is not None and request.tile_offset is not None)
        if not same:
            self._set_prediction_choices(request.predictions)
        self._reload()

    def _set_prediction_choices(self, predictions: list[tuple[str, Path, float | None]]) -> None:
        current = self.prediction.currentData()
        self.prediction.clear()
        self.prediction.addItem("No prediction", None)
        for model, _path, iou in predictions:
            text = f"{model} (IoU {iou:.2f})" if iou is not None else model
            self.prediction.addItem(f"Prediction: {text}", model)
        i = self.prediction.findData(current)
        self.prediction.setCurrentIndex(i if i > 0 else (1 if predictions else 0))
        self.prediction.setVisible(bool(predictions))

    def _context_px(self, request: DetailRequest) -> int:
        if not (self.context.isChecked() and self.context.isEnabled()):
            return 0
        return 256 if request.tile_offset is not None else 0

    def _reload(self) -> None:
        request = self.request
        if request is None:
            return
        ctx = self._context_px(request)
        bands, stretch, pred = self._bands(), self.stretch.currentText(), self.prediction.currentData()
        self._call.submit(lambda: render_detail(request, None, ctx, bands, stretch, pred))

    def _restretch(self) -> None:
        data = self.data
        if data is None:
            return
        bands, stretch = self._bands(), self.stretch.currentText()
        self._call.submit(
            lambda: render_detail(data.request, data.view, 0, bands, stretch, data.prediction)
        )

    def _bands(self) -> tuple[int, ...] | None:
        if any(b.count() == 0 for b in self.band_boxes):
            return None
        return tuple(b.currentIndex() for b in self.band_boxes)

    def is_busy(self) -> bool:
        return self._call.is_busy()

    def shutdown(self) -> None:
        self._call.shutdown()

    # ---- results
    def _on_failed(self, message: str) -> None:
        self.data = None
        self.image_item.clear()
        self.mask_item.clear()
        self.confusion_item.clear()
        self.legend.setText(f"Cannot show this tile: {message}")

    def _on_loaded(self, data: DetailData) -> None:
        first = self.data is None or self.data.request.tile_id != data.request.tile_id
        reframe = first or self.data is None or self.data.view.data.shape != data.view.data.shape
        self.data = data
        count = data.view.data.shape[0]
        for box, band in zip(self.band_boxes, data.bands, strict=True):
            if box.count() != count:
                box.clear()
                box.addItems([f"{i + 1}" for i in range(count)])
            box.setCurrentIndex(band)
        self.image_item.setImage(data.rgb, autoLevels=False, levels=(0, 255))
        self._update_layers()
        r, c, h, w = data.view.tile_box
        self.tile_rect.setRect(QRectF(c, r, w, h))
        self.tile_rect.setVisible(data.view.from_scene)
        if reframe:
            self.viewbox.autoRange(padding=0.02)
        dtype = data.view.data.dtype
        parts = [f"{count} band{'s' if count != 1 else ''} {dtype}"]
        if data.view.from_scene:
            parts.append("dashed box: the tile; around it: the scene")
        if data.confusion is not None:
            parts.append(
                "<span style='color:#28c83c'>\u25a0</span> true positive "
                "<span style='color:#e62828'>\u25a0</span> false positive "
                "<span style='color:#286eff'>\u25a0</span> false negative"
            )
        self.legend.setText(" \u2022 ".join(parts))
        self.loaded.emit(data.request.tile_id)

    def _update_layers(self) -> None:
        data = self.data
        show_conf = data is not None and data.confusion is not None
        if data is not None and data.mask_rgba is not None and not show_conf:
            self.mask_item.setImage(data.mask_rgba, autoLevels=False, levels=(0, 255))
            self.mask_item.setVisible(self.show_mask.isChecked())
        else:
            self.mask_item.setVisible(False)
        if show_conf:
            assert data is not None
            self.confusion_item.setImage(data.confusion, autoLevels=False, levels=(0, 255))
            self.confusion_item.setVisible(self.show_mask.isChecked())
        else:
            self.confusion_item.setVisible(False)

    def set_overlay_visible(self, visible: bool) -> None:
        self.show_mask.setChecked(visible)

    def mark_hidden(self, hidden: bool) -> None:
        """The shown tile is hidden by the grid's filter: say so (the pane keeps it) and
        clear the pixel readout, which belonged to the pointer over it."""
        if self.request is None:
            return
        note = " — hidden by the filter" if hidden else ""
        self.title.setText(f"<b>{self.request.name}</b> (tile {self.request.tile_id}){note}")
        if hidden:
            self.clear_cursor()

    # ---- cursor
    def clear_cursor(self) -> None:
        self.cursor_label.setText("Move the mouse over the image for coordinates")

    @staticmethod
    def georeferenced(view: thumbnails.TileView) -> bool:
        """True when the tile has a CRS and a real transform (the released CAS tiles do not)."""
        return view.crs_wkt is not None and not view.transform.is_identity

    def _on_mouse(self, pos: QPointF) -> None:
        data = self.data
        if data is None or not self.viewbox.sceneBoundingRect().contains(pos):
            return
        p = self.viewbox.mapSceneToView(pos)
        col, row = p.x(), p.y()
        rows, cols = data.view.valid.shape
        if not (0 <= row < rows and 0 <= col < cols):
            self.cursor_label.setText("")
            return
        r0, c0, _, _ = data.view.tile_box
        where = ""
        if self.georeferenced(data.view):
            x, y = data.view.map_xy(col, row)
            where = f" \u2022 map x {x:.2f}, y {y:.2f}"
        values = data.view.data[:, int(row), int(col)]
        shown = ", ".join(f"{v:g}" for v in values[:6].tolist())
        self.cursor_label.setText(
            f"tile pixel row {int(row) - r0}, col {int(col) - c0}{where}"
            f" \u2022 value [{shown}]"
            + ("" if data.view.valid[int(row), int(col)] else " (nodata)")
        )
