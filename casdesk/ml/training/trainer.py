"""Training: a generator of :class:`~casdesk.core.jobs.Progress` events, one code path for
the CLI, the GUI worker thread and ``torchrun``.

``train(project, config, cancel=token)`` yields an event per batch (``data["event"] ==
"batch"``: loss, learning rate, samples/s, loader wait, ETA) and per epoch (``"epoch"``:
train and validation metrics) and returns a :class:`TrainResult`. Setting the cancel
token stops it within one batch (under DDP: at the next log point, every ``log_every``
batches, where the processes agree on it); the run folder then holds a ``last.ckpt`` from which
``train(project, resume=run_dir)`` continues exactly where it stopped (same weights, same
optimizer/scheduler state, same random streams, same position in the epoch).

Each run is a row of the catalog's ``runs`` table (config, split, device, status,
duration, best metrics) with one ``run_epochs`` row per epoch, and a folder with
``config.json``, ``log.csv``, ``last.ckpt``, ``best.ckpt`` and ``model.pt`` (the best
weights, by validation mIoU, as a self-describing model file, see
:mod:`casdesk.ml.modelfile`; the checkpoints are usable as model files too).

The work is split by responsibility:

* :class:`_RunBook`: the catalog rows and the run folder (rank 0 alone writes);
* :class:`_Data`: datasets, samplers and persistent DataLoaders, the device transform;
* :class:`_Net`: the model (DDP, SyncBatchNorm, BatchNorm layers that cannot train on one
  sample), precision, optimizer, scheduler and gradient scaler;
* :class:`_Trainer`: the epoch loop, steps, out-of-memory handling, validation and
  checkpoints.

Host synchronisation: the loss is read back at log points only (``log_every``), the
confusion counts stay on the device until the end of the epoch, and under DDP the cancel
flag is agreed at log points only, so the GPU is never drained once per batch.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import random
import shutil
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DistributedSampler

from casdesk import __version__
from casdesk.core.dataset.splits import default_name, list_splits, load_split, make_split, split_id
from casdesk.core.evaluation.metrics import segmentation_metrics
from casdesk.core.jobs import CancelToken, Progress
from casdesk.core.project.catalog import Catalog, utc_now
from casdesk.core.raster.io import open_raster
from casdesk.ml.device import describe_device, device_precision, precision_dtype
from casdesk.ml.errors import DataError, TrainingError
from casdesk.ml.modelfile import (
    CHECKPOINT_FORMAT,
    atomic_save,
    load_tagged,
    save_model_file,
)
from casdesk.ml.models.registry import create_model, resolve_spec
from casdesk.ml.training import distributed
from casdesk.ml.training.augment import augment_kind
from casdesk.ml.training.config import TrainConfig
from casdesk.ml.training.data import (
    EpochSampler,
    Normalization,
    TileDataset,
    compute_normalization,
    imagenet_normalization,
    make_loader,
    padded_size,
    select_tiles,
    worker_errors,
)
from casdesk.ml.training.evaluate import autocast, confusion_torch, iter_confusion
from casdesk.ml.training.losses import get_loss

__all__ = ["TrainConfig", "TrainResult", "train", "read_checkpoint", "resume_config"]

# Settings a resumed run may change without breaking exact continuation.
RESUMABLE_OVERRIDES = ("device", "num_workers", "pin_memory", "log_every")


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced."""

    status: str  # "finished", "early_stopped" or "cancelled"
    run_id: int | None
    run_dir: Path
    model_path: Path | None
    checkpoint_path: Path | None
    best_epoch: int | None
    best_metrics: dict[str, float]
    last_metrics: dict[str, float]
    epochs_done: int
    device: str
    batch_size: int
    history: list[dict[str, Any]] = field(default_factory=list)
    precision: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "model_path": None if self.model_path is None else str(self.model_path),
            "checkpoint_path": None if self.checkpoint_path is None else str(self.checkpoint_path),
            "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics,
            "last_metrics": self.last_metrics,
            "epochs_done": self.epochs_done,
            "device": self.device,
            "batch_size": self.batch_size,
            "precision": self.precision,
        }


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


