"""Tile thumbnails and detail views for display: decode, overlay, and cache on disk.

Decoding a 512x512 GeoTIFF tile and its mask costs a few milliseconds; a grid of 20,000
tiles is browsed by scrolling, so thumbnails are decoded once at a few fixed sizes
(:data:`SIZES`) and kept as small files (JPEG image + PNG mask) in
``<project>.casdesk.d/thumbs/``. A cached
file is named after the tile id and a digest of the tile's ``modified`` timestamp and of its
files' sizes and modification times (``modified`` has one-second resolution), so a tile
whose mask was regenerated (``Catalog.touch_tile``) gets a new file and the old one is
deleted on the next write.

Pure numpy/rasterio/OpenCV: the GUI calls these functions in worker threads.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

from casdesk.core.errors import RasterError
from casdesk.core.raster.io import default_rgb_bands, open_raster, read_window, to_display_rgb

SIZES = (64, 128, 256, 512)
"""Thumbnail sizes decoded and cached (pixels, longest side); others are scaled at paint."""
OVERLAY_RGB = (255, 40, 40)
"""Landslide overlay colour."""


def size_bucket(pixels: int) -> int:
    """The cached size to decode for a thumbnail shown ``pixels`` wide (the next larger)."""
    for s in SIZES:
        if pixels <= s:
            return s
    return SIZES[-1]


@dataclass(frozen=True)
class Thumbnail:
    """A decoded thumbnail: ``rgb`` (rows, cols, 3) uint8 and ``mask`` (rows, cols) uint8
    0/1, or None when the tile has no mask file."""

    rgb: np.ndarray
    mask: np.ndarray | None

    @property
    def nbytes(self) -> int:
        return int(self.rgb.nbytes + (0 if self.mask is None else self.mask.nbytes))


def _fit(rows: int, cols: int, size: int) -> tuple[int, int]:
    """(rows, cols) scaled so the longest side is ``size`` (never upsampled)."""
    scale = min(1.0, size / max(rows, cols, 1))
    return max(1, round(rows * scale)), max(1, round(cols * scale))


def decode_thumbnail(image_path: str | Path, mask_path: str | Path | None, size: int) -> Thumbnail:
    """Read a tile at thumbnail resolution (GDAL decimated read, averaged) with its mask.

    16-bit and float tiles get the same 2-98 % percentile stretch as the detail view. A mask
    is reduced so that any landslide pixel marks the thumbnail pixel, so thin scars stay visible at 64 px.
    """
    with open_raster(image_path) as ds:
        rows, cols = _fit(ds.height, ds.width, size)
        bands = sorted(set(default_rgb_bands(ds.count)))
        indexes = [b + 1 for b in bands]
        data = ds.read(indexes, out_shape=(len(indexes), rows, cols), resampling=Resampling.average)
        masks = ds.read_masks(indexes, out_shape=(len(indexes), rows, cols))
        valid = np.any(masks > 0, axis=0)
        if np.issubdtype(data.dtype, np.floating):
            valid &= np.all(np.isfinite(data), axis=0)
        order = [bands.index(b) for b in default_rgb_bands(ds.count)]
        rgb = to_display_rgb(data, valid, bands=order)
    mask = None
    if mask_path is not None and Path(mask_path).exists():
        with open_raster(mask_path) as ms:
            band = ms.read(1)
            ones = band > 0 if ms.nodata is None else (band > 0) & (band != ms.nodata)  # 255 = ignore
            full = ones.astype(np.uint8) * 255
        if full.shape != (rows, cols):
            full = cv2.resize(full, (cols, rows), interpolation=cv2.INTER_AREA)
        mask = (full > 0).astype(np.uint8)
    return Thumbnail(rgb, mask)


def mask_outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Boolean (rows, cols): mask pixels on the mask's boundary (``width`` pixels thick)."""
    m = (mask > 0).astype(np.uint8)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    eroded = cv2.erode(m, kernel, borderType=cv2.BORDER_REPLICATE)
    return (m > 0) & (eroded == 0)


