"""The Map tab's prediction overlay: a model's predicted probability (or mask) drawn over
each scene's footprint, from the tile predictions stored in the project
(:class:`~casdesk.core.project.stores.predictions.PredictionsStore`: one probability and one
mask GeoTIFF per tile and model, as ``casdesk predict-tiles`` writes them).

Each block (a scene, or a subdataset grid) gets one RGBA raster on the same pixel grid as its
tile picture (:func:`casdesk.gui.map.layout.raster_shape`): every predicted tile's GeoTIFF is
read decimated to its rectangle there (overlapping tiles: each keeps the part nearest its
centre, as the tile picture does), in a worker, when the overlay is switched on. Colours are
the Predict tab's: probability yellow to red with alpha growing with it; mask red.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QCheckBox, QComboBox, QGraphicsPixmapItem, QGraphicsScene, QLabel

from casdesk.core.dataset import tile_table as ti
from casdesk.core.project.catalog import Catalog
from casdesk.core.raster.outputs import MASK_NODATA, PROB_NODATA
from casdesk.gui.browser.loader import LatestCall
from casdesk.gui.map import layout as lay
from casdesk.gui.predict.view import mask_legend, mask_rgba, probability_legend, probability_rgba

log = logging.getLogger(__name__)
OVERLAY_KINDS = {"Probability": "prob", "Mask": "mask"}
OVERLAY_Z = 3
"""Above the tiles (0), below the label outlines (5) and the picked tile (10)."""


@dataclass(frozen=True)
class OverlayImages:
    """A model's prediction over every block: ``images[b]`` is None where block ``b`` has no
    predicted tile; ``missing`` counts tiles whose file could not be read."""

    model: str
    kind: str  # "prob" or "mask"
    images: list[lay.BlockImage | None]
    tiles: int
    missing: int


def read_decimated(path: Path, kind: str, shape: tuple[int, int]) -> np.ndarray:
    """A tile's stored probability (uint8, 254 = 1, 255 nodata) or mask (0/1, 255 nodata)
    read at ``shape`` (rows, cols)."""
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(path) as ds:
        resampling = Resampling.average if kind == "prob" else Resampling.nearest
        return np.asarray(ds.read(1, out_shape=shape, resampling=resampling), np.uint8)


def compose_block(
    block: lay.Block, index: ti.TileIndex, files: dict[int, Path], kind: str
) -> tuple[lay.BlockImage | None, int, int]:
    """The block's overlay raster from the tiles' files (tile id -> path); (image or None,
    tiles drawn, tiles unreadable)."""
    ids = index.ids[block.rows]
    wanted = np.flatnonzero(np.isin(ids, np.fromiter(files, np.int64, len(files))))
    if wanted.size == 0:
        return None, 0, 0
    h, w, _scale = lay.raster_shape(block)
    nodata = PROB_NODATA if kind == "prob" else MASK_NODATA
    stored = np.full((h, w), nodata, np.uint8)
    fr0, fr1, fc0, fc1 = lay.pixel_rects(block, (block.x0, block.y0, block.x1, block.y1))
    r0, r1, c0, c1 = lay.pixel_rects(block, lay.core_rects(block))
    drawn = missing = 0
    for k in wanted.tolist():
        try:
            tile = read_decimated(files[int(ids[k])], kind, (int(fr1[k] - fr0[k]), int(fc1[k] - fc0[k])))
        except Exception as exc:  # noqa: BLE001 - a lost or broken file leaves its tile empty
            log.debug("prediction of tile %s not drawn: %s", ids[k], exc)
            missing += 1
            continue
        if kind == "mask":
            tile = np.where(tile == MASK_NODATA, MASK_NODATA, (tile > 0).astype(np.uint8))
        a, b = max(r0[k], fr0[k]), min(r1[k], fr1[k])
        c, d = max(c0[k], fc0[k]), min(c1[k], fc1[k])
        stored[a:b, c:d] = tile[a - fr0[k]:b - fr0[k], c - fc0[k]:d - fc0[k]]
        drawn += 1
    rgba = probability_rgba(stored) if kind == "prob" else mask_rgba(stored)
    return lay.BlockImage(np.ascontiguousarray(rgba), block.bounds), drawn, missing


def load_overlay(path: Path, index: ti.TileIndex, layout: lay.MapLayout, model: str, kind: str) -> OverlayImages:
    """Read ``model``'s stored tile predictions and compose them per block (worker)."""
    with Catalog.open(path, readonly=True) as catalog:
        preds = catalog.predictions.of_model(model)
    files: dict[int, Path] = {}
    for p in preds:
        file = p.prob_path if kind == "prob" else p.mask_path
        if file is not None:
            files[p.tile_id] = file
    images: list[lay.BlockImage | None] = []
    drawn = missing = 0
    for block in layout.blocks:
        image, n, lost = compose_block(block, index, files, kind)
        images.append(image)
        drawn, missing = drawn + n, missing + lost
    return OverlayImages(model, kind, images, drawn, missing)


def model_names(path: Path) -> list[str]:
    """Models with stored predictions, the most recently predicted first (worker)."""
    with Catalog.open(path, readonly=True) as catalog:
        return catalog.predictions.models_newest_first()


