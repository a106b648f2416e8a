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


def describe_file(path: Path) -> str:
    """What a file that is not a casdesk model looks like, in a few words."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return "an unreadable file"
    suffix = path.suffix.lower()
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "a GeoTIFF/TIFF raster"
    if head.startswith(b"SQLite format 3"):
        return "a casdesk project" if suffix == ".casdesk" else "an SQLite database (a GeoPackage or a project)"
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return "a PyTorch file that casdesk did not write (e.g. bare weights)"
    if suffix in (".json", ".geojson", ".toml", ".csv", ".txt"):
        return f"a {suffix[1:]} text file"
    return "not a PyTorch file"


NOT_A_MODEL_HINT = ("pass the model.pt, best.ckpt or last.ckpt of a run folder written by `casdesk train`, "
                    "or the run folder itself")


def read_model_file(path: str | Path) -> dict[str, Any]:
    """The model blob of a model file, a training checkpoint or a run folder (its
    ``model.pt``): ``{"format", "meta", "state_dict"}``. Anything else is one
    :class:`ModelError` sentence naming what the file is and what to pass instead."""
    p = Path(path)
    if p.is_dir():
        if (p / "model.pt").is_file():
            p = p / "model.pt"
        elif (p / "best.ckpt").is_file():
            p = p / "best.ckpt"
        else:
            raise ModelError("the folder holds no model.pt or best.ckpt", p, NOT_A_MODEL_HINT)
    if not p.is_file():
        raise ModelError("model file not found", p, "check the path")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        blob = _legacy_checkpoint(p)
        if blob is None:
            raise ModelError(f"{describe_file(p)}, not a casdesk model file", p, NOT_A_MODEL_HINT) from exc
    fmt = blob.get("format") if isinstance(blob, dict) else None
    if fmt == CHECKPOINT_FORMAT:
        return checkpoint_model_blob(blob, p)
    if fmt != MODEL_FORMAT:
        what = "a PyTorch file that casdesk did not write (e.g. bare weights)" if fmt is None else f"a {fmt!r} file"
        raise ModelError(f"{what}, not a casdesk model file", p, NOT_A_MODEL_HINT)
    if int(blob.get("format_version", 0)) > MODEL_FORMAT_VERSION:
        raise ModelError("the model file was written by a newer casdesk", p, "update casdesk")
    return blob


def _legacy_checkpoint(path: Path) -> dict[str, Any] | None:
    """A checkpoint of an older casdesk (numpy random state inside): loaded with only the
    numpy types that state needs allowed, never arbitrary code."""
    import numpy as np

    allowed: list[Any] = [np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    multiarray = getattr(core, "multiarray", None)
    if multiarray is not None and hasattr(multiarray, "_reconstruct"):
        allowed.append(multiarray._reconstruct)
    try:
        with torch.serialization.safe_globals(allowed):
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not a legacy checkpoint either
        return None
    return blob if isinstance(blob, dict) and blob.get("format") == CHECKPOINT_FORMAT else None


def checkpoint_model_blob(ckpt: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """The model-file view of a training checkpoint: its weights and the meta stored with
    it (rebuilt from its configuration for checkpoints that predate ``model_meta``)."""
    meta = ckpt.get("model_meta")
    if not meta:
        cfg = ckpt.get("config", {})
        norm = ckpt.get("normalization") or {}
        from casdesk.ml.models.registry import resolve_spec

        spec = resolve_spec(cfg.get("model", "deeplabv3plus"))
        meta = {
            "architecture": spec.name, "encoder": cfg.get("encoder") or spec.default_encoder,
            "in_channels": len(norm.get("mean", [])), "bands": len(norm.get("mean", [])),
            "classes": int(cfg.get("classes", 1)), "threshold": float(cfg.get("threshold", 0.5)),
            "normalization": norm, "tile_size": ckpt.get("tile_size"), "split": ckpt.get("split"),
            "epoch": ckpt.get("epoch"), "run_id": ckpt.get("run_id"),
        }
    meta = dict(meta)
    meta["source"] = "checkpoint"
    if "model" not in ckpt:
        raise ModelError("the checkpoint holds no weights", path, NOT_A_MODEL_HINT)
    return {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "meta": meta,
            "state_dict": ckpt["model"]}


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a model file (or of a training checkpoint, or a run folder), in
    eval mode on ``device``; return (model, meta).

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
