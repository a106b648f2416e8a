"""Writing model predictions: blending weights, block-aligned GeoTIFF strips, polygons.

Torch-free, so the window grid, the blend and the vector output can be tested and reused
(tile predictions, the label-error finder) without a model.

Probability rasters are **uint8**: ``value / 254`` is the landslide probability (0..254)
and **255 is nodata** (outside the scene footprint or the AOI). One byte keeps a whole
scene's probability map as small as the image and opens in QGIS with a plain 0-254
stretch; the rounding (0.2 %) is far below any model's calibration. ``float32`` with NaN
nodata is available on request for exact values. Mask rasters are uint8 0/1 with nodata 255.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio import features
from rasterio.enums import Resampling
from rasterio.windows import Window
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from casdesk.core.errors import OutputError
from casdesk.core.labels.io import crs_to_pixel, valid_polygonal
from casdesk.core.raster.io import open_raster

PROB_SCALE = 254
PROB_NODATA = 255
MASK_NODATA = 255
BLOCK = 256
"""GeoTIFF block side (pixels). Strips are written in whole block rows, so no compressed
block is ever written twice."""


# --------------------------------------------------------------------------- window grid
def window_starts(length: int, size: int, overlap: int) -> list[int]:
    """Offsets (pixels, may be negative) of windows of ``size`` covering ``[0, length)``.

    The grid starts ``overlap // 2`` pixels before the scene edge (the outside is reflect
    padded) so that edge pixels sit inside a window and get context, and steps by
    ``size - overlap`` until the far edge is covered with the same margin.
    """
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, {size}), not {overlap}")
    margin = overlap // 2
    step = size - overlap
    span = length + 2 * margin
    n = 1 if span <= size else math.ceil((span - size) / step) + 1
    return [-margin + k * step for k in range(n)]


def blend_ramp(size: int, overlap: int) -> np.ndarray:
    """1-D float32 weights of one window side: 1 in the middle, a sin^2 ramp of ``overlap``
    pixels at each end (never 0). Neighbouring ramps with step ``size - overlap`` sum to
    exactly 1 (sin^2 + cos^2), so blending is a partition of unity on the regular grid;
    the per-pixel weight sum is tracked anyway, which keeps the result exact where windows
    are skipped or the grid is cut."""
    w = np.ones(size, dtype=np.float64)
    if overlap > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
        n = min(overlap, size // 2)
        w[:n] = ramp[:n]
        w[size - n :] = np.minimum(w[size - n :], ramp[:n][::-1])
    return w.astype(np.float32)


def blend_weights(height: int, width: int, overlap: int) -> np.ndarray:
    """2-D (height, width) float32 weights: the outer product of the two side ramps."""
    return np.outer(blend_ramp(height, overlap), blend_ramp(width, overlap)).astype(np.float32)


def encode_probability(prob: np.ndarray, valid: np.ndarray, dtype: str = "uint8") -> np.ndarray:
    """Probabilities (0..1 float) to the stored form (module docstring), nodata outside ``valid``."""
    if dtype == "float32":
        out = prob.astype(np.float32, copy=True)
        out[~valid] = np.nan
        return out
    out = np.rint(np.clip(prob, 0.0, 1.0) * PROB_SCALE).astype(np.uint8)
    out[~valid] = PROB_NODATA
    return out


def decode_probability(stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probability float32 0..1, valid bool) from a stored probability array."""
    if np.issubdtype(stored.dtype, np.floating):
        valid = np.isfinite(stored)
        return np.where(valid, stored, 0).astype(np.float32), valid
    valid = stored != PROB_NODATA
    return np.where(valid, stored.astype(np.float32) / PROB_SCALE, 0).astype(np.float32), valid


