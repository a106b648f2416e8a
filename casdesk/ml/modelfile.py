"""Self-describing model files and resumable training checkpoints.

A *model file* (``model.pt``) holds the weights and everything needed to use them without
the project: architecture, encoder, bands, normalisation, tile size, resolution, classes,
threshold, split name, metrics and casdesk version. It is loaded with
``torch.load(weights_only=True)`` (no pickled code runs), so a shared model file is safe
to open.

A *checkpoint* (``last.ckpt``, ``best.ckpt``) is the full training state (optimizer,
scheduler, random generators, position in the epoch) for resuming a run exactly; it is a
trusted file of the user's own run folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from casdesk.core.errors import CasdeskError
from casdesk.ml.errors import ModelError

MODEL_FORMAT = "casdesk-model"
MODEL_FORMAT_VERSION = 1
CHECKPOINT_FORMAT = "casdesk-checkpoint"


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file beside ``path``, then rename: never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DistributedDataParallel / torch.compile wrappers."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}


def save_model_file(path: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write weights + ``meta`` (JSON-like: str, int, float, bool, None, lists, dicts)."""
    meta = json.loads(json.dumps(meta))  # plain types only: loadable with weights_only=True
    atomic_save(
        {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "meta": meta,
         "state_dict": cpu_state_dict(model)},
        path,
    )


def load_tagged(
    path: Path, fmt: str, error: type[CasdeskError], what: str, hint: str | None = None,
    weights_only: bool = True,
) -> dict[str, Any]:
    """torch.load a casdesk file (model or checkpoint) and check its ``format`` tag.

    Any unreadable file is the same user error: ``error`` naming the file and ``what`` it
    should have been.
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise error(f"not a readable {what} ({str(exc).splitlines()[0][:200]})", path) from exc
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        raise error(f"not a {what}", path, hint)
    return blob


def read_model_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ModelError("model file not found", p, "check the path")
    blob = load_tagged(
        p, MODEL_FORMAT, ModelError, "casdesk model file",
        "use the model.pt written by `casdesk train` (checkpoints *.ckpt are for --resume)",
    )
    if int(blob.get("format_version", 0)) > MODEL_FORMAT_VERSION:
        raise ModelError("the model file was written by a newer casdesk", p, "update casdesk")
    return blob


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a model file, in eval mode on ``device``; return (model, meta).

    Needs no project and no download: the architecture is rebuilt without pretrained
    weights and the stored weights are loaded.
    """
    from casdesk.ml.models.registry import create_model

    blob = read_model_file(path)
    meta = blob["meta"]
    model = create_model(
        meta["architecture"],
        encoder=meta.get("encoder"),
        in_channels=int(meta["in_channels"]),
        classes=int(meta["classes"]),
        encoder_weights=None,
    )
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise ModelError(f"weights do not fit the architecture ({str(exc).splitlines()[0]})", Path(path)) from exc
    model.eval()
    return model.to(device), meta
