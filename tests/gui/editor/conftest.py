"""Fixtures for the label editor tests: shared LabelMe examples, tiny georeferenced projects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "public"


@pytest.fixture(scope="session")
def labelme_dir() -> Path:
    folder = SHARED / "labelme"
    if not folder.is_dir():
        pytest.skip(f"shared LabelMe examples not found at {folder}")
    return folder


def scar_image(size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic vegetated slope (green, textured) with one bright bare-soil scar.

    Returns (rgb (H, W, 3) uint8, truth mask (H, W) bool).
    """
    rng = np.random.default_rng(seed)
    rgb = np.empty((size, size, 3), np.uint8)
    rgb[..., 0] = 40 + rng.integers(0, 20, (size, size))
    rgb[..., 1] = 110 + rng.integers(0, 25, (size, size))
    rgb[..., 2] = 40 + rng.integers(0, 20, (size, size))
    yy, xx = np.mgrid[:size, :size]
    cy, cx = size * 0.45, size * 0.5
    truth = ((yy - cy) / (size * 0.28)) ** 2 + ((xx - cx) / (size * 0.14)) ** 2 <= 1.0
    rgb[truth] = np.stack(
        [
            180 + rng.integers(0, 20, truth.sum()),
            150 + rng.integers(0, 20, truth.sum()),
            120 + rng.integers(0, 20, truth.sum()),
        ],
        axis=1,
    )
    return rgb, truth


@pytest.fixture()
def scar() -> tuple[np.ndarray, np.ndarray]:
    return scar_image()


@dataclass
class EditorProject:
    path: Path
    scene_id: int
    scene_path: Path
    size: int
    scars: list


@pytest.fixture()
def editor_project(tmp_path: Path) -> EditorProject:
    """A 512 x 512 georeferenced synthetic scene cropped into four 256-pixel tiles."""
    from casdesk.core.dataset.scenes import add_scene
    from casdesk.core.dataset.synthetic import make_scene
    from casdesk.core.dataset.tiling import CropParams, crop_scene
    from casdesk.core.jobs import run_job
    from casdesk.core.project.catalog import Catalog

    scene = make_scene(tmp_path / "scene.tif", 512, 512, seed=3, n_scars=2, cloud=False, seam=False, fill=False)
    with Catalog.create(tmp_path / "proj") as cat:
        sid = add_scene(cat, scene.path, subdataset="demo").scene_id
        run_job(crop_scene(cat, sid, CropParams(size=256, stride=256), workers=1))
        path = cat.path
    return EditorProject(path, sid, scene.path, 512, scene.scars_px)
