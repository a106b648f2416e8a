"""Validation previews during training: a few val tiles with the current best model's
prediction drawn over them (green TP, red FP, blue FN), refreshed when ``model.pt`` changes.

Seeing the masks is what tells a user whether a rising mIoU means "finds the scars" or
"paints everything". It must stay cheap next to a running training on CPU: at most
:data:`PREVIEW_TILES` tiles, one preview job at a time (an epoch that ends while one runs
is skipped; the next one catches up), inference with ``torch.inference_mode`` on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from casdesk.core.jobs import CancelToken, Job, Progress
from casdesk.gui.kit.workers import JobRunner

PREVIEW_TILES = 4
THUMB_PX = 128
COLOURS = {"tp": (40, 200, 60), "fp": (230, 40, 40), "fn": (40, 90, 240)}
ALPHA = 0.55


@dataclass(frozen=True)
class PreviewTile:
    name: str
    rgba: np.ndarray  # (rows, cols, 4) uint8: the tile with TP/FP/FN colours blended in
    iou: float | None


def confusion_overlay(rgb: np.ndarray, pred: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Blend TP (green), FP (red), FN (blue) into an (rows, cols, 3) uint8 image; RGBA out."""
    out = rgb.astype(np.float32)
    for key, hit in (("tp", pred & truth), ("fp", pred & ~truth), ("fn", ~pred & truth)):
        hit = hit & valid
        out[hit] = (1 - ALPHA) * out[hit] + ALPHA * np.asarray(COLOURS[key], dtype=np.float32)
    rgba = np.full((*rgb.shape[:2], 4), 255, dtype=np.uint8)
    rgba[..., :3] = np.clip(out, 0, 255).astype(np.uint8)
    return rgba


def preview_job(model_path: Path, project: Path, limit: int = PREVIEW_TILES) -> Job:
    """Predict up to ``limit`` val tiles of the model's split with the model file."""
    yield Progress(0, 1, "validation preview")
    from casdesk.gui.kit.torch_import import import_ml_quietly

    import_ml_quietly()  # loaded already when a run trained in this session
    from casdesk.core.dataset.splits import load_split
    from casdesk.core.project.catalog import Catalog
    from casdesk.core.raster.io import to_display_rgb
    from casdesk.ml.inference.scene import load_predictor
    from casdesk.ml.inference.tiles import predict_tile, tile_iou
    from casdesk.ml.training.data import read_tile

    predictor = load_predictor(model_path, "cpu")
    split = predictor.meta.get("split")
    with Catalog.open(project) as cat:
        parts = load_split(cat, split) if split else {}
        tiles = [t for t in cat.tiles() if parts.get(t.id) == "val"][:limit]
    out: list[PreviewTile] = []
    for tile in tiles:
        image, valid, mask = read_tile(tile.image_path, tile.mask_path)
        pred = (predict_tile(predictor, image, valid) > predictor.threshold) & valid
        truth = mask > 0
        iou = tile_iou(pred, truth, valid) if tile.mask_path is not None else None
        rgb = to_display_rgb(image.astype(tile_dtype(image)), valid)
        out.append(PreviewTile(tile.name, confusion_overlay(rgb, pred, truth, valid), iou))
    return out


def tile_dtype(image: np.ndarray) -> type:
    """uint8 data read as float32 is shown unstretched; anything else is stretched."""
    return np.uint8 if image.size and image.min() >= 0 and image.max() <= 255 else np.float32


def rgba_pixmap(rgba: np.ndarray, side: int = THUMB_PX) -> QPixmap:
    data = np.ascontiguousarray(rgba)
    h, w = data.shape[:2]
    image = QImage(data.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()  # own the pixels
    return QPixmap.fromImage(image).scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.FastTransformation)


class ValidationPreview(QWidget):
    """A row of val-tile thumbnails, refreshed by :meth:`on_epoch` when the best model changed."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner: JobRunner | None = None
        self._closed = False
        self.model_mtime: float | None = None
        self.tiles: list[PreviewTile] = []
        self.thumbs: list[QLabel] = []
        self._last_request: tuple[Path | None, Path | None, int | None] = (None, None, None)
        self.caption = QLabel("Validation preview: after the first epoch "
                              "(<span style='color:#28c83c'>TP</span> <span style='color:#e62828'>FP</span> "
                              "<span style='color:#285af0'>FN</span>)")
        self.row = QHBoxLayout()
        self.row.setContentsMargins(0, 0, 0, 0)
        self.row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addLayout(self.row)

    @property
    def busy(self) -> bool:
        return self.runner is not None and self.runner.is_running()

    def reset(self) -> None:
        self.model_mtime = None
        self.tiles = []
        self._show([])

    def on_epoch(self, run_dir: Path | None, project: Path | None, epoch: int | None = None) -> bool:
        """Start a preview when ``run_dir/model.pt`` changed and none runs; True if started."""
        self._last_request = (run_dir, project, epoch)
        if run_dir is None or project is None or self.busy or self._closed:
            return False
        model = run_dir / "model.pt"
        try:
            mtime = model.stat().st_mtime_ns
        except OSError:
            return False
        if mtime == self.model_mtime:
            return False
        self.model_mtime = mtime
        label = f" (best model, epoch {epoch})" if epoch else ""

        def factory(_token: CancelToken) -> Job:
            return preview_job(model, project)

        self.runner = JobRunner(factory, self, name="train-preview")
        self.runner.finished.connect(lambda tiles: self._on_tiles(tiles, label))
        self.runner.failed.connect(lambda m, _d: self.caption.setText(f"Validation preview unavailable: {m}"))
        self.runner.done.connect(self._catch_up)
        self.runner.start()
        return True

    def _catch_up(self) -> None:
        """An epoch skipped while this job ran may have saved a newer best model."""
        if not self._closed:
            self.on_epoch(*self._last_request)

    def _on_tiles(self, tiles: list[PreviewTile], label: str) -> None:
        self.tiles = list(tiles)
        self.caption.setText(
            f"Validation tiles{label}: <span style='color:#28c83c'>TP</span> "
            f"<span style='color:#e62828'>FP</span> <span style='color:#285af0'>FN</span>"
            if tiles else "Validation preview: the split has no val tiles")
        self._show(self.tiles)

    def _show(self, tiles: list[PreviewTile]) -> None:
        for thumb in self.thumbs:
            self.row.removeWidget(thumb)
            thumb.deleteLater()
        self.thumbs = []
        for i, tile in enumerate(tiles):
            thumb = QLabel()
            thumb.setPixmap(rgba_pixmap(tile.rgba))
            iou = "" if tile.iou is None else f"\nIoU {100 * tile.iou:.0f} %"
            thumb.setToolTip(f"{tile.name}{iou}")
            self.row.insertWidget(i, thumb)
            self.thumbs.append(thumb)

    def shutdown(self) -> None:
        self._closed = True
        if self.runner is not None:
            self.runner.shutdown(60_000)

