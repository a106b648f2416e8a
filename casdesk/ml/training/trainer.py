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

The work is split by responsibility, one module each:

* :mod:`~casdesk.ml.training.runbook`: the catalog rows and the run folder (rank 0 alone
  writes);
* :mod:`~casdesk.ml.training.run_data`: datasets, samplers and persistent DataLoaders, the
  device transform;
* :mod:`~casdesk.ml.training.net`: the model (DDP, SyncBatchNorm, BatchNorm layers that
  cannot train on one sample), precision, optimizer, scheduler and gradient scaler;
* :mod:`~casdesk.ml.training.reproducibility`: seeds, determinism, random streams;
* :mod:`~casdesk.ml.training.run_state`, :mod:`~casdesk.ml.training.checkpoint`,
  :mod:`~casdesk.ml.training.validation`, :mod:`~casdesk.ml.training.batches`: the run's
  state, its checkpoints, the end of an epoch, the batch loop (steps, cancel,
  out-of-memory handling);
* this module: :func:`train`, the run's setup and its epoch loop (``_Trainer``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from casdesk.core.dataset.splits import default_name, list_splits, make_split, split_id
from casdesk.core.jobs import CancelToken, Progress
from casdesk.core.project.catalog import Catalog
from casdesk.ml.device import describe_device
from casdesk.ml.training import distributed
from casdesk.ml.training.augment import augment_kind
from casdesk.ml.training.batches import BatchLoop
from casdesk.ml.training.checkpoint import RESUMABLE_OVERRIDES, read_checkpoint, resume_config
from casdesk.ml.training.config import TrainConfig
from casdesk.ml.training.losses import get_loss
from casdesk.ml.training.net import TrainNet
from casdesk.ml.training.reproducibility import (
    determinism_flags,
    restore_determinism,
    seed_everything,
    set_determinism,
)
from casdesk.ml.training.run_data import TrainData
from casdesk.ml.training.runbook import RunBook

__all__ = ["RESUMABLE_OVERRIDES", "TrainConfig", "TrainResult", "train", "read_checkpoint",
           "resume_config"]


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


class _Trainer(BatchLoop):
    """One training run (private; use :func:`train`): its setup and the epoch loop; the
    batches, validation and checkpoints come from the classes it builds on."""

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
        self.book = RunBook(self.catalog, ctx)
        self.data: TrainData | None = None
        self._saved_flags = determinism_flags()

    def close(self) -> None:
        restore_determinism(self._saved_flags)
        if self.data is not None:
            self.data.close()
        if self.own_catalog:
            self.catalog.close()

    def _setup(self) -> None:
        cfg, ckpt = self.config, self.ckpt
        seed_everything(cfg.seed)
        set_determinism(cfg.deterministic, self.device)
        self.split = ckpt["split"] if ckpt else self._resolve_split()
        self.data = TrainData(self.catalog, cfg, self.ctx, self.device, self.split, ckpt)
        self.loss_fn = get_loss(cfg.loss)
        self.net = TrainNet(cfg, self.ctx, self.device, self.data.norm.bands, fresh=ckpt is None)
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