def train(
    project: str | Path | Catalog,
    config: TrainConfig | None = None,
    *,
    cancel: CancelToken | None = None,
    resume: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Generator[Progress, None, TrainResult]:
    """Train a model on a project's split; yield progress; return a :class:`TrainResult`.

    ``resume``: a run folder (or checkpoint) to continue; its stored configuration is
    used, except ``device``, ``num_workers``, ``pin_memory`` and ``log_every``, taken
    from ``overrides`` (the settings the user gave explicitly) or from ``config`` when
    given. Under ``torchrun`` every process calls this; rank 0 writes files and the
    catalog.
    """
    ckpt = read_checkpoint(resume) if resume is not None else None
    if ckpt is not None:
        config = resume_config(ckpt, config, overrides)
    elif overrides:
        config = replace(config or TrainConfig(), **overrides)
    config = (config or TrainConfig()).validate()
    augment_kind(config.augment)  # a bad augmentation name fails before any work
    ctx, device = distributed.setup(config.device)
    try:
        trainer = _Trainer(project, config, ctx, device, cancel, ckpt)
        try:
            return (yield from trainer.run())
        finally:
            trainer.close()
    finally:
        ctx.close()


# --------------------------------------------------------------------------- run folder + catalog
class _RunBook:
    """The run's catalog rows and folder; every write happens on rank 0 only."""

    def __init__(self, catalog: Catalog, ctx: distributed.DistContext):
        self.catalog = catalog
        self.ctx = ctx
        self.run_id: int | None = None
        self.run_dir = Path(".")

    def start(self, cfg: TrainConfig, model_name: str, split: str, device_text: str, resumed: bool) -> None:
        if not self.ctx.is_main:
            return
        if resumed and self.run_id is not None:
            with self.catalog.transaction():
                self.catalog.runs.resume(self.run_id, device_text)
                self.catalog.claim_run(self.run_id)  # its process: a killed run is marked interrupted later
            return
        name = cfg.name or f"{model_name}-{split}"
        with self.catalog.transaction():
            self.run_id = self.catalog.runs.start_training(
                name, cfg.to_dict(), split_id(self.catalog, split), device_text)
            self.catalog.claim_run(self.run_id)
        if cfg.out_dir:
            self.run_dir = Path(cfg.out_dir).expanduser().absolute()
        else:
            slug = model_name.replace(":", "-")
            self.run_dir = self.catalog.data_dir / "runs" / f"run{self.run_id:04d}-{slug}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.catalog.runs.set_out_dir(self.run_id, str(self.run_dir))
        (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2), encoding="utf-8")

    def finish(self, status: str, elapsed: float, best_metrics: dict[str, Any]) -> None:
        if not self.ctx.is_main or self.run_id is None:
            return
        model_path = self.run_dir / "model.pt"
        self.catalog.runs.finish(self.run_id, status, elapsed,
                                 str(model_path) if model_path.exists() else None, best_metrics)

    def record_epoch(self, record: dict[str, Any], history: list[dict[str, Any]],
                     best_metrics: dict[str, Any], elapsed: float) -> None:
        if not self.ctx.is_main:
            return
        self.write_csv(history)
        if self.run_id is not None:
            self.catalog.runs.add_epoch(self.run_id, int(record["epoch"]), record, elapsed, best_metrics)

    def write_csv(self, history: list[dict[str, Any]]) -> None:
        rows = [_flatten(r) for r in history]
        columns: list[str] = []
        for r in rows:
            columns += [k for k in r if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        path = self.run_dir / "log.csv"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(buf.getvalue(), encoding="utf-8")
        os.replace(tmp, path)

    def resolutions(self, split: str) -> list[float]:
        return self.catalog.splits.train_resolutions(split_id(self.catalog, split))


# --------------------------------------------------------------------------- data
class _Data:
    """Training/validation tiles, their normalisation and persistent loaders."""

    def __init__(self, catalog: Catalog, cfg: TrainConfig, ctx: distributed.DistContext,
                 device: torch.device, split: str, ckpt: dict[str, Any] | None):
        self.cfg = cfg
        self.ctx = ctx
        self.device = device
        parts = load_split(catalog, split)
        self.train_tiles = select_tiles(catalog, parts, "train", cfg.qc_accepted_only)
        self.val_tiles = select_tiles(catalog, parts, "val", cfg.qc_accepted_only)
        if not self.train_tiles:
            raise DataError(f"split {split!r} has no training tiles with masks", catalog.path,
                            "check the split and the QC decisions")
        if not self.val_tiles:
            raise DataError(f"split {split!r} has no validation tiles with masks", catalog.path,
                            "make a split with a validation part (casdesk split)")
        if ckpt:
            self.norm = Normalization.from_dict(ckpt["normalization"])
            self.size: tuple[int, int] = tuple(ckpt["tile_size"])
        else:
            if cfg.normalization == "imagenet":
                with open_raster(self.train_tiles[0].image_path) as ds:
                    self.norm = imagenet_normalization(ds.count)
            else:
                self.norm = compute_normalization(self.train_tiles, cfg.norm_max_tiles, cfg.seed)
            self.size = padded_size(self.train_tiles + self.val_tiles)
        self.augment = augment_kind(cfg.augment)
        self.train_set = TileDataset(self.train_tiles, self.norm, self.size, self.augment, cfg.seed)
        self.val_set = TileDataset(self.val_tiles, self.norm, self.size)
        self.train_transform = self.train_set.transform(device)
        self.val_transform = self.val_set.transform(device)
        self.pin = cfg.pin_memory if cfg.pin_memory is not None else device.type == "cuda"
        self.per_rank = math.ceil(len(self.train_set) / ctx.world_size)
        self._train_sampler = EpochSampler()
        self._train_loader: Any = None
        self._train_key: tuple[int, bool] | None = None
        self._val_loader: Any = None
        self._val_batch = 0

    def drop_last(self, batch_size: int) -> bool:
        """Drop the trailing partial batch: when asked (the authors' recipe) or when it would
        hold a single sample (BatchNorm cannot train on it); never the only batch."""
        if self.per_rank <= batch_size:
            return False
        return bool(self.cfg.drop_last) or self.per_rank % batch_size == 1

    def batches_per_epoch(self, batch_size: int) -> int:
        if self.drop_last(batch_size):
            return self.per_rank // batch_size
        return math.ceil(self.per_rank / batch_size)

    def smallest_batch(self, batch_size: int) -> int:
        rest = self.per_rank % batch_size
        if rest == 0 or self.drop_last(batch_size):
            return min(batch_size, self.per_rank)
        return rest

    def train_loader(self, epoch: int, start_sample: int, batch_size: int) -> Any:
        sampler: DistributedSampler[int] = DistributedSampler(
            self.train_set, num_replicas=self.ctx.world_size, rank=self.ctx.rank,
            shuffle=True, seed=self.cfg.seed, drop_last=False,
        )
        sampler.set_epoch(epoch)
        self._train_sampler.set(epoch, list(sampler)[start_sample:])
        key = (batch_size, self.drop_last(batch_size))
        if self._train_loader is None or self._train_key != key:
            self._train_loader = make_loader(
                self.train_set, batch_size, self._train_sampler, num_workers=self.cfg.num_workers,
                pin_memory=self.pin, drop_last=key[1],
            )
            self._train_key = key
        return self._train_loader

    def val_loader(self, batch_size: int) -> Any:
        """This rank's share of the validation tiles (possibly none: validation runs on
        the unwrapped model, so an empty share waits on no collective)."""
        if self._val_loader is None or self._val_batch != batch_size:
            indices = range(self.ctx.rank, len(self.val_set), self.ctx.world_size)
            self._val_loader = make_loader(
                self.val_set, batch_size, EpochSampler(indices), num_workers=self.cfg.num_workers,
                pin_memory=self.pin,
            )
            self._val_batch = batch_size
        return self._val_loader

    def close(self) -> None:
        self._train_loader = self._val_loader = None  # persistent workers end with their loader


# --------------------------------------------------------------------------- model
class _Net:
    """The model and what updates it: wrappers, precision, optimizer, schedule, scaler."""

    def __init__(self, cfg: TrainConfig, ctx: distributed.DistContext, device: torch.device,
                 bands: int, fresh: bool):
        self.cfg = cfg
        self.ctx = ctx
        self.device = device
        self.notes: list[str] = []
        self.precision = device_precision(device, cfg.amp)
        self.amp_dtype = precision_dtype(self.precision)
        self.memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.spec = resolve_spec(cfg.model)
        torch.manual_seed(cfg.seed)
        weights = cfg.encoder_weights if fresh else None
        model = create_model(cfg.model, cfg.encoder, bands, cfg.classes, weights)
        if ctx.enabled and cfg.sync_bn:
            if device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
                self.notes.append("SyncBatchNorm: BatchNorm statistics over all GPU processes")
            else:
                self.notes.append("SyncBatchNorm needs GPUs: CPU processes keep per-process BatchNorm")
        self.aspp_rates = _aspp_rates(model)
        # torch's stubs give Module.to no overload with both a device and memory_format (it takes them)
        self.bare: nn.Module = model.to(device, memory_format=self.memory)  # type: ignore[call-overload]
        self.model: nn.Module = self.bare
        if ctx.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.bare, device_ids=ids)
        self.frozen_norms: list[nn.Module] = []
        self.optimizer = _optimizer(cfg, self.bare)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None

    def set_schedule(self, total_steps: int) -> None:
        self.scheduler = _scheduler(self.cfg, self.optimizer, max(total_steps, 1))

    def train_mode(self) -> None:
        self.model.train()
        for m in self.frozen_norms:
            m.eval()

    def freeze_single_value_norms(self, size: tuple[int, int], bands: int) -> str | None:
        """Put the BatchNorm layers that see one value per channel in a batch of one sample
        (e.g. the image-pooling branch of ASPP) in eval mode: they normalise with their
        running statistics instead of failing. Returns the log sentence, or None."""
        found: list[tuple[str, nn.Module]] = []
        hooks = []
        for name, m in self.bare.named_modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], name: str = name) -> None:
                    x = args[0]
                    if x.numel() // max(x.shape[1], 1) <= 1:
                        found.append((name, mod))
                hooks.append(m.register_forward_pre_hook(hook))
        was_training = self.bare.training
        self.bare.eval()
        try:
            with torch.no_grad(), autocast(self.device, self.amp_dtype):
                self.bare(torch.zeros(1, bands, *size, device=self.device).contiguous(memory_format=self.memory))
        finally:
            for h in hooks:
                h.remove()
            self.bare.train(was_training)
        new = [(n, m) for n, m in found if all(m is not f for f in self.frozen_norms)]
        if not new:
            return None
        self.frozen_norms += [m for _, m in new]
        names = ", ".join(n for n, _ in new)
        return (f"batch size 1: {len(new)} BatchNorm layer(s) see one value per channel and use their "
                f"running statistics (eval mode) while training: {names}")

    def step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()