# --------------------------------------------------------------------------- rasters
def output_profile(
    width: int, height: int, crs: Any, transform: Affine, dtype: str, nodata: float
) -> dict[str, Any]:
    """Tiled, DEFLATE-compressed single-band GeoTIFF profile (BIGTIFF when needed)."""
    profile: dict[str, Any] = {
        "driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": dtype,
        "crs": crs, "transform": transform, "nodata": nodata, "compress": "deflate",
        "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "BIGTIFF": "IF_SAFER",
    }
    if dtype == "uint8":
        profile["predictor"] = 2
    return profile


def overview_factors(width: int, height: int, smallest: int = BLOCK) -> list[int]:
    """2, 4, 8, ... until the overview fits in one ``smallest``-pixel block."""
    factors, f = [], 2
    while max(width, height) / f >= smallest / 2 and f <= 4096:
        factors.append(f)
        f *= 2
    return factors


def write_cog(src: Path, dst: Path, resampling: Resampling = Resampling.nearest, predictor: int | None = None) -> Path:
    """Copy a single-file raster to a Cloud-Optimized GeoTIFF with GDAL's COG driver:
    DEFLATE, 256-pixel blocks, overviews (``resampling``) down to one block, every IFD at
    the start and the overviews' data before the full-resolution image (what
    ``rio cogeo validate`` and GDAL's ``validate_cloud_optimized_geotiff.py`` check)."""
    from rasterio.shutil import copy as rio_copy

    options: dict[str, Any] = {
        "COMPRESS": "DEFLATE", "BLOCKSIZE": BLOCK, "BIGTIFF": "IF_SAFER",
        "OVERVIEWS": "IGNORE_EXISTING", "OVERVIEW_RESAMPLING": resampling.name.upper(),
    }
    if predictor:
        options["PREDICTOR"] = "YES"
    try:
        rio_copy(src, dst, driver="COG", **options)
    except (rasterio.errors.RasterioError, OSError) as exc:
        raise OutputError(f"cannot write the Cloud-Optimized GeoTIFF ({exc})", dst, "pick a writable folder") from exc
    return dst


