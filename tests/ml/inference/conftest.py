"""Fixtures for the prediction tests: tiny models (a constant one, a brightness "oracle")
and a small saved model file. The generated scenes with landslide-like scars come from
``tests.support.tiles`` (:func:`~tests.support.tiles.scar_scene`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from casdesk.ml.inference.scene import Predictor

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "public"


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)


class ConstantNet(nn.Module):
    """Returns the same logit everywhere: blending must give a seam-free constant map."""

    def __init__(self, logit: float = 0.3):
        super().__init__()
        self.logit = nn.Parameter(torch.tensor(float(logit)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit.expand(x.shape[0], 1, x.shape[2], x.shape[3]).clone()


class BrightNet(nn.Module):
    """An "oracle" for the generated scenes: bright pixels (scars) are landslide.

    On normalised input (mean 0, std 1 per band, see :func:`meta_for`), the logit is
    ``gain * (band mean - level)``, smoothed by a 5x5 box so it behaves like a real,
    slightly blurry model.
    """

    def __init__(self, level: float = 1.0, gain: float = 6.0):
        super().__init__()
        self.level, self.gain = level, gain
        self.pool = nn.AvgPool2d(5, stride=1, padding=2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.gain * (x.mean(dim=1, keepdim=True) - self.level))


def meta_for(bands: int = 3, tile: int = 64, mean: float = 80.0, std: float = 40.0) -> dict:
    return {
        "architecture": "injected", "in_channels": bands, "bands": bands, "classes": 1,
        "threshold": 0.5, "tile_size": [tile, tile],
        "normalization": {"mean": [mean] * bands, "std": [std] * bands},
    }


def make_predictor(net: nn.Module, bands: int = 3, tile: int = 64, name: str = "test-model",
                   **meta_kw: float) -> Predictor:
    return Predictor(net.eval(), meta_for(bands, tile, **meta_kw), torch.device("cpu"), name)


@pytest.fixture
def constant_predictor() -> Predictor:
    return make_predictor(ConstantNet(0.3))


@pytest.fixture
def bright_predictor() -> Predictor:
    return make_predictor(BrightNet())


@pytest.fixture
def shared_scene() -> Path:
    p = SHARED / "RGB.byte.tif"
    if not p.exists():
        pytest.skip(f"shared test data not found at {SHARED} (needs ../shared/data/public)")
    return p


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model file (U-Net, MobileNetV2 encoder, random weights, 64 px tiles) written
    with the training engine's save_model_file, as `casdesk train` would."""
    from casdesk.ml.modelfile import save_model_file
    from casdesk.ml.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("unet", encoder="mobilenet_v2", in_channels=3, classes=1)
    meta = meta_for(3, 64)
    meta.update(architecture="unet", encoder="mobilenet_v2", resolution_m=[2.0])
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model_file(path, model, meta)
    return path


class _Tools:
    """The helpers above, for test modules (conftest cannot be imported under
    ``--import-mode=importlib``). Scenes: ``tests.support.tiles`` (``scar_scene``,
    ``write_raster``)."""

    ConstantNet = ConstantNet
    BrightNet = BrightNet
    make_predictor = staticmethod(make_predictor)
    meta_for = staticmethod(meta_for)


@pytest.fixture(scope="session")
def tools() -> type[_Tools]:
    return _Tools
