"""Fixtures for the ML tests: tiny generated projects (GeoTIFF tiles + catalog).

Tiles carry a bright, reddish "scar" blob as landslide on a textured background, so a
small model can learn them in a few epochs on the CPU (:func:`tests.support.tiles.scar_tile`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from casdesk.core.project.catalog import Catalog
from tests.support.tiles import UTM33_HALF_M, scar_tile, write_raster

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "public"


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(2)


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
        image, mask, valid = scar_tile(rng, size, bands, dtype, border=(i % 5 == 4))
        img_path = write_raster(tiles / f"t{i:03d}.tif", image, UTM33_HALF_M, nodata=0)
        mask_path = write_raster(tiles / f"t{i:03d}_mask.tif", mask, UTM33_HALF_M)
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
