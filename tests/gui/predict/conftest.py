"""Fixtures for the Predict tab and the Train tab extras: a tiny model file, a small
generated scene, a tiny tile project, and a main window whose workers are shut down."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)


def meta_for(bands: int = 3, tile: int = 64, mean: float = 80.0, std: float = 40.0) -> dict:
    return {
        "architecture": "unet", "encoder": "mobilenet_v2", "in_channels": bands, "bands": bands,
        "classes": 1, "threshold": 0.5, "tile_size": [tile, tile], "resolution_m": [0.5],
        "normalization": {"mean": [mean] * bands, "std": [std] * bands},
        "metrics": {"miou": 0.61, "f1_mean": 0.7}, "epoch": 3,
    }


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model file (U-Net, MobileNetV2 encoder, random weights, 64 px tiles) written
    with the training engine's save_model_file, as `casdesk train` would."""
    from casdesk.ml.modelfile import save_model_file
    from casdesk.ml.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("unet", encoder="mobilenet_v2", in_channels=3, classes=1)
    with torch.no_grad():  # a bias that makes some pixels landslide, so polygons exist
        head = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        head.weight.mul_(0.0)
        head.bias.fill_(0.0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model_file(path, model, meta_for())
    return path


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from casdesk.core.dataset.synthetic import make_scene

    folder = tmp_path_factory.mktemp("scene")
    return make_scene(folder / "scene.tif", width=256, height=256, seed=1, n_scars=4).path


@pytest.fixture()
def bad_model(tmp_path: Path) -> Path:
    p = tmp_path / "broken.pt"
    p.write_bytes(b"this is not a model file")
    return p


@pytest.fixture()
def window(tiny_window):
    """The main window with the tiny training project open (tests/gui/conftest.py)."""
    return tiny_window
