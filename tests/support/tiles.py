"""Small synthetic rasters for the tests: the one place that writes test GeoTIFF/PNG tiles,
masks and scenes, and draws the landslide-like shapes they show.

Every folder of the suite writes its rasters with :func:`write_raster`; the georeferencing
a test needs is passed explicitly (a :class:`Georef` such as :data:`UTM33_2M`, or
``crs=..., transform=...``), and a raster without them is written ungeoreferenced, as the
released CAS tiles are. The shape makers return arrays only, so each test still decides what it writes
where. Import with ``from tests.support.tiles import write_raster`` (the repository root is
on the test path: ``pythonpath`` in ``pyproject.toml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import rasterio
from affine import Affine


class Georef(NamedTuple):
    """Where a test raster lies: its CRS and pixel-to-map transform."""

    crs: str
    transform: Affine


UTM33_HALF_M = Georef("EPSG:32633", Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0))
"""0.5 m pixels in UTM 33N: the ML tests' tiles."""
UTM33_2M = Georef("EPSG:32633", Affine(2.0, 0, 500000.0, 0, -2.0, 4000000.0))
"""2 m pixels in UTM 33N: the prediction tests' scenes, the label tests' tiles."""
UTM18_HALF_M = Georef("EPSG:32618", Affine(0.5, 0, 500000.0, 0, -0.5, 3300000.0))
"""0.5 m pixels in UTM 18N: the tile browser's tiles."""


def write_raster(
    path: Path,
    data: np.ndarray,
    georef: Georef | None = None,
    *,
    crs: str | None = None,
    transform: Affine | None = None,
    nodata: float | None = None,
    dtype: str | None = None,
    driver: str = "GTiff",
) -> Path:
    """Write ``data`` ((bands, rows, cols), or (rows, cols) for one band) to ``path`` and
    return it; the folder is created.

    ``georef`` places it (``crs``/``transform`` override its parts); without either the
    raster is not georeferenced. ``nodata`` is written only when given; ``dtype`` casts
    the data (default: its own type)."""
    if georef is not None:
        crs = crs or georef.crs
        transform = transform or georef.transform
    array = np.asarray(data)
    if array.ndim == 2:
        array = array[None]
    if dtype is not None:
        array = array.astype(dtype)
    profile: dict[str, object] = {
        "driver": driver,
        "width": array.shape[2],
        "height": array.shape[1],
        "count": array.shape[0],
        "dtype": array.dtype.name,
    }
    if crs is not None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = transform
    if nodata is not None:
        profile["nodata"] = nodata
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(array)
    return path


def read_band(path: Path, band: int = 1) -> np.ndarray:
    """One band of a raster (the mask of a tile, by default the first band)."""
    with rasterio.open(path) as ds:
        return ds.read(band)


def blob_mask(seed: int, px: int = 64) -> np.ndarray:
    """A round landslide mask (uint8 0/1, shape (1, px, px)) placed by ``seed``; empty for
    seed 0."""
    mask = np.zeros((1, px, px), np.uint8)
    if seed:
        rng = np.random.default_rng(seed)
        cy, cx = rng.integers(px // 4, 3 * px // 4, 2)
        yy, xx = np.mgrid[:px, :px]
        mask[0][(yy - cy) ** 2 + (xx - cx) ** 2 < (px // 6) ** 2] = 1
    return mask


def square_tile(
    rng: np.random.Generator, size: int, square: int, corners: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 image (3, size, size), mask 0/1): a bright (200) ``square`` x ``square``
    landslide on dark noise (30..89); its top-left corner (row, col) is drawn from
    ``rng`` in ``[corners[0], corners[1])``, after the noise."""
    img = rng.integers(30, 90, size=(3, size, size), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    r, c = rng.integers(corners[0], corners[1], size=2)
    mask[r:r + square, c:c + square] = 1
    img[:, mask == 1] = 200
    return img, mask


def scar_tile(rng: np.random.Generator, size: int, bands: int, dtype: str,
              border: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, mask 0/1, valid) with 1..2 bright, reddish elliptic scars on a textured
    background (a small model learns them in a few CPU epochs); ``border`` adds a nodata
    strip (0) on the left quarter."""
    yy, xx = np.mgrid[0:size, 0:size]
    mask = np.zeros((size, size), dtype=np.uint8)
    for _ in range(rng.integers(1, 3)):
        cy, cx = rng.uniform(0.2, 0.8, 2) * size
        ry, rx = rng.uniform(0.1, 0.25, 2) * size
        mask |= (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1).astype(np.uint8)
    scale = 255.0 if dtype == "uint8" else 4000.0
    base = rng.uniform(0.15, 0.35, (bands, size, size)) * scale
    scar = np.linspace(0.7, 0.9, bands)[:, None, None] * scale
    image = np.where(mask[None] > 0, scar + rng.normal(0, 0.03 * scale, (bands, size, size)), base)
    image = np.clip(image, 1, scale).astype(dtype)
    valid = np.ones((size, size), dtype=bool)
    if border:
        valid[:, : size // 4] = False
        image[:, ~valid] = 0
    return image, mask, valid


def scar_scene(h: int, w: int, seed: int = 0, n: int = 6, border: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 image (3, h, w), truth mask) with ``n`` bright elliptic scars on a dark,
    textured background; ``border`` columns/rows of nodata (0) on the left and top."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.zeros((h, w), dtype=np.uint8)
    for _ in range(n):
        cy, cx = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
        ry, rx = rng.uniform(8, 25, 2)
        mask |= (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1).astype(np.uint8)
    image = rng.integers(30, 90, (3, h, w)).astype(np.uint8)
    image[:, mask > 0] = rng.integers(190, 240, (3, int(mask.sum()))).astype(np.uint8)
    if border:
        image[:, :, :border] = 0
        image[:, :border, :] = 0
        mask[:, :border] = 0
        mask[:border, :] = 0
    return image, mask


def noise_scene(size: int, seed: int) -> np.ndarray:
    """A uint8 (3, size, size) image of uniform noise (30..199), no landslide."""
    return np.random.default_rng(seed).integers(30, 200, (3, size, size)).astype(np.uint8)
