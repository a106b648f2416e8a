"""QC test fixtures: the shared real CAS tiles and small generated projects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from casdesk.core.project.catalog import Catalog
from casdesk.core.raster.io import open_raster
from tests.support.tiles import Georef, write_raster

PUBLIC = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "public"
CAS_TILES = PUBLIC / "cas_tiles"


def real_tile(name: str) -> np.ndarray:
    """(3, 512, 512) uint8 pixels of a released CAS tile; skips when the data is absent."""
    path = CAS_TILES / name
    if not path.exists():
        pytest.skip(f"shared CAS tiles not found at {CAS_TILES} (needs ../shared/data/public)")
    with open_raster(path) as ds:
        return ds.read()


UTM50_1M = Georef("EPSG:32650", Affine(1.0, 0, 500000.0, 0, -1.0, 4000000.0))
"""1 m pixels in UTM 50N: the QC tests' tiles."""


def write_tif(path: Path, data: np.ndarray, nodata: float | None = None) -> Path:
    return write_raster(path, data, UTM50_1M, nodata=nodata)


def smooth_field(shape: tuple[int, int], seed: int, scale: int = 32) -> np.ndarray:
    """A smooth random field in 0-1 (cloud shapes, illumination)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.random((shape[0] // scale + 2, shape[1] // scale + 2)).astype(np.float32)
    big = cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip((big - big.min()) / (np.ptp(big) + 1e-9), 0, 1)


def synthetic_rgb(size: int, seed: int) -> np.ndarray:
    """Textured vegetation-like uint8 RGB (3, size, size)."""
    rng = np.random.default_rng(seed)
    base = smooth_field((size, size), seed, 16)
    noise = rng.normal(0, 12, (size, size))
    grey = 70 + 60 * base + noise
    rgb = np.stack([grey * 0.8, grey * 1.0, grey * 0.7])
    return np.clip(rgb, 1, 254).astype(np.uint8)


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Catalog]:
    """Build a project from tile specs: dicts with subdataset, image (array), mask (array
    or None), optional sensor. Returns an open Catalog (closed at teardown)."""
    opened: list[Catalog] = []

    def build(specs: list[dict], name: str = "proj") -> Catalog:
        cat = Catalog.create(tmp_path / f"{name}.casdesk")
        opened.append(cat)
        tiles = tmp_path / f"{name}_tiles"
        tiles.mkdir()
        rows = []
        sensors: dict[str, str | None] = {}
        for i, spec in enumerate(specs):
            sub = spec.get("subdataset", "sub")
            sensors[sub] = spec.get("sensor")
            img = write_tif(tiles / f"{sub}_{i}.tif", spec["image"])
            mask = spec.get("mask")
            mpath = None if mask is None else write_tif(tiles / f"{sub}_{i}_mask.tif", mask.astype(np.uint8))
            h, w = spec["image"].shape[-2:]
            rows.append(
                {
                    "name": f"{sub}_{i}",
                    "subdataset": sub,
                    "image_path": img,
                    "mask_path": mpath,
                    "width": w,
                    "height": h,
                    "label_pixels": None if mask is None else int(mask.sum()),
                    "valid_pixels": h * w,
                }
            )
        for sub, sensor in sensors.items():
            cat.ensure_subdataset(sub, sensor=sensor)
        cat.add_tiles(rows)
        return cat

    yield build
    for cat in opened:
        cat.close()