def overlay_mask(
    rgb: np.ndarray,
    mask: np.ndarray | None,
    mode: str = "fill",
    opacity: float = 0.5,
    color: tuple[int, int, int] = OVERLAY_RGB,
) -> np.ndarray:
    """``rgb`` with the landslide mask blended in: ``mode`` "fill" or "outline";
    ``opacity`` 0..1. Returns a new array (the input is not modified)."""
    out = rgb.copy()
    if mask is None or opacity <= 0:
        return out
    if mode == "fill":
        sel = mask > 0
    elif mode == "outline":
        sel = mask_outline(mask, width=max(1, min(rgb.shape[:2]) // 128))
    else:
        raise ValueError(f"unknown overlay mode {mode!r}")
    a = float(np.clip(opacity, 0.0, 1.0))
    blend = out[sel].astype(np.float32) * (1 - a) + np.array(color, np.float32) * a
    out[sel] = np.clip(blend + 0.5, 0, 255).astype(np.uint8)
    return out


def render_thumbnail(
    image_path: str | Path,
    mask_path: str | Path | None,
    size: int,
    mode: str | None = "fill",
    opacity: float = 0.5,
) -> np.ndarray:
    """A thumbnail as (rows, cols, 3) uint8 with the mask overlaid (``mode`` None: no mask)."""
    thumb = decode_thumbnail(image_path, mask_path, size)
    return thumb.rgb if mode is None else overlay_mask(thumb.rgb, thumb.mask, mode, opacity)


# --------------------------------------------------------------------------- disk cache
class ThumbnailCache:
    """Thumbnails on disk, one file per (tile, size, version): the image as JPEG (quality
    :data:`JPEG_QUALITY`) and the mask as PNG in one small container (``.thumb``).

    JPEG and a two-level PNG encode in well under a millisecond, a PNG of the image takes
    several; a thumbnail need not be lossless. Safe to use from several threads (and
    processes): files are written to a unique temporary name and renamed into place.
    """

    SUFFIX = ".thumb"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._seq = 0
        self._lock = threading.Lock()

    @classmethod
    def for_project(cls, data_dir: str | Path) -> ThumbnailCache:
        return cls(Path(data_dir) / "thumbs")

    def path(self, tile_id: int, modified: str, size: int, stamp: str = "") -> Path:
        """Cache file of a tile: ``modified`` is the catalog's, ``stamp`` a :func:`file_stamp`."""
        digest = hashlib.blake2s(f"{modified}|{stamp}".encode(), digest_size=6).hexdigest()
        return self.folder / str(size) / f"{tile_id % 997:03d}" / f"{tile_id}-{digest}{self.SUFFIX}"

    def get(self, tile_id: int, modified: str, size: int, stamp: str = "") -> Thumbnail | None:
        buf = _read_bytes(self.path(tile_id, modified, size, stamp))
        return None if buf is None else unpack_thumbnail(buf)

    def put(self, tile_id: int, modified: str, size: int, thumb: Thumbnail, stamp: str = "") -> None:
        """Store a thumbnail and delete older versions of the same tile and size."""
        p = self.path(tile_id, modified, size, stamp)
        p.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._seq += 1
            tmp = p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.{self._seq}.tmp")
        try:
            tmp.write_bytes(pack_thumbnail(thumb))
            os.replace(tmp, p)
        except OSError:
            tmp.unlink(missing_ok=True)
            return  # a read-only project folder: thumbnails just stay uncached
        for old in p.parent.glob(f"{tile_id}-*{self.SUFFIX}"):
            if old != p:
                old.unlink(missing_ok=True)

    def load(
        self,
        tile_id: int,
        modified: str,
        size: int,
        image_path: str | Path,
        mask_path: str | Path | None,
    ) -> Thumbnail:
        """The cached thumbnail, or decode, store and return it."""
        stamp = file_stamp(image_path, mask_path)
        thumb = self.get(tile_id, modified, size, stamp)
        if thumb is None:
            thumb = decode_thumbnail(image_path, mask_path, size)
            self.put(tile_id, modified, size, thumb, stamp)
        return thumb


def file_stamp(*paths: str | Path | None) -> str:
    """Size and modification time (ns) of each file: changes when a file is rewritten."""
    parts = []
    for p in paths:
        try:
            st = os.stat(p) if p is not None else None
        except OSError:
            st = None
        parts.append("-" if st is None else f"{st.st_size}:{st.st_mtime_ns}")
    return ",".join(parts)


JPEG_QUALITY = 90
_MAGIC = b"CDTH1"


def pack_thumbnail(thumb: Thumbnail) -> bytes:
    """``MAGIC | jpeg length (4 bytes, little endian) | JPEG image | PNG mask (optional)``."""
    ok, jpeg = cv2.imencode(
        ".jpg", cv2.cvtColor(thumb.rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise ValueError("thumbnail cannot be encoded")
    parts = [_MAGIC, len(jpeg).to_bytes(4, "little"), jpeg.tobytes()]
    if thumb.mask is not None:
        ok, png = cv2.imencode(".png", thumb.mask * 255, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        parts.append(png.tobytes())
    return b"".join(parts)


def unpack_thumbnail(buf: bytes) -> Thumbnail | None:
    """The thumbnail in ``buf``, or None when it is not one (damaged: decoded again)."""
    head = len(_MAGIC) + 4
    if len(buf) < head or not buf.startswith(_MAGIC):
        return None
    n = int.from_bytes(buf[len(_MAGIC) : head], "little")
    data = np.frombuffer(buf, np.uint8)
    bgr = cv2.imdecode(data[head : head + n], cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    mask = None
    if len(buf) > head + n:
        m = cv2.imdecode(data[head + n :], cv2.IMREAD_GRAYSCALE)
        if m is None or m.shape != bgr.shape[:2]:
            return None
        mask = (m > 127).astype(np.uint8)
    return Thumbnail(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), mask)


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


# --------------------------------------------------------------------------- detail view
@dataclass(frozen=True)
class TileView:
    """Pixels for the detail view: a tile, optionally with its neighbourhood in the scene.

    ``data`` (bands, rows, cols) in the file's dtype and ``valid`` cover the whole window;
    ``mask``/``prediction`` (rows, cols) uint8 0/1 cover it too (0 outside the tile).
    ``tile_box`` is the tile's (row, col, height, width) inside the window; ``transform``
    maps window (col, row) to map coordinates in ``crs_wkt``.
    """

    data: np.ndarray
    valid: np.ndarray
    mask: np.ndarray | None
    prediction: np.ndarray | None
    tile_box: tuple[int, int, int, int]
    transform: Affine
    crs_wkt: str | None
    from_scene: bool

    def map_xy(self, col: float, row: float) -> tuple[float, float]:
        """Map coordinates of a window pixel position (pixel corner at integer values)."""
        return self.transform * (col, row)


def _read_mask(path: str | Path | None) -> np.ndarray | None:
    if path is None or not Path(path).exists():
        return None
    with open_raster(path) as ds:
        band, nodata = ds.read(1), ds.nodata
    return ((band > 0) & (band != nodata if nodata is not None else True)).astype(np.uint8)  # 255 = ignore


def read_tile_view(
    image_path: str | Path,
    mask_path: str | Path | None = None,
    prediction_path: str | Path | None = None,
    scene_path: str | Path | None = None,
    tile_offset: tuple[int, int] | None = None,
    context_px: int = 0,
) -> TileView:
    """Read a tile for the detail view; with ``scene_path``, ``tile_offset`` (row, col in the
    scene) and ``context_px`` > 0, read that many scene pixels around it as well (boundless:
    beyond the scene edge is invalid). Falls back to the tile alone when the scene file is
    gone."""
    with open_raster(image_path) as ds:
        rows, cols = ds.height, ds.width
        tile_transform = ds.transform
        crs = ds.crs.to_wkt() if ds.crs else None
        data, valid = read_window(ds)
    mask = _read_mask(mask_path)
    pred = _read_mask(prediction_path)
    if scene_path is None or tile_offset is None or context_px <= 0 or not Path(scene_path).exists():
        return TileView(data, valid, mask, pred, (0, 0, rows, cols), tile_transform, crs, False)
    r0, c0 = tile_offset
    window = Window(c0 - context_px, r0 - context_px, cols + 2 * context_px, rows + 2 * context_px)
    try:
        with open_raster(scene_path) as ss:
            big, big_valid = read_window(ss, window)
            transform = ss.transform * Affine.translation(window.col_off, window.row_off)
            crs = ss.crs.to_wkt() if ss.crs else crs
    except RasterError:
        return TileView(data, valid, mask, pred, (0, 0, rows, cols), tile_transform, crs, False)

    def place(m: np.ndarray | None) -> np.ndarray | None:
        if m is None:
            return None
        out = np.zeros(big_valid.shape, np.uint8)
        out[context_px : context_px + rows, context_px : context_px + cols] = m[:rows, :cols]
        return out

    box = (context_px, context_px, rows, cols)
    return TileView(big, big_valid, place(mask), place(pred), box, transform, crs, True)


def confusion_rgba(label: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """(rows, cols, 4) uint8 colours of prediction vs label: true positive green, false
    positive red, false negative blue, true negative transparent."""
    lab = label > 0
    pred = prediction > 0
    out = np.zeros((*lab.shape, 4), np.uint8)
    out[lab & pred] = (40, 200, 60, 255)
    out[~lab & pred] = (230, 40, 40, 255)
    out[lab & ~pred] = (40, 110, 255, 255)
    return out
