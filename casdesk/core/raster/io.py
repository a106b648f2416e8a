"""Raster IO: open any GeoTIFF/COG rasterio reads, read windows with a validity mask, and
stretch to 8-bit RGB for display.

Arrays are (bands, rows, cols), as rasterio reads them. Validity comes from the dataset's
own mask (internal mask band, alpha, or nodata value) and, for floating-point data, from
NaN; a released CAS tile has none of these and is all valid.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# GDAL's block cache defaults to 5 % of RAM and fills with every block a crop or a QC scan
# reads once; a bounded cache keeps peak memory independent of scene size. Set before
# rasterio initialises GDAL; a user's own GDAL_CACHEMAX wins.
os.environ.setdefault("GDAL_CACHEMAX", "48")
# By default GDAL lists a file's whole folder at every open to look for side-car files: a
# tile folder of the released dataset holds thousands of files, and the listing cost more
# than reading the tile (2,000 pairs in one folder: 5.3 ms per pair read instead of 2.8;
# opening a review tile from a 512-file folder took ~22 ms of the GUI thread). Without the
# listing GDAL probes the side-cars it knows one by one (.msk, .aux.xml, world files: see
# tests/core/test_raster_sidecars.py). A user's own setting wins.
os.environ.setdefault("GDAL_DISABLE_READDIR_ON_OPEN", "TRUE")

import rasterio  # noqa: E402
from affine import Affine  # noqa: E402
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError  # noqa: E402
from rasterio.windows import Window  # noqa: E402

from casdesk.core.errors import RasterError
from casdesk.core.project.catalog import is_project_file

IDENTITY = Affine.identity()


@dataclass(frozen=True)
class RasterInfo:
    """What casdesk needs to know about a raster, read once from its header."""

    path: Path
    width: int
    height: int
    count: int
    dtype: str
    crs_wkt: str | None
    transform: Affine
    nodata: float | None
    has_mask: bool
    georeferenced: bool

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel size along columns and rows in CRS units (also right for rotated grids)."""
        t = self.transform
        return math.hypot(t.a, t.d), math.hypot(t.b, t.e)

    @property
    def is_rotated(self) -> bool:
        return self.transform.b != 0 or self.transform.d != 0

    @property
    def crs_is_metric(self) -> bool:
        if not self.crs_wkt:
            return False
        from rasterio.crs import CRS

        crs = CRS.from_wkt(self.crs_wkt)
        return bool(crs.is_projected and (crs.linear_units or "").lower() in ("metre", "meter", "m"))

    def resolution_m(self) -> float | None:
        """Ground resolution in metres when the CRS is projected in metres, else None."""
        return float(self.resolution[0]) if self.crs_is_metric else None


def open_raster(path: str | Path) -> rasterio.io.DatasetReader:
    """Open a raster for reading, turning rasterio's errors into a :class:`RasterError`."""
    p = Path(path)
    if not p.exists():
        raise RasterError("file not found", p, "check the path")
    if is_project_file(p):  # GDAL would open (and close) the live database: never
        raise RasterError("this is a casdesk project file, not a raster", p, "pass the scene's GeoTIFF")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(p)
    except RasterioIOError as exc:
        raise RasterError(
            f"not a raster GDAL can read ({_first_line(exc)})", p, "is it a GeoTIFF, PNG or JPEG?"
        ) from exc


def is_lossy(ds: rasterio.io.DatasetReader) -> bool:
    """Whether a dataset is JPEG-compressed (a JPEG file or a JPEG GeoTIFF): no pixel can be
    trusted to hold an exact value (fill, label colours)."""
    return str(getattr(ds.compression, "value", ds.compression) or "").upper() == "JPEG"


def raster_info(path: str | Path) -> RasterInfo:
    with open_raster(path) as ds:
        return _info(ds, Path(path))


def _info(ds: rasterio.io.DatasetReader, path: Path) -> RasterInfo:
    georef = ds.crs is not None or ds.transform != IDENTITY
    flags = ds.mask_flag_enums[0] if ds.count else ()
    has_mask = any(f.name in ("per_dataset", "alpha", "nodata") for f in flags)
    return RasterInfo(
        path=path,
        width=ds.width,
        height=ds.height,
        count=ds.count,
        dtype=ds.dtypes[0],
        crs_wkt=ds.crs.to_wkt() if ds.crs else None,
        transform=ds.transform,
        nodata=None if ds.nodata is None else float(ds.nodata),
        has_mask=has_mask,
        georeferenced=georef,
    )


