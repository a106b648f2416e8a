"""Training checkpoints: what a run saves at each epoch end and on cancel (``last.ckpt``,
``best.ckpt``, the model file's metadata), how a saved run is read back and resumed (with
only :data:`RESUMABLE_OVERRIDES` changed), exactly where it stopped."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from casdesk import __version__
from casdesk.core.project.catalog import utc_now
from casdesk.ml.errors import TrainingError
from casdesk.ml.modelfile import CHECKPOINT_FORMAT, atomic_save, load_tagged
from casdesk.ml.training.config import TrainConfig
from casdesk.ml.training.reproducibility import get_rng_state, set_rng_state
from casdesk.ml.training.run_state import TrainerState

# Settings a resumed run may change without breaking exact continuation.
RESUMABLE_OVERRIDES = ("device", "num_workers", "pin_memory", "log_every")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint (a run folder means its ``last.ckpt``)."""
    p = Path(path)
    if p.is_dir():
        p = p / "last.ckpt"
    if not p.is_file():
        raise TrainingError("no checkpoint to resume from", p, "pass a run folder or its last.ckpt")
    try:  # checkpoints hold plain types only since casdesk 0.x: the safe loader suffices
        ckpt = load_tagged(p, CHECKPOINT_FORMAT, TrainingError, "casdesk training checkpoint")
    except TrainingError as exc:
        if "not a casdesk training checkpoint" in str(exc):
            raise
        # older checkpoints pickled numpy RNG state; the file is the user's own run's
        ckpt = load_tagged(p, CHECKPOINT_FORMAT, TrainingError, "casdesk training checkpoint",
                           weights_only=False)
    ckpt["path"] = str(p)
    return ckpt


def resume_config(ckpt: dict[str, Any], config: TrainConfig | None = None,
                  overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The configuration of a resumed run: the saved one, with only the settings in
    :data:`RESUMABLE_OVERRIDES` changed, from ``overrides`` (what the user set
    explicitly) or, when given, from ``config``."""
    saved = TrainConfig.from_dict(ckpt["config"])
    changes: dict[str, Any] = {}
    if config is not None:
        changes.update({k: getattr(config, k) for k in RESUMABLE_OVERRIDES})
    if overrides:
        fixed = sorted(k for k in overrides if k not in RESUMABLE_OVERRIDES
                       and overrides[k] != getattr(saved, k, None))
        if fixed:
            raise TrainingError(
                f"a resumed run keeps its saved settings; {', '.join(fixed)} cannot change",
                hint=f"only {', '.join(RESUMABLE_OVERRIDES)} may differ; start a new run for other settings",
            )
        changes.update({k: v for k, v in overrides.items() if k in RESUMABLE_OVERRIDES})
    return replace(saved, **changes)


class Checkpoints(TrainerState):
    """Save the run's progress to a checkpoint and restore it from one."""

    def _load_state(self, ckpt: dict[str, Any]) -> None:
        self.net.bare.load_state_dict(ckpt["model"])
        self.net.optimizer.load_state_dict(ckpt["optimizer"])
        self.net.scheduler.load_state_dict(ckpt["scheduler"])
        if self.net.scaler is not None and ckpt.get("scaler"):
            self.net.scaler.load_state_dict(ckpt["scaler"])
        self.epoch = int(ckpt["epoch"])
        self.sample_offset = int(ckpt["sample_offset"])
        es = ckpt["epoch_state"]
        self.epoch_loss.fill_(float(es["loss_sum"]))
        self.epoch_cm.copy_(torch.tensor(es["confusion"], dtype=torch.int64))
        self.epoch_samples = int(es["samples"])
        self.best_miou = float(ckpt["best"]["miou"])
        self.best_epoch = ckpt["best"]["epoch"]
        self.best_metrics = dict(ckpt["best"]["metrics"])
        self.bad_epochs = int(ckpt["bad_epochs"])
        self.history = list(ckpt["history"])
        self.elapsed_before = float(ckpt["elapsed_s"])
        self.book.run_id = ckpt.get("run_id")
        self.book.run_dir = Path(ckpt["run_dir"])
        set_rng_state(ckpt["rng"])

    def _checkpoint(self, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.data is not None
        return {
            "format": CHECKPOINT_FORMAT,
            "casdesk_version": __version__,
            "config": self.config.to_dict(),
            "split": self.split,
            "normalization": self.data.norm.to_dict(),
            "tile_size": list(self.data.size),
            "precision": self.net.precision,
            # plain JSON types (torch.__version__ is a TorchVersion): the safe loader reads it
            "model_meta": json.loads(json.dumps(self._model_meta(metrics or {}, self.epoch))),
            "model": {k: v.detach().cpu() for k, v in self.net.bare.state_dict().items()},
            "optimizer": self.net.optimizer.state_dict(),
            "scheduler": self.net.scheduler.state_dict(),
            "scaler": self.net.scaler.state_dict() if self.net.scaler is not None else None,
            "epoch": self.epoch,
            "sample_offset": self.sample_offset,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "epoch_state": {
                "loss_sum": float(self.epoch_loss),
                "confusion": self.epoch_cm.cpu().tolist(),
                "samples": self.epoch_samples,
            },
            "best": {"miou": self.best_miou, "epoch": self.best_epoch, "metrics": self.best_metrics},
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "elapsed_s": self._elapsed(),
            "run_id": self.book.run_id,
            "run_dir": str(self.run_dir),
            "rng": get_rng_state(),
        }

    def _save_last(self) -> Path:
        path = self.run_dir / "last.ckpt"
        if self.ctx.is_main:
            atomic_save(self._checkpoint(), path)
        return path

    def _model_meta(self, metrics: dict[str, Any], epoch: int) -> dict[str, Any]:
        cfg = self.config
        assert self.data is not None
        return {
            "architecture": self.spec.name,
            "encoder": cfg.encoder or self.spec.default_encoder,
            "in_channels": self.data.norm.bands,
            "bands": self.data.norm.bands,
            "classes": cfg.classes,
            "class_names": ["background", "landslide"],
            "threshold": cfg.threshold,
            "normalization": self.data.norm.to_dict(),
            "normalization_kind": cfg.normalization,
            "ignore_index": 255,
            "tile_size": list(self.data.size),
            "size_multiple": 32,
            "resolution_m": self.book.resolutions(self.split) if self.ctx.is_main else [],
            "split": self.split,
            "epoch": epoch,
            "metrics": metrics,
            "loss": cfg.loss,
            "recipe": cfg.recipe,
            "train_config": cfg.to_dict(),
            "aspp_rates": self.net.aspp_rates,  # None without ASPP; old deeplabv3plus files had 12/24/36
            "precision": self.net.precision,
            "run_id": self.book.run_id,
            "casdesk_version": __version__,
            "torch_version": torch.__version__,
            "created": utc_now(),
        }


def link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` becomes the same content as ``src`` (a hard link when possible: no rewrite)."""
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
