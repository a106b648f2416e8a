"""A model ready for inference (:class:`Predictor`): loading a model file, checking its
metadata, and the probabilities of a batch of windows (with optional test-time
augmentation)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from casdesk.core.errors import CasdeskError
from casdesk.ml.device import resolve_device
from casdesk.ml.errors import ModelError
from casdesk.ml.training.data import SIZE_MULTIPLE, Normalization


class PredictionError(CasdeskError):
    """A scene cannot be predicted with this model (bands, values, AOI, tile size)."""


GENERIC_STEMS = {"model", "best", "last", "checkpoint"}


def model_name(path: str | Path) -> str:
    """The name a model's outputs are stored under: the file stem, prefixed with its run
    folder when the stem is generic (every `casdesk train` run writes ``model.pt``)."""
    p = Path(path)
    return f"{p.parent.name}-{p.stem}" if p.stem.lower() in GENERIC_STEMS and p.parent.name else p.stem


@dataclass
class Predictor:
    """A model ready for inference: eval mode on ``device``, with its model-file meta.

    Load once with :func:`load_predictor` and pass it to several scenes (batch runs, the
    GUI's inference panel) instead of a path, to rebuild the network only once.
    """

    model: nn.Module
    meta: dict[str, Any]
    device: torch.device
    name: str
    path: Path | None = None

    @property
    def bands(self) -> int:
        return int(self.meta["in_channels"])

    @property
    def tile_size(self) -> tuple[int, int]:
        """(rows, cols) of the model's input windows, from the model file (default 512)."""
        size = self.meta.get("tile_size") or [512, 512]
        size = [int(size)] * 2 if isinstance(size, int | float) else [int(s) for s in size]
        return round_tile_size(size[0]), round_tile_size(size[-1])

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", 0.5))

    @property
    def normalization(self) -> Normalization:
        return Normalization.from_dict(self.meta["normalization"])

    @property
    def precision(self) -> str:
        """bf16/fp16 under autocast on CUDA (by compute capability), fp32 elsewhere."""
        if self.device.type != "cuda":
            return "fp32"
        from casdesk.ml.device import device_precision

        return device_precision(self.device)

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, H, W) landslide probability: sigmoid of one logit, or softmax class 1.
        On CUDA the forward runs under autocast in channels-last memory format."""
        if batch.device.type == "cuda":
            from casdesk.ml.device import precision_dtype

            dtype = precision_dtype(self.precision)
            batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = self.model(batch)
        else:
            logits = self.model(batch)
        if logits.shape[1] == 1:
            return torch.sigmoid(logits[:, 0].float())
        return torch.softmax(logits.float(), dim=1)[:, 1]


def round_tile_size(n: int) -> int:
    return max(SIZE_MULTIPLE, math.ceil(n / SIZE_MULTIPLE) * SIZE_MULTIPLE)


REQUIRED_META = ("architecture", "in_channels", "classes", "normalization")


def check_meta(meta: dict[str, Any], path: Path | None = None) -> None:
    """The meta inference needs; a model file without it cannot normalise scenes."""
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ModelError(
            f"the model file lacks {', '.join(missing)}", path,
            "use a model.pt written by `casdesk train`",
        )
    norm = meta["normalization"]
    if len(norm.get("mean", [])) != int(meta["in_channels"]) or len(norm.get("std", [])) != int(meta["in_channels"]):
        raise ModelError(
            f"the model file's normalisation has {len(norm.get('mean', []))} bands but the model "
            f"takes {meta['in_channels']}", path, "the model file is inconsistent; retrain or re-export it",
        )


def load_predictor(model_file: str | Path | Predictor, device: str | torch.device = "auto") -> Predictor:
    """Load a model file (or a run's ``best.ckpt``/``last.ckpt``, or a run folder) for
    inference on ``device`` (``auto``: CUDA > MPS > CPU)."""
    if isinstance(model_file, Predictor):
        return model_file
    from casdesk.ml.modelfile import load_model_file

    dev = resolve_device(device)
    model, meta = load_model_file(model_file, dev)
    check_meta(meta, Path(model_file))
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return Predictor(model, meta, dev, model_name(model_file), Path(model_file))


def _tta_probabilities(predictor: Predictor, x: torch.Tensor, tta: bool) -> torch.Tensor:
    """Mean probability over identity, horizontal flip, vertical flip and (square windows)
    a 90 degree rotation, each undone before averaging."""
    p = predictor.probabilities(x)
    if not tta:
        return p
    total, n = p, 1
    for dims in ((-1,), (-2,)):
        total = total + predictor.probabilities(x.flip(dims)).flip(dims)  # (N, H, W): same last dims
        n += 1
    if x.shape[-1] == x.shape[-2]:
        total = total + torch.rot90(predictor.probabilities(torch.rot90(x, 1, (-2, -1))), -1, (-2, -1))
        n += 1
    return total / n


def infer_windows(predictor: Predictor, windows: np.ndarray, tta: bool = False) -> np.ndarray:
    """(N, bands, H, W) normalised float32 windows -> (N, H, W) float32 probabilities."""
    x = torch.from_numpy(windows).to(predictor.device, non_blocking=True)
    with torch.inference_mode():
        p = _tta_probabilities(predictor, x, tta)
    return p.float().cpu().numpy()
