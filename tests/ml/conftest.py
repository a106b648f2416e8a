"""Fixtures for the ML tests: tiny generated projects (GeoTIFF tiles + catalog).

Tiles carry a bright, reddish "scar" blob as landslide on a textured background, so a
small model can learn them in a few epochs on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from casdesk.core.project.catalog import Catalog

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "public"


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(2)


def write_tif(path: Path, array: np.ndarray, nodata: float | None = None) -> None:
    bands, h, w = array.shape
    with rasterio.open(
        path, "w", driver="GTiff", width=w, height=h, count=bands, dtype=array.dtype,
        transform=Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0), crs="EPSG:32633", nodata=nodata,
    ) as ds:
        ds.write(array)


def synthetic_tile(rng: np.random.Generator, size: int, bands: int, dtype: str,
                   border: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, mask 0/1, valid) with 0..2 elliptic scars; ``border`` adds a nodata strip."""
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


def build_project(folder: Path, n: int = 12, size: int = 64, bands: int = 3, dtype: str = "uint8",
                  subdatasets: tuple[str, ...] = ("A", "B"), seed: int = 0, name: str = "p") -> Path:
    """Write ``n`` synthetic tiles and a catalog into ``folder``; return the project path."""
    rng = np.random.default_rng(seed)
    project = folder / f"{name}.casdesk"
    cat = Catalog.create(project)
    tiles = folder / f"{name}_tiles"
    tiles.mkdir()
    rows = []
    for i in range(n):
        image, mask, valid = synthetic_tile(rng, size, bands, dtype, border=(i % 5 == 4))
        img_path, mask_path = tiles / f"t{i:03d}.tif", tiles / f"t{i:03d}_mask.tif"
        write_tif(img_path, image, nodata=0)
        write_tif(mask_path, mask[None])
        rows.append({
            "name": f"t{i:03d}", "subdataset": subdatasets[i % len(subdatasets)],
            "image_path": img_path, "mask_path": mask_path, "width": size, "height": size,
            "label_pixels": int(mask[valid].sum()), "valid_pixels": int(valid.sum()),
        })
    cat.add_tiles(rows)
    cat.close()
    return project


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_project(n=12, size=64, bands=3, dtype="uint8", subdatasets=("A", "B"))``
    writes tiles and a catalog into the test's temporary folder, returns the project path."""

    def factory(**kwargs: object) -> Path:
        return build_project(tmp_path, **kwargs)  # type: ignore[arg-type]

    return factory


@pytest.fixture(scope="session")
def project_builder() -> Callable[..., Path]:
    """:func:`build_project` itself, for module-scoped fixtures (pass your own folder)."""
    return build_project


@pytest.fixture
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared test data not found at {SHARED} (needs ../shared/data/public)")
    return SHARED