class PredictionOverlay(QObject):
    """The overlay's controls (:attr:`show`, :attr:`model`, :attr:`kind`, :attr:`legend`)
    and its graphics items; the Map panel puts the controls in its bar and calls
    :meth:`set_map` whenever the map is (re)loaded and :meth:`clear` when it closes."""

    def __init__(self, scene: QGraphicsScene, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._scene = scene
        self._items: list[QGraphicsPixmapItem] = []
        self._map: tuple[Path, ti.TileIndex, lay.MapLayout] | None = None
        self.overlay: OverlayImages | None = None
        self.show = QCheckBox("Predictions")
        self.show.setToolTip("Draw a model's predicted probability (or mask) over the scenes, from the tile "
                             "predictions stored in the project")
        self.show.setEnabled(False)
        self.show.toggled.connect(self._on_toggled)
        self.model = QComboBox()
        self.model.setToolTip("The model whose predictions are drawn (newest first)")
        self.model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.model.activated.connect(lambda _i: self._reload())
        self.kind = QComboBox()
        self.kind.addItems(list(OVERLAY_KINDS))
        self.kind.setToolTip("Probability (yellow to red) or the thresholded mask (red)")
        self.kind.activated.connect(lambda _i: self._reload())
        self.legend = QLabel()
        self.status = QLabel("")
        self._call = LatestCall(self)
        self._call.finished.connect(self._on_loaded)
        self._call.failed.connect(lambda m: self.status.setText(f"predictions not drawn: {m}"))
        self._models_call = LatestCall(self)
        self._models_call.finished.connect(self._on_models)
        self._update_controls()

    # ---- map lifecycle
    def set_map(self, path: Path, index: ti.TileIndex, layout: lay.MapLayout, any_predicted: bool) -> None:
        """A (new) map is shown: list the models with predictions; redraw if the overlay is on."""
        self._remove_items()
        self.overlay = None
        self._map = (path, index, layout)
        self.show.setEnabled(any_predicted)
        if any_predicted:
            self._models_call.submit(lambda: model_names(path))
        else:
            self.model.clear()
        self._update_controls()

    def clear(self) -> None:
        self._call.cancel()
        self._models_call.cancel()
        self._remove_items()
        self._map, self.overlay = None, None
        self.model.clear()
        self.show.setEnabled(False)
        self._update_controls()

    def is_loading(self) -> bool:
        return self._call.is_busy() or self._models_call.is_busy()

    def shutdown(self) -> None:
        self._call.shutdown()
        self._models_call.shutdown()

    # ---- controls
    def _on_models(self, names: list[str]) -> None:
        current = self.model.currentText()
        self.model.clear()
        self.model.addItems(names)
        if current in names:
            self.model.setCurrentText(current)
        self._update_controls()
        if self.show.isChecked():
            self._reload()

    def _on_toggled(self, on: bool) -> None:
        if on and (self.overlay is None or not self._matches(self.overlay)):
            self._reload()
        for item in self._items:
            item.setVisible(on)
        self._update_controls()

    def _matches(self, overlay: OverlayImages) -> bool:
        return overlay.model == self.model.currentText() and overlay.kind == OVERLAY_KINDS[self.kind.currentText()]

    def _reload(self) -> None:
        self._update_controls()
        if self._map is None or not self.show.isChecked() or not self.model.currentText():
            return
        path, index, layout = self._map
        model, kind = self.model.currentText(), OVERLAY_KINDS[self.kind.currentText()]
        self.status.setText("Reading the predictions\u2026")
        self._call.submit(lambda: load_overlay(path, index, layout, model, kind))

    def _on_loaded(self, overlay: OverlayImages) -> None:
        if self._map is None or len(overlay.images) != len(self._map[2].blocks):
            return
        self._remove_items()
        self.overlay = overlay
        for image in overlay.images:
            if image is None:
                continue
            item = QGraphicsPixmapItem()
            item.setZValue(OVERLAY_Z)
            item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
            x0, y0, x1, y1 = image.rect
            h, w = image.rgba.shape[:2]
            qimage = QImage(image.rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
            item.setPixmap(QPixmap.fromImage(qimage))
            item.setPos(x0, y0)
            item.setTransform(item.transform().fromScale((x1 - x0) / w, (y1 - y0) / h))
            item.setVisible(self.show.isChecked())
            self._scene.addItem(item)
            self._items.append(item)
        lost = f", {overlay.missing} file(s) not found" if overlay.missing else ""
        self.status.setText(f"{overlay.tiles:,} predicted tile(s) of {overlay.model}{lost}")
        self._update_controls()

    def _remove_items(self) -> None:
        for item in self._items:
            self._scene.removeItem(item)
        self._items = []

    def _update_controls(self) -> None:
        on = self.show.isChecked() and self.show.isEnabled()
        for w in (self.model, self.kind, self.legend, self.status):
            w.setVisible(on)
        kind = OVERLAY_KINDS[self.kind.currentText()]
        self.legend.setPixmap(probability_legend() if kind == "prob" else mask_legend())
        self.legend.setToolTip("Predicted probability of landslide: transparent at 0, yellow to red towards 1"
                               if kind == "prob" else "Predicted landslide (probability above the model's threshold)")

    def items(self) -> list[QGraphicsPixmapItem]:
        """The overlay's graphics items, one per block with predictions (tests)."""
        return list(self._items)
