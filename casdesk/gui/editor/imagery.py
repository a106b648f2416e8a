"""Streamed image pixels under the editor's shapes.

A decimated overview (at most ``OVERVIEW_PX`` on its long side, read through the file's own
overviews when it has them) covers the whole image; when the view zooms in past it, blocks
of ``BLOCK_PX`` screen-resolution pixels are read for the visible area only, in a thread
pool, at the power-of-two decimation that matches the zoom. A 20,000 x 20,000 scene thus
opens with one small read and pans with a few block reads, never a full-resolution read.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRectF, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene
from rasterio.enums import Resampling
from rasterio.windows import Window

from casdesk.core.errors import CasdeskError
from casdesk.core.raster.io import open_raster, percentile_limits, to_display_rgb

log = logging.getLogger(__name__)
OVERVIEW_PX = 2048
BLOCK_PX = 512
MAX_BLOCKS = 96
Z_OVERVIEW, Z_BLOCKS = 0.0, 1.0


def read_display(
    path: Path, window: Window, out_shape: tuple[int, int] | None, limits: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB uint8 (rows, cols, 3) of a window, decimated to ``out_shape``; returns the
    stretch limits used (computed here when ``limits`` is None and the data is not uint8)."""
    with open_raster(path) as ds:
        bands = [1, 2, 3] if ds.count >= 3 else [1, 1, 1]
        kwargs = {"window": window, "boundless": False}
        if out_shape is not None:
            kwargs.update(out_shape=(len(bands), *out_shape), resampling=Resampling.average)
        data = ds.read(bands, **kwargs)
        masks = ds.read_masks(bands[:1], **kwargs)[0] > 0
    if data.dtype != np.uint8 and limits is None:
        limits = percentile_limits(data, masks)
    rgb = to_display_rgb(data, masks, bands=(0, 1, 2), limits=limits)
    return rgb, limits