def check_scene(path: str | Path, sample: int = 256) -> RasterInfo:
    """Open a scene and make sure its pixels can be read and some are valid.

    Reads every block at a reduced resolution (one decimated read per band set) so that a
    corrupt file fails here, at import, not halfway through a crop.
    """
    p = Path(path)
    with open_raster(p) as ds:
        info = _info(ds, p)
        if info.count == 0:
            raise RasterError("the raster has no bands", p)
        try:
            for _, window in ds.block_windows(1):
                ds.read(1, window=window)
        except RasterioIOError as exc:
            raise RasterError(
                f"pixels cannot be read, the file is damaged ({_first_line(exc)})",
                p,
                "re-export or re-download the scene",
            ) from exc
        scale = max(1, max(ds.width, ds.height) // sample)
        shape = (max(1, ds.height // scale), max(1, ds.width // scale))
        valid = valid_mask(ds, out_shape=shape)
        if not valid.any():
            # a decimated read can miss thin valid areas: confirm at full resolution
            if not any(valid_mask(ds, window=w).any() for _, w in ds.block_windows(1)):
                raise RasterError(
                    "every pixel is nodata: the scene holds no image",
                    p,
                    "check the file's nodata value or pick another scene",
                )
    return info


def valid_mask(
    ds: rasterio.io.DatasetReader,
    window: Window | None = None,
    out_shape: tuple[int, int] | None = None,
    data: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean (rows, cols): True inside the footprint.

    GDAL's dataset mask decides (alpha band, internal mask, or nodata, where a pixel is
    valid when any band is valid: a dark pixel with one band at the nodata value is still
    image); floating-point pixels with a NaN in any band are invalid. Never the per-band
    masks: an alpha band's own mask is "all valid" and would make every pixel valid.
    """
    kwargs: dict[str, Any] = {"window": window, "boundless": False}
    if out_shape is not None:
        kwargs["out_shape"] = out_shape
    valid = ds.dataset_mask(**kwargs) > 0
    if np.issubdtype(np.dtype(ds.dtypes[0]), np.floating):
        if data is None:
            data = ds.read(**{**kwargs, "out_shape": None if out_shape is None else (ds.count, *out_shape)})
        valid &= np.all(np.isfinite(data), axis=0)
    return valid


def nodata_fill(ds: rasterio.io.DatasetReader) -> float:
    """The value written where there is no image (padding, outside the footprint): the
    dataset's nodata (NaN included), NaN for floating-point data without one, else 0."""
    if ds.nodata is not None:
        return float(ds.nodata)
    if np.issubdtype(np.dtype(ds.dtypes[0]), np.floating):
        return math.nan
    return 0.0


def read_window(
    path_or_ds: str | Path | rasterio.io.DatasetReader,
    window: Window | None = None,
    bands: Sequence[int] | None = None,
    boundless_fill: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read (bands, rows, cols) data and a (rows, cols) validity mask for a window.

    ``bands`` are 1-based indexes. A window that runs past the raster edge is read
    boundless: the outside is filled with ``boundless_fill`` (default :func:`nodata_fill`:
    the nodata value, NaN for float data, else 0) and is invalid in the mask.
    """
    own = not isinstance(path_or_ds, rasterio.io.DatasetReader)
    ds = path_or_ds if isinstance(path_or_ds, rasterio.io.DatasetReader) else open_raster(path_or_ds)
    try:
        indexes = list(bands) if bands else list(range(1, ds.count + 1))
        if window is None:
            window = Window(0, 0, ds.width, ds.height)
        inside = (
            window.col_off >= 0
            and window.row_off >= 0
            and window.col_off + window.width <= ds.width
            and window.row_off + window.height <= ds.height
        )
        fill = boundless_fill if boundless_fill is not None else nodata_fill(ds)
        try:
            if inside:
                data = ds.read(indexes, window=window)
            else:
                data = ds.read(indexes, window=window, boundless=True, fill_value=fill)
            valid = _valid_from(ds, window, data, inside)
        except RasterioIOError as exc:
            raise RasterError(
                f"pixels cannot be read in window {window_str(window)} ({_first_line(exc)})",
                Path(ds.name),
                "the file may be damaged",
            ) from exc
        if not inside:  # padding is nodata in every band (GDAL may fill an alpha band with 255)
            outside = np.ones(data.shape[1:], dtype=bool)
            r0, c0 = int(window.row_off), int(window.col_off)
            outside[max(0, -r0):max(0, ds.height - r0), max(0, -c0):max(0, ds.width - c0)] = False
            integer_nan = math.isnan(fill) and not np.issubdtype(data.dtype, np.floating)
            data[:, outside] = 0 if integer_nan else np.array(fill).astype(data.dtype)
            valid &= ~outside
        return data, valid
    finally:
        if own:
            ds.close()


def _valid_from(ds: rasterio.io.DatasetReader, window: Window, data: np.ndarray, inside: bool) -> np.ndarray:
    """Validity of read pixels from GDAL's dataset mask (see :func:`valid_mask`); computed
    from the data itself when the mask is only a nodata value (one pass instead of a
    second read of the masks)."""
    names = {f.name for fl in ds.mask_flag_enums for f in fl}
    if inside and names <= {"all_valid"}:
        valid = np.ones(data.shape[1:], dtype=bool)
    elif (inside and names == {"nodata"} and ds.nodata is not None and not math.isnan(ds.nodata)
          and data.shape[0] == ds.count):
        valid = np.any(data != np.array(ds.nodata, dtype=data.dtype), axis=0)
    else:
        valid = ds.dataset_mask(window=window, boundless=not inside) > 0
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.all(np.isfinite(data), axis=0)
    return valid


def window_str(window: Window) -> str:
    return f"row {int(window.row_off)}, col {int(window.col_off)}, {int(window.width)}x{int(window.height)}"


# --------------------------------------------------------------------------- display
def default_rgb_bands(count: int) -> tuple[int, ...]:
    """0-based band indexes shown as RGB: the first three, or one band as grey."""
    return (0, 1, 2) if count >= 3 else (0, 0, 0)


def percentile_limits(
    data: np.ndarray, valid: np.ndarray | None = None, low: float = 2.0, high: float = 98.0
) -> np.ndarray:
    """Per-band (low, high) percentile limits over valid pixels; shape (bands, 2)."""
    limits = np.zeros((data.shape[0], 2), dtype=np.float64)
    for i, band in enumerate(data):
        values = band[valid] if valid is not None else band.ravel()
        values = values[np.isfinite(values)] if np.issubdtype(values.dtype, np.floating) else values
        if values.size == 0:
            limits[i] = (0.0, 1.0)
            continue
        if values.size > 262_144:  # a strided sample is plenty for percentiles
            values = values[:: values.size // 262_144]
        lo, hi = np.percentile(values, [low, high])
        limits[i] = (lo, hi if hi > lo else lo + 1.0)
    return limits


def to_display_rgb(
    data: np.ndarray,
    valid: np.ndarray | None = None,
    bands: Sequence[int] | None = None,
    stretch: str = "auto",
    limits: np.ndarray | None = None,
    nodata_rgb: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """8-bit (rows, cols, 3) RGB for display from (bands, rows, cols) data.

    ``stretch``: ``"none"`` keeps uint8 values, ``"percentile"`` maps the 2-98 % range of
    valid pixels of each band to 0-255, ``"auto"`` keeps uint8 data and stretches other
    types. Explicit ``limits`` (bands, 2) override the percentiles (use one set of limits
    for all tiles of a scene so they look alike). Invalid pixels get ``nodata_rgb``.
    """
    bands = tuple(bands) if bands is not None else default_rgb_bands(data.shape[0])
    sel = data[list(bands)]
    if stretch == "auto":
        stretch = "none" if sel.dtype == np.uint8 else "percentile"
    if stretch == "none":
        if sel.dtype != np.uint8:
            sel = np.clip(np.nan_to_num(sel.astype(np.float64)), 0, 255)
        rgb = sel.astype(np.uint8)
    elif stretch == "percentile":
        lim = limits[list(bands)] if limits is not None else percentile_limits(sel, valid)
        f = sel.astype(np.float32)
        lo = lim[:, 0, None, None].astype(np.float32)
        span = (lim[:, 1] - lim[:, 0])[:, None, None].astype(np.float32)
        f = (f - lo) / span * 255.0
        rgb = np.clip(np.nan_to_num(f), 0, 255).astype(np.uint8)
    else:
        raise ValueError(f"unknown stretch {stretch!r}")
    rgb = np.ascontiguousarray(np.moveaxis(rgb, 0, -1))
    if valid is not None and not valid.all():
        rgb[~valid] = nodata_rgb
    return rgb


def _first_line(exc: BaseException) -> str:
    text = str(exc).replace("See previous exception for details.", "").strip().splitlines()
    return text[0].strip() if text and text[0].strip() else "GDAL read error"