# --------------------------------------------------------------------------- the run
class _Trainer:
    """The epoch loop of one training run (private; use :func:`train`)."""

    def __init__(
        self,
        project: str | Path | Catalog,
        config: TrainConfig,
        ctx: distributed.DistContext,
        device: torch.device,
        cancel: CancelToken | None,
        ckpt: dict[str, Any] | None,
    ):
        self.config = config
        self.ctx = ctx
        self.device = device
        self.cancel = cancel
        self.ckpt = ckpt
        self.own_catalog = not isinstance(project, Catalog)
        self.catalog = project if isinstance(project, Catalog) else Catalog.open(project)
        self.book = _RunBook(self.catalog, ctx)
        self.data: _Data | None = None
        self._saved_flags = _determinism_flags()

    def close(self) -> None:
        _restore_determinism(self._saved_flags)
        if self.data is not None:
            self.data.close()
        if self.own_catalog:
            self.catalog.close()

    @property
    def run_dir(self) -> Path:
        return self.book.run_dir

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        cfg, ckpt = self.config, self.ckpt
        _seed_everything(cfg.seed)
        _set_determinism(cfg.deterministic, self.device)
        self.split = ckpt["split"] if ckpt else self._resolve_split()
        self.data = _Data(self.catalog, cfg, self.ctx, self.device, self.split, ckpt)
        self.loss_fn = get_loss(cfg.loss)
        self.net = _Net(cfg, self.ctx, self.device, self.data.norm.bands, fresh=ckpt is None)
        self.spec = self.net.spec
        self.batch_size = int(ckpt["batch_size"]) if ckpt else cfg.batch_size
        self.grad_accum = int(ckpt["grad_accum"]) if ckpt else cfg.grad_accum
        steps = cfg.epochs * math.ceil(self._batches_per_epoch() / self.grad_accum)
        self.net.set_schedule(steps)
        self.epoch = 0
        self.sample_offset = 0
        self.epoch_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self.epoch_cm = torch.zeros(2, 2, dtype=torch.int64, device=self.device)
        self.epoch_samples = 0
        self.best_miou = -1.0
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, float] = {}
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []
        self.elapsed_before = 0.0
        if ckpt:
            self._load_state(ckpt)

    def _batches_per_epoch(self) -> int:
        assert self.data is not None
        return self.data.batches_per_epoch(self.batch_size)

    def _resolve_split(self) -> str:
        cfg = self.config
        if cfg.split:
            split_id(self.catalog, cfg.split)  # raises a helpful error when unknown
            return cfg.split
        name: Any = None
        if self.ctx.is_main:
            splits = list_splits(self.catalog)
            if splits:
                name = splits[-1]["name"]
            else:
                name = default_name("random", 0.3, cfg.seed)
                make_split(self.catalog, "random", name, 0.3, cfg.seed)
        self.ctx.barrier()
        return str(self.ctx.broadcast_object(name))

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
        _set_rng_state(ckpt["rng"])

    # ------------------------------------------------------------------ checkpoints
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
            "rng": _get_rng_state(),
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

    # ------------------------------------------------------------------ main loop
    def _elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.t_start)

    def run(self) -> Generator[Progress, None, TrainResult]:
        self.t_start = time.monotonic()
        self.device_text = describe_device(self.device)
        try:
            self._setup()
            self.device_text = describe_device(self.device) + (
                f" x{self.ctx.world_size}" if self.ctx.enabled else "")
            self.book.start(self.config, self.spec.name, self.split, self.device_text, self.ckpt is not None)
            result = yield from self._loop()
        except BaseException as exc:
            status = "cancelled" if isinstance(exc, GeneratorExit | KeyboardInterrupt) else "failed"
            if self.book.run_id is not None and self.ctx.is_main:
                self.book.finish(status, self._elapsed(), self.best_metrics if hasattr(self, "best_metrics") else {})
            raise
        return result

    def _note(self, message: str) -> Progress:
        return Progress(0, 0, message, {"event": "note"})

    def _loop(self) -> Generator[Progress, None, TrainResult]:
        cfg = self.config
        assert self.data is not None
        data = self.data
        total = cfg.epochs * self._batches_per_epoch()
        yield Progress(self.epoch * self._batches_per_epoch(), total,
                       f"training {self.spec.name} on {self.device_text}, precision {self.net.precision}", {
                           "event": "start", "run_id": self.book.run_id, "run_dir": str(self.run_dir),
                           "device": self.device_text, "split": self.split,
                           "train_tiles": len(data.train_tiles), "val_tiles": len(data.val_tiles),
                           "batch_size": self.batch_size, "epoch": self.epoch,
                           "tile_size": list(data.size), "world_size": self.ctx.world_size,
                           "precision": self.net.precision, "num_workers": cfg.num_workers})
        for note in self.net.notes:
            yield self._note(note)
        yield from self._check_small_batches()
        yield from self._agree_batch_size()
        status = "finished"
        epoch_times: list[float] = []
        while self.epoch < cfg.epochs:
            t_epoch = time.monotonic()
            stopped = yield from self._train_epoch(total, epoch_times)
            if stopped:
                status = "cancelled"
                break
            t_train = time.monotonic() - t_epoch
            train_samples = self.epoch_samples
            val = yield from self._validate()
            if val is None:
                status = "cancelled"
                break
            early = self._end_epoch(val, t_train, train_samples, time.monotonic() - t_epoch)
            epoch_times.append(time.monotonic() - t_epoch)
            record = self.history[-1]
            eta = (cfg.epochs - self.epoch) * float(np.mean(epoch_times))
            yield Progress(
                self.epoch * self._batches_per_epoch(), total,
                f"epoch {self.epoch}/{cfg.epochs}: loss {record['train']['loss']:.4f}, "
                f"val mIoU {100 * val['miou']:.2f} %, F1 (class mean) {100 * val['f1_mean']:.2f} %, "
                f"F1 (landslide) {100 * val['f1_landslide']:.2f} %",
                {"event": "epoch", **record, "epochs": cfg.epochs, "best_epoch": self.best_epoch,
                 "best_miou": self.best_miou, "eta_s": eta},
            )
            if early:
                status = "early_stopped"
                break
        elapsed = self._elapsed()
        ckpt_path = self.run_dir / "last.ckpt"
        if status == "cancelled":
            ckpt_path = self._save_last()
        self.book.finish(status, elapsed, self.best_metrics)
        last = self.history[-1]["val"] if self.history else {}
        model_path = self.run_dir / "model.pt"
        return TrainResult(
            status=status, run_id=self.book.run_id, run_dir=self.run_dir,
            model_path=model_path if model_path.exists() else None,
            checkpoint_path=ckpt_path if ckpt_path.exists() else None,
            best_epoch=self.best_epoch, best_metrics=self.best_metrics, last_metrics=last,
            epochs_done=self.epoch, device=self.device_text, batch_size=self.batch_size,
            history=self.history, precision=self.net.precision,
        )

    # ------------------------------------------------------------------ batch size and memory
    def _check_small_batches(self) -> Generator[Progress, None, None]:
        """Batches of one sample: BatchNorm layers that would see one value per channel
        run in eval mode (said in the log) instead of failing mid-run."""
        assert self.data is not None
        if self.data.smallest_batch(self.batch_size) > 1:
            return
        note = self.net.freeze_single_value_norms(self.data.size, self.data.norm.bands)
        if note:
            yield self._note(note)

    def _agree_batch_size(self) -> Generator[Progress, None, None]:
        """Under DDP: find a batch size that fits on every process before the first step.

        A CUDA out-of-memory error inside a DDP step would leave the other processes
        waiting in a collective, so each process first runs one forward/backward of a
        full batch on the bare model (BatchNorm layers in eval mode: no collective, no
        statistics update, random streams untouched); the processes then agree (one
        all-reduce) and all halve the batch together, or all stop with the same sentence.
        """
        if not self.ctx.enabled:
            return
        while True:
            oom = False
            try:
                self._probe_step()
            except torch.OutOfMemoryError:
                oom = True
            self.net.optimizer.zero_grad(set_to_none=True)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if not self.ctx.any_flag(oom, self.device):
                return
            yield self._halve_batch(restore=False, where=" on at least one process")
            yield from self._check_small_batches()

    def _probe_step(self) -> None:
        assert self.data is not None
        bare = self.net.bare
        norms = [m for m in bare.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            bare.train()
            for m in norms:
                m.eval()
            try:
                x = torch.zeros(self.batch_size, self.data.norm.bands, *self.data.size, device=self.device)
                y = torch.zeros(self.batch_size, *self.data.size, dtype=torch.long, device=self.device)
                with autocast(self.device, self.net.amp_dtype):
                    logits = bare(x.contiguous(memory_format=self.net.memory))
                self.loss_fn(logits.float(), y).backward()
            finally:
                del x
                self.net.train_mode()

    def _halve_batch(self, restore: bool = True, where: str = "") -> Progress:
        self.net.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch_size <= 1:
            raise TrainingError(
                f"CUDA out of memory even with batch size 1{where}; every process stops",
                hint="use a smaller model or encoder, smaller tiles, --amp auto, or --device cpu",
            )
        old = self.batch_size
        self.batch_size //= 2
        self.grad_accum *= 2
        if restore:
            self._restore_boundary()
        msg = (f"CUDA out of memory at batch size {old}{where}: retrying with batch size {self.batch_size} "
               f"and {self.grad_accum} accumulation steps (same effective batch)")
        return Progress(0, 0, msg, {"event": "oom", "batch_size": self.batch_size, "grad_accum": self.grad_accum})

    def _train_epoch(self, total: int, epoch_times: list[float]) -> Generator[Progress, None, bool]:
        """Train the rest of the current epoch; return True when cancelled."""
        while True:
            try:
                return (yield from self._train_batches(total, epoch_times))
            except torch.OutOfMemoryError as exc:
                if self.ctx.enabled:
                    raise TrainingError(
                        f"CUDA out of memory on process {self.ctx.rank} during a DDP step at batch size "
                        f"{self.batch_size}; the processes cannot continue together",
                        hint=(f"restart with --batch-size {self.batch_size // 2}" if self.batch_size > 1
                              else "at batch size 1 only a smaller model or tile size, or a GPU with more "
                              "memory, can help")
                        + f" (--resume {self.run_dir} keeps the last epoch)",
                    ) from exc
                yield self._halve_batch()
                yield from self._check_small_batches()

    def _snapshot_boundary(self) -> None:
        """Remember the state after the last optimizer step; a cancel or an OOM inside a
        gradient-accumulation group rolls back to it (BatchNorm statistics included)."""
        buffers = (
            {k: b.detach().clone() for k, b in self.net.bare.named_buffers()}
            if self.grad_accum > 1 else None
        )
        self._boundary = (self.sample_offset, self.epoch_loss.clone(), self.epoch_cm.clone(),
                          self.epoch_samples, buffers)

    def _restore_boundary(self) -> None:
        self.sample_offset, loss, cm, self.epoch_samples, buffers = self._boundary
        self.epoch_loss.copy_(loss)
        self.epoch_cm.copy_(cm)
        if buffers is not None:
            with torch.no_grad():
                for k, b in self.net.bare.named_buffers():
                    b.copy_(buffers[k])

    def _train_batches(self, total: int, epoch_times: list[float]) -> Generator[Progress, None, bool]:
        cfg = self.config
        assert self.data is not None
        net, data = self.net, self.data
        net.train_mode()
        self._snapshot_boundary()
        bs, accum = self.batch_size, self.grad_accum
        loader = data.train_loader(self.epoch, self.sample_offset, bs)
        n_batches = self._batches_per_epoch()
        first = self.sample_offset // bs
        world = self.ctx.world_size
        t0 = time.monotonic()
        wait = 0.0
        done_samples = 0
        last_loss = float("nan")
        batches = worker_errors(loader)  # a bad tile in a worker: one sentence, not a traceback
        b = first - 1
        while True:
            t_wait = time.monotonic()
            try:
                image, target, params = next(batches)
            except StopIteration:
                break
            wait += time.monotonic() - t_wait
            b += 1
            log_point = (b + 1) % cfg.log_every == 0 or b + 1 == n_batches
            if self._cancel_requested(log_point):
                self._restore_boundary()
                return True
            group_start = (b // accum) * accum
            group = min(accum, n_batches - group_start)
            boundary = (b + 1) % accum == 0 or b + 1 == n_batches
            x, y = data.train_transform(image, target, params, net.memory)
            sync = self.ctx.enabled and not boundary
            with net.model.no_sync() if sync else contextlib.nullcontext():  # type: ignore[operator]
                with autocast(self.device, net.amp_dtype):
                    logits = net.model(x)
                loss = self.loss_fn(logits.float(), y)
                net.backward(loss / group)
            n = x.shape[0]
            self.epoch_loss += loss.detach().double() * n
            self.epoch_cm += confusion_torch(logits, y, cfg.threshold)
            self.epoch_samples += n
            self.sample_offset += n
            done_samples += n
            if boundary:
                net.step()
                self._snapshot_boundary()
            if log_point:
                last_loss = float(loss.detach())  # the only read-back of the batch loop
            now = time.monotonic()
            rate = done_samples * world / max(now - t0, 1e-9)
            left = (n_batches - b - 1) * bs * world / max(rate, 1e-9)
            left += (cfg.epochs - self.epoch - 1) * (float(np.mean(epoch_times)) if epoch_times
                                                     else n_batches * bs * world / max(rate, 1e-9))
            done = self.epoch * n_batches + b + 1
            yield Progress(
                done, total,
                f"epoch {self.epoch + 1}/{cfg.epochs} batch {b + 1}/{n_batches} loss {last_loss:.4f}",
                {"event": "batch", "epoch": self.epoch + 1, "epochs": cfg.epochs, "batch": b + 1,
                 "batches": n_batches, "loss": last_loss, "lr": net.optimizer.param_groups[0]["lr"],
                 "samples_per_s": rate, "eta_s": left, "loader_wait": wait / max(now - t0, 1e-9),
                 "precision": net.precision},
            )
        return False

    def _cancel_requested(self, log_point: bool) -> bool:
        flag = self.cancel is not None and self.cancel.cancelled
        if not self.ctx.enabled:
            return flag
        # agreeing costs a collective and a read-back: only at log points
        return self.ctx.any_flag(flag, self.device) if log_point else False

    def _validate(self) -> Generator[Progress, None, dict[str, float] | None]:
        assert self.data is not None
        cancel = None if self.ctx.enabled else self.cancel
        # the bare model: its forward is no collective, so a process without validation
        # tiles (4 train / 1 val on 2 processes) does not leave the other one waiting
        cm, loss_sum, samples, cancelled = yield from iter_confusion(
            self.net.bare, self.data.val_loader(self.batch_size), self.device,
            threshold=self.config.threshold, loss_fn=self.loss_fn, amp_dtype=self.net.amp_dtype,
            channels_last=self.config.channels_last, cancel=cancel, transform=self.data.val_transform,
        )
        if cancelled:
            return None
        stats = torch.tensor([loss_sum, float(samples)], dtype=torch.float64, device=self.device)
        self.ctx.all_reduce_sum(stats)
        self.ctx.all_reduce_sum(cm)
        counts = cm.cpu().numpy()
        metrics = segmentation_metrics(counts)
        metrics["loss"] = float(stats[0] / max(float(stats[1]), 1.0))
        metrics["confusion"] = counts.astype(int).tolist()  # [[TN, FP], [FN, TP]] pixels, for the GUI
        return metrics

    def _end_epoch(self, val: dict[str, float], t_train: float, train_samples: int, t_epoch: float) -> bool:
        """Record the epoch, save checkpoints; return True when early stopping triggers."""
        cfg = self.config
        stats = torch.tensor([float(self.epoch_loss), float(train_samples)], dtype=torch.float64,
                             device=self.device)
        self.ctx.all_reduce_sum(stats)
        self.ctx.all_reduce_sum(self.epoch_cm)
        tm = segmentation_metrics(self.epoch_cm.cpu().numpy())
        train_metrics = {"loss": float(stats[0] / max(float(stats[1]), 1.0)), "miou": tm["miou"],
                         "iou": tm["iou"], "f1_mean": tm["f1_mean"], "f1_landslide": tm["f1_landslide"],
                         "samples_per_s": float(stats[1]) / max(t_train, 1e-9)}
        self.epoch += 1
        record = {"epoch": self.epoch, "lr": self.net.optimizer.param_groups[0]["lr"],
                  "train": train_metrics, "val": val, "duration_s": t_epoch,
                  "batch_size": self.batch_size, "precision": self.net.precision}
        self.history.append(record)
        improved = val["miou"] > self.best_miou  # the best checkpoint is the best validation mIoU
        if improved:
            self.best_miou, self.best_epoch, self.best_metrics = val["miou"], self.epoch, dict(val)
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        self.sample_offset = 0
        self.epoch_loss.zero_()
        self.epoch_cm.zero_()
        self.epoch_samples = 0
        if self.ctx.is_main:
            atomic_save(self._checkpoint(val), self.run_dir / "last.ckpt")
            if improved:
                _link_or_copy(self.run_dir / "last.ckpt", self.run_dir / "best.ckpt")
                save_model_file(self.run_dir / "model.pt", self.net.bare, self._model_meta(val, self.epoch))
            self.book.record_epoch(record, self.history, self.best_metrics, self._elapsed())
        return bool(cfg.early_stopping and self.bad_epochs >= cfg.early_stopping)


# --------------------------------------------------------------------------- helpers
def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` becomes the same content as ``src`` (a hard link when possible: no rewrite)."""
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}_"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _param_groups(model: nn.Module, head_lr_mult: float, lr: float) -> list[dict[str, Any]]:
    """One parameter group, or the encoder at ``lr`` and the rest (decoder, head) at
    ``lr * head_lr_mult`` (the authors' recipe uses 10)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if head_lr_mult == 1.0:
        return [{"params": params, "lr": lr}]
    encoder_ids = {id(p) for p in _encoder_parameters(model)}
    if not encoder_ids:
        raise TrainingError(
            f"head_lr_mult needs a model whose encoder is known; {type(model).__name__} has none",
            hint="use head_lr_mult = 1",
        )
    encoder = [p for p in params if id(p) in encoder_ids]
    head = [p for p in params if id(p) not in encoder_ids]
    return [{"params": encoder, "lr": lr}, {"params": head, "lr": lr * head_lr_mult}]


def _encoder_parameters(model: nn.Module) -> Iterable[nn.Parameter]:
    """The encoder's parameters: ``head_parameters()`` (everything else is encoder),
    ``encoder_modules()``, or the ``encoder`` attribute (smp models, MFFENet)."""
    head_parameters = getattr(model, "head_parameters", None)
    if callable(head_parameters):
        head = {id(p) for p in head_parameters()}
        return [p for p in model.parameters() if id(p) not in head]
    encoder_modules = getattr(model, "encoder_modules", None)
    if callable(encoder_modules):
        return [p for m in encoder_modules() for p in m.parameters()]
    encoder = getattr(model, "encoder", None)
    return list(encoder.parameters()) if isinstance(encoder, nn.Module) else []


def _aspp_rates(model: nn.Module) -> list[int] | None:
    """The dilation rates of the model's ASPP convolutions (None: no ASPP)."""
    rates = {int(m.dilation[0]) for name, m in model.named_modules()
             if "aspp" in name.lower() and isinstance(m, nn.Conv2d) and m.dilation[0] > 1}
    return sorted(rates) or None


def _optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    groups = _param_groups(model, float(cfg.head_lr_mult), cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay)


def _scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step schedule: ``poly`` (1 - t)^power, ``cosine`` half cosine to 0, ``constant``."""
    power = cfg.poly_power

    def factor(step: int) -> float:
        t = min(step / total_steps, 1.0)
        if cfg.schedule == "poly":
            return (1.0 - t) ** power
        if cfg.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _determinism_flags() -> tuple[bool, bool, bool]:
    return (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark)


def _set_determinism(deterministic: bool, device: torch.device) -> None:
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def _restore_determinism(flags: tuple[bool, bool, bool]) -> None:
    torch.use_deterministic_algorithms(flags[0], warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[1], flags[2]


def _get_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state(),  # plain types: the checkpoint loads with weights_only=True
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np_state = state["numpy"]
    if isinstance(np_state, dict):
        np.random.set_state((np_state["name"], np.asarray(np_state["keys"], dtype=np.uint32),
                             np_state["pos"], np_state["has_gauss"], np_state["cached"]))
    else:
        np.random.set_state(np_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": str(name), "keys": [int(k) for k in keys], "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}