def to_qimage(rgb: np.ndarray) -> QImage:
    h, w = rgb.shape[:2]
    return QImage(np.ascontiguousarray(rgb).data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class _Emitter(QObject):
    # one tuple (key, QImage | None, error text | limits | None): a bare None through a
    # queued ``object`` signal corrupts its refcount in PySide6 on Python 3.11
    done = Signal(object)


def _read_task(
    key: tuple, path: Path, window: Window, out_shape: tuple[int, int] | None, limits: np.ndarray | None, emitter: _Emitter
) -> None:
    """Runs in the pool: read, stretch, hand a QImage back to the GUI thread."""
    try:
        rgb, used = read_display(path, window, out_shape, limits)
        emitter.done.emit((key, to_qimage(rgb), used))
    except (CasdeskError, OSError, ValueError) as exc:
        emitter.done.emit((key, None, str(exc)))
    except Exception as exc:  # noqa: BLE001 - a failed block must not kill the pool
        log.exception("image block read failed")
        emitter.done.emit((key, None, str(exc)))


class ImageLayer(QObject):
    """Overview + visible blocks of one raster, as pixmap items in ``scene``."""

    overview_ready = Signal()
    failed = Signal(str)

    def __init__(self, scene: QGraphicsScene, parent: QObject | None = None):
        super().__init__(parent)
        self.scene = scene
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self._emitter = _Emitter(self)
        self._emitter.done.connect(self._on_done)
        self.path: Path | None = None
        self.width = self.height = 0
        self.limits: np.ndarray | None = None
        self.overview_factor = 1
        self._generation = 0
        self._overview: QGraphicsPixmapItem | None = None
        self._blocks: OrderedDict[tuple, QGraphicsPixmapItem] = OrderedDict()
        self._pending: set[tuple] = set()
        self.level = 0

    def open(self, path: Path, width: int, height: int) -> None:
        """Show ``path``; the overview arrives asynchronously (``overview_ready``)."""
        self.clear()
        self._generation += 1
        self.path, self.width, self.height = Path(path), width, height
        self.overview_factor = max(1, math.ceil(max(width, height) / OVERVIEW_PX))
        shape = (max(1, height // self.overview_factor), max(1, width // self.overview_factor))
        key = (self._generation, "overview")
        self._pending.add(key)
        out_shape = None if self.overview_factor == 1 else shape
        path, emitter = self.path, self._emitter
        self.pool.start(lambda: _read_task(key, path, Window(0, 0, width, height), out_shape, None, emitter))

    def clear(self) -> None:
        self._generation += 1
        self._pending.clear()
        for item in self._blocks.values():
            self.scene.removeItem(item)
        self._blocks.clear()
        if self._overview is not None:
            self.scene.removeItem(self._overview)
            self._overview = None
        self.limits = None

    def idle(self) -> bool:
        return not self._pending

    def update_view(self, visible: QRectF, zoom: float) -> None:
        """Request the blocks the visible area needs at ``zoom`` (screen px per image px)."""
        if self.path is None or self.limits is None and self._overview is None:
            return
        level = 1
        while level * 2 <= 1.0 / max(zoom, 1e-9):
            level *= 2
        if level >= self.overview_factor:
            self.level = 0
            return  # the overview is as sharp as the screen
        self.level = level
        span = BLOCK_PX * level
        c0 = max(0, int(visible.left() // span))
        r0 = max(0, int(visible.top() // span))
        c1 = min((self.width - 1) // span, int(visible.right() // span))
        r1 = min((self.height - 1) // span, int(visible.bottom() // span))
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                key = (self._generation, level, r, c)
                if key in self._blocks:
                    self._blocks.move_to_end(key)
                    continue
                if key in self._pending:
                    continue
                x0, y0 = c * span, r * span
                w, h = min(span, self.width - x0), min(span, self.height - y0)
                out = (max(1, h // level), max(1, w // level)) if level > 1 else None
                self._pending.add(key)
                self._submit(key, self.path, Window(x0, y0, w, h), out)

    def _submit(self, key: tuple, path: Path, window: Window, out: tuple[int, int] | None) -> None:
        limits, emitter = self.limits, self._emitter
        self.pool.start(lambda: _read_task(key, path, window, out, limits, emitter))

    def _on_done(self, payload: tuple) -> None:
        key, image, extra = payload
        self._pending.discard(key)
        if key[0] != self._generation:
            return
        if image is None:
            self.failed.emit(str(extra))
            return
        item = QGraphicsPixmapItem(QPixmap.fromImage(image))
        item.setTransformationMode(Qt.TransformationMode.FastTransformation)
        if key[1] == "overview":
            if isinstance(extra, np.ndarray):
                self.limits = extra
            sx = self.width / image.width()
            sy = self.height / image.height()
            item.setTransform(item.transform().scale(sx, sy))
            item.setZValue(Z_OVERVIEW)
            self.scene.addItem(item)
            self._overview = item
            self.overview_ready.emit()
            return
        _, level, r, c = key
        span = BLOCK_PX * level
        item.setPos(c * span, r * span)
        w, h = min(span, self.width - c * span), min(span, self.height - r * span)
        item.setTransform(item.transform().scale(w / image.width(), h / image.height()))
        item.setZValue(Z_BLOCKS + 1.0 / level)  # finer levels on top
        self.scene.addItem(item)
        self._blocks[key] = item
        while len(self._blocks) > MAX_BLOCKS:
            _, old = self._blocks.popitem(last=False)
            self.scene.removeItem(old)

    def read_rgb(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Full-resolution RGB of a window (for assisted labelling), read now."""
        if self.path is None:
            raise CasdeskError("no image is open")
        rgb, _ = read_display(self.path, Window(x0, y0, x1 - x0, y1 - y0), None, self.limits)
        return rgb

    def shutdown(self) -> None:
        self._generation += 1
        self.pool.clear()
        self.pool.waitForDone(10_000)