class StripWriter:
    """Write a single-band raster top to bottom, rows in order, to a temporary file; on
    :meth:`commit` build overviews and rename it into place (atomic).

    Rows are buffered until a whole block row is available, so memory is one block row
    (``BLOCK x width``) and every compressed block is written exactly once.
    """

    def __init__(self, path: Path, profile: dict[str, Any], resampling: Resampling):
        self.path = Path(path)
        self.profile = profile
        self.resampling = resampling
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        self.width = int(profile["width"])
        self.height = int(profile["height"])
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._next_row = 0
        try:
            self._ds = rasterio.open(self.tmp, "w", **profile)
        except (rasterio.errors.RasterioIOError, OSError) as exc:
            raise OutputError(f"cannot write the output ({exc})", self.path, "pick a writable folder") from exc

    @property
    def rows_written(self) -> int:
        return self._next_row + self._pending_rows

    def write_rows(self, rows: np.ndarray) -> None:
        """Append ``rows`` (rows, width) below what was written so far."""
        if rows.shape[1] != self.width:
            raise ValueError(f"rows are {rows.shape[1]} wide, the raster {self.width}")
        if not rows.shape[0]:
            return
        self._pending.append(rows)
        self._pending_rows += rows.shape[0]
        if self._pending_rows >= BLOCK:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._pending:
            return
        data = np.concatenate(self._pending, axis=0) if len(self._pending) > 1 else self._pending[0]
        n = data.shape[0] if final else (data.shape[0] // BLOCK) * BLOCK
        if n:
            self._ds.write(data[:n][None], window=Window(0, self._next_row, self.width, n))
            self._next_row += n
        rest = data[n:]
        self._pending = [rest] if rest.shape[0] else []
        self._pending_rows = rest.shape[0]

    def commit(self) -> Path:
        """Flush, close, rewrite as a Cloud-Optimized GeoTIFF (:func:`write_cog`) and move
        it into place (atomic)."""
        self._flush(final=True)
        if self._next_row != self.height:
            self.abort()
            raise OutputError(f"internal error: {self._next_row} of {self.height} rows written", self.path)
        self._ds.close()
        cog = self.path.with_name(f".{self.path.name}.cog.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            write_cog(self.tmp, cog, self.resampling, predictor=self.profile.get("predictor"))
            os.replace(cog, self.path)
        except BaseException:
            cog.unlink(missing_ok=True)
            raise
        finally:
            self.tmp.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        if not self._ds.closed:
            self._ds.close()
        self.tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- vectors
@dataclass(frozen=True)
class LandslidePolygons:
    """Polygons of a predicted mask in the scene CRS, with one value per polygon."""

    geometries: list[BaseGeometry]
    area_m2: list[float]
    mean_prob: list[float]
    crs_wkt: str | None


def polygon_areas_m2(geoms: Sequence[BaseGeometry], crs_wkt: str | None) -> list[float]:
    """Areas in square metres: planar in a projected metric CRS, geodesic (WGS-84
    ellipsoid) in a geographic CRS, NaN when the raster has no CRS or other units."""
    if not crs_wkt:
        return [math.nan] * len(geoms)
    from pyproj import CRS, Geod

    crs = CRS.from_wkt(crs_wkt)
    if crs.is_geographic:
        geod = Geod(ellps="WGS84")
        return [abs(geod.geometry_area_perimeter(g)[0]) for g in geoms]
    unit = (crs.axis_info[0].unit_name if crs.axis_info else "").lower()
    if unit in ("metre", "meter", "m"):
        return [float(g.area) for g in geoms]
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else math.nan
    return [float(g.area) * factor * factor for g in geoms]


def _polygonize_band(mask_ds: Any) -> list[BaseGeometry]:
    """Valid MultiPolygons in the raster's CRS coordinates (its transform applied), one per
    8-connected component of the 1-pixels, holes kept.

    GDAL's polygoniser runs over the whole band (``rasterio.features.shapes`` on a band
    reads it line by line, so memory grows with the polygons, not the scene): a component
    is never cut by a chunk border. It runs 4-connected, which gives valid polygons (an
    8-connected ring touches itself where pixels meet at a corner); the polygons that meet
    at a corner are then grouped into one MultiPolygon per 8-connected component, which is
    valid (its parts touch at points only). Anything GEOS still finds invalid is repaired
    with ``make_valid``; pixel centres never move, so rasterized back the polygons give
    the mask.
    """
    band = rasterio.band(mask_ds, 1)
    polys = [shape(geom) for geom, value in features.shapes(band, mask=band, connectivity=4) if int(value) == 1]
    if not polys:
        return []
    parent = list(range(len(polys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # two 4-connected components meet only at a pixel corner, which is a vertex of both
    # rings: group the polygons that share a vertex (pixel-corner indexes, exact integers)
    coords = [shapely.get_coordinates(p) for p in polys]
    owner = np.repeat(np.arange(len(polys)), [len(c) for c in coords])
    xy = np.concatenate(coords)
    inv = ~mask_ds.transform
    cols = np.rint(inv.a * xy[:, 0] + inv.b * xy[:, 1] + inv.c).astype(np.int64)
    rows = np.rint(inv.d * xy[:, 0] + inv.e * xy[:, 1] + inv.f).astype(np.int64)
    key = rows * (int(mask_ds.width) + 2) + cols
    order = np.argsort(key, kind="stable")
    same = np.nonzero((key[order][1:] == key[order][:-1]) & (owner[order][1:] != owner[order][:-1]))[0]
    for a, b in zip(owner[order][same].tolist(), owner[order][same + 1].tolist(), strict=True):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[Polygon]] = {}
    for i, poly in enumerate(polys):
        groups.setdefault(root(i), []).append(poly)
    out: list[BaseGeometry] = []
    for members in groups.values():
        geom: BaseGeometry = MultiPolygon(members)
        if not geom.is_valid:
            geom = valid_polygonal(geom)
        if not geom.is_empty:
            out.append(geom)
    return out


def _polygon_stats(
    mask_ds: Any, prob_ds: Any | None, polys_px: Sequence[BaseGeometry], chunk_rows: int
) -> tuple[list[int], list[float]]:
    """(pixel count, mean probability) of each polygon's own pixels (scene pixel coordinates).

    The polygons are whole components, so this is exact whatever ``chunk_rows``: each strip
    of rows burns the ids of the polygons that reach it and sums their pixels' values."""
    n = len(polys_px)
    counts = np.zeros(n + 1, dtype=np.int64)
    sums = np.zeros(n + 1, dtype=np.float64)
    if not n:
        return [], []
    tree = STRtree(list(polys_px))
    height, width = mask_ds.height, mask_ds.width
    step = max(1, int(chunk_rows))
    for r0 in range(0, height, step):
        rows = min(step, height - r0)
        hits = tree.query(shapely.box(0, r0, width, r0 + rows), predicate="intersects")
        if not len(hits):
            continue
        ids = features.rasterize(
            [(polys_px[i], int(i) + 1) for i in hits],
            out_shape=(rows, width),
            transform=Affine.translation(0, r0),
            dtype="int32",
        )
        window = Window(0, r0, width, rows)
        ids[mask_ds.read(1, window=window) != 1] = 0
        counts += np.bincount(ids.ravel(), minlength=n + 1)
        if prob_ds is not None:
            prob, valid = decode_probability(prob_ds.read(1, window=window))
            ids[~valid] = 0
            sums += np.bincount(ids.ravel(), weights=prob.ravel(), minlength=n + 1)
    means = [float(sums[i + 1] / counts[i + 1]) if prob_ds is not None and counts[i + 1] else math.nan for i in range(n)]
    return [int(c) for c in counts[1:]], means


def vectorize_prediction(
    mask_path: Path,
    prob_path: Path | None = None,
    *,
    min_area_m2: float = 0.0,
    simplify: float = 0.0,
    chunk_rows: int = 512,
) -> LandslidePolygons:
    """Valid MultiPolygons (holes kept), one per 8-connected component of the 1-pixels of
    a predicted mask GeoTIFF, in its CRS.

    ``min_area_m2`` drops polygons smaller than that many square metres (ignored when
    areas are unknown: no CRS); ``simplify`` is a tolerance in map units (topology kept,
    repaired if needed). ``mean_prob`` is the mean probability of each polygon's own pixels
    from ``prob_path`` (NaN without it), summed ``chunk_rows`` rows at a time. The band is
    polygonised whole (:func:`_polygonize_band`), so no result depends on ``chunk_rows``.
    """
    with open_raster(mask_path) as mask_ds:
        transform = mask_ds.transform
        crs_wkt = mask_ds.crs.to_wkt() if mask_ds.crs else None
        prob_ds = open_raster(prob_path) if prob_path is not None else None
        try:
            geoms = _polygonize_band(mask_ds)
            areas = polygon_areas_m2(geoms, crs_wkt)
            keep = [i for i, a in enumerate(areas) if not (a < min_area_m2)]  # NaN areas are kept
            _counts, means = _polygon_stats(mask_ds, prob_ds, [crs_to_pixel(geoms[i], transform) for i in keep], chunk_rows)
        finally:
            if prob_ds is not None:
                prob_ds.close()
    out_geoms = []
    for i in keep:
        g = geoms[i]
        if simplify > 0:
            g = valid_polygonal(g.simplify(simplify, preserve_topology=True))
        out_geoms.append(_as_multi(g))
    return LandslidePolygons(out_geoms, [areas[i] for i in keep], means, crs_wkt)


def _as_multi(geom: BaseGeometry) -> BaseGeometry:
    return MultiPolygon([geom]) if isinstance(geom, Polygon) else geom
