"""Fixtures for the prediction tests: tiny models (a constant one, a brightness "oracle"),
a small saved model file, and generated scenes with landslide-like scars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
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


UTM_2M = Affine(2.0, 0, 500000.0, 0, -2.0, 4000000.0)


def write_scene(path: Path, image: np.ndarray, nodata: float | None = 0, crs: str = "EPSG:32633",
                transform: Affine = UTM_2M) -> Path:
    bands, h, w = image.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=bands, dtype=image.dtype,
                       crs=crs, transform=transform, nodata=nodata) as ds:
        ds.write(image)
    return path


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
    ``--import-mode=importlib``)."""

    ConstantNet = ConstantNet
    BrightNet = BrightNet
    make_predictor = staticmethod(make_predictor)
    meta_for = staticmethod(meta_for)
    scar_scene = staticmethod(scar_scene)
    write_scene = staticmethod(write_scene)


@pytest.fixture(scope="session")
def tools() -> type[_Tools]:
    return _Tools
