"""Training: a generator of :class:`~casdesk.core.jobs.Progress` events, one code path for
the CLI, the GUI worker thread and ``torchrun``.

``train(project, config, cancel=token)`` yields an event per batch (``data["event"] ==
"batch"``: loss, learning rate, samples/s, ETA) and per epoch (``"epoch"``: train and
validation metrics) and returns a :class:`TrainResult`. Setting the cancel token stops it
within one batch; the run folder then holds a ``last.ckpt`` from which
``train(project, resume=run_dir)`` continues exactly where it stopped (same weights, same
optimizer/scheduler state, same random streams, same position in the epoch).

Each run is a row of the catalog's ``runs`` table (config, split, device, status,
duration, best metrics) with one ``run_epochs`` row per epoch, and a folder with
``config.json``, ``log.csv``, ``last.ckpt``, ``best.ckpt`` and ``model.pt`` (the best
weights as a self-describing model file, see :mod:`casdesk.ml.modelfile`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import shutil
import time
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from casdesk import __version__
from casdesk.core.dataset.splits import default_name, list_splits, load_split, make_split, split_id
from casdesk.core.evaluation.metrics import segmentation_metrics
from casdesk.core.jobs import CancelToken, Progress
from casdesk.core.project.catalog import Catalog, utc_now
from casdesk.ml.device import describe_device
from casdesk.ml.errors import DataError, TrainingError
from casdesk.ml.modelfile import (
    CHECKPOINT_FORMAT,
    atomic_save,
    load_tagged,
    save_model_file,
    unwrap,
)
from casdesk.ml.models.registry import create_model, resolve_spec
from casdesk.ml.training import distributed
from casdesk.ml.training.config import TrainConfig
from casdesk.ml.training.data import (
    Augment,
    Normalization,
    TileDataset,
    compute_normalization,
    padded_size,
    select_tiles,
)
from casdesk.ml.training.evaluate import autocast, confusion_torch, iter_confusion
from casdesk.ml.training.losses import get_loss

__all__ = ["TrainConfig", "TrainResult", "train", "read_checkpoint"]

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
        }


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint (a run folder means its ``last.ckpt``)."""
    p = Path(path)
    if p.is_dir():
        p = p / "last.ckpt"
    if not p.is_file():
        raise TrainingError("no checkpoint to resume from", p, "pass a run folder or its last.ckpt")
    # optimizer and RNG states need the full unpickler; the file is casdesk's own
    ckpt = load_tagged(p, CHECKPOINT_FORMAT, TrainingError, "casdesk training checkpoint", weights_only=False)
    ckpt["path"] = str(p)
    return ckpt


def train(
    project: str | Path | Catalog,
    config: TrainConfig | None = None,
    *,
    cancel: CancelToken | None = None,
    resume: str | Path | None = None,
) -> Generator[Progress, None, TrainResult]:
    """Train a model on a project's split; yield progress; return a :class:`TrainResult`.

    ``resume``: a run folder (or checkpoint) to continue; its stored configuration is
    used, except ``device``, ``num_workers``, ``pin_memory`` and ``log_every``, taken
    from ``config`` when given. Under ``torchrun`` every process calls this; rank 0
    writes files and the catalog.
    """
    ckpt = read_checkpoint(resume) if resume is not None else None
    if ckpt is not None:
        saved = TrainConfig.from_dict(ckpt["config"])
        if config is not None:
            saved = replace(saved, **{k: getattr(config, k) for k in RESUMABLE_OVERRIDES})
        config = saved
    config = (config or TrainConfig()).validate()
    ctx, device = distributed.setup(config.device)
    try:
        trainer = _Trainer(project, config, ctx, device, cancel, ckpt)
        try:
            return (yield from trainer.run())
        finally:
            trainer.close()
    finally:
        ctx.close()


class _Trainer:
    """State and steps of one training run (private; use :func:`train`)."""

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
        self.catalog = Catalog.open(project) if self.own_catalog else project  # type: ignore[arg-type]
        self.run_id: int | None = None
        self.run_dir = Path(".")
        self.status = "running"
        self._saved_flags = _determinism_flags()

    def close(self) -> None:
        _restore_determinism(self._saved_flags)
        if self.own_catalog:
            self.catalog.close()

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        cfg, ckpt = self.config, self.ckpt
        _seed_everything(cfg.seed)
        _set_determinism(cfg.deterministic, self.device)
        self.split = ckpt["split"] if ckpt else self._resolve_split()
        parts = load_split(self.catalog, self.split)
        self.train_tiles = select_tiles(self.catalog, parts, "train", cfg.qc_accepted_only)
        self.val_tiles = select_tiles(self.catalog, parts, "val", cfg.qc_accepted_only)
        if not self.train_tiles:
            raise DataError(f"split {self.split!r} has no training tiles with masks", self.catalog.path,
                            "check the split and the QC decisions")
        if not self.val_tiles:
            raise DataError(f"split {self.split!r} has no validation tiles with masks", self.catalog.path,
                            "make a split with a validation part (casdesk split)")
        if ckpt:
            self.norm = Normalization.from_dict(ckpt["normalization"])
            self.size = tuple(ckpt["tile_size"])
        else:
            self.norm = compute_normalization(self.train_tiles, cfg.norm_max_tiles, cfg.seed)
            self.size = padded_size(self.train_tiles + self.val_tiles)
        augment = Augment() if cfg.augment else None
        self.train_set = TileDataset(self.train_tiles, self.norm, self.size, augment, cfg.seed)
        self.val_set = TileDataset(self.val_tiles, self.norm, self.size)
        self.loss_fn = get_loss(cfg.loss)
        self.amp_dtype = _amp_dtype(cfg.amp, self.device)
        self.memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.pin = cfg.pin_memory if cfg.pin_memory is not None else self.device.type == "cuda"

        self.spec = resolve_spec(cfg.model)
        torch.manual_seed(cfg.seed)
        weights = None if ckpt else cfg.encoder_weights
        model = create_model(cfg.model, cfg.encoder, self.norm.bands, cfg.classes, weights)
        model = model.to(self.device, memory_format=self.memory)
        self.model: nn.Module = model
        if self.ctx.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(model, device_ids=ids)

        self.batch_size = int(ckpt["batch_size"]) if ckpt else cfg.batch_size
        self.grad_accum = int(ckpt["grad_accum"]) if ckpt else cfg.grad_accum
        self.per_rank = math.ceil(len(self.train_set) / self.ctx.world_size)
        self.optimizer = _optimizer(cfg, self.model)
        steps = cfg.epochs * math.ceil(self._batches_per_epoch() / self.grad_accum)
        self.scheduler = _scheduler(cfg, self.optimizer, max(steps, 1))
        use_scaler = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler) if use_scaler else None

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
        bs = self.batch_size
        return self.per_rank // bs if self._drop_last() else math.ceil(self.per_rank / bs)

    def _drop_last(self) -> bool:
        # a trailing batch of one sample breaks BatchNorm; drop it when a full batch exists
        return self.per_rank > self.batch_size

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
        unwrap(self.model).load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
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
        self.run_id = ckpt.get("run_id")
        self.run_dir = Path(ckpt["run_dir"])
        _set_rng_state(ckpt["rng"])

    # ------------------------------------------------------------------ run bookkeeping
    def _start_run(self) -> None:
        cfg = self.config
        if not self.ctx.is_main:
            return
        now = utc_now()
        sid = split_id(self.catalog, self.split)
        desc = describe_device(self.device) + (f" x{self.ctx.world_size}" if self.ctx.enabled else "")
        self.device_text = desc
        if self.ckpt and self.run_id is not None:
            with self.catalog.transaction() as db:
                db.execute("UPDATE runs SET status = 'running', device = ?, finished = NULL WHERE id = ?",
                           (desc, self.run_id))
            return
        name = cfg.name or f"{self.spec.name}-{self.split}"
        with self.catalog.transaction() as db:
            cur = db.execute(
                "INSERT INTO runs(name, kind, status, config, split_id, device, started)"
                " VALUES (?, 'train', 'running', ?, ?, ?, ?)",
                (name, json.dumps(cfg.to_dict()), sid, desc, now),
            )
            self.run_id = int(cur.lastrowid)
        if cfg.out_dir:
            self.run_dir = Path(cfg.out_dir).expanduser().absolute()
        else:
            slug = self.spec.name.replace(":", "-")
            self.run_dir = self.catalog.data_dir / "runs" / f"run{self.run_id:04d}-{slug}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.catalog.transaction() as db:
            db.execute("UPDATE runs SET out_dir = ? WHERE id = ?", (str(self.run_dir), self.run_id))
        (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2), encoding="utf-8")

    def _finish_run(self, status: str, elapsed: float) -> None:
        if not self.ctx.is_main or self.run_id is None:
            return
        model_path = self.run_dir / "model.pt"
        with self.catalog.transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished = ?, duration_s = ?, model_path = ?,"
                " best_metrics = ? WHERE id = ?",
                (status, utc_now(), elapsed, str(model_path) if model_path.exists() else None,
                 json.dumps(self.best_metrics), self.run_id),
            )

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "casdesk_version": __version__,
            "config": self.config.to_dict(),
            "split": self.split,
            "normalization": self.norm.to_dict(),
            "tile_size": list(self.size),
            "model": {k: v.detach().cpu() for k, v in unwrap(self.model).state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
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
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "rng": _get_rng_state(),
        }

    def _save_last(self) -> Path:
        path = self.run_dir / "last.ckpt"
        if self.ctx.is_main:
            atomic_save(self._checkpoint(), path)
        return path

    def _model_meta(self, metrics: dict[str, float], epoch: int) -> dict[str, Any]:
        cfg = self.config
        return {
            "architecture": self.spec.name,
            "encoder": cfg.encoder or self.spec.default_encoder,
            "in_channels": self.norm.bands,
            "bands": self.norm.bands,
            "classes": cfg.classes,
            "class_names": ["background", "landslide"],
            "threshold": cfg.threshold,
            "normalization": self.norm.to_dict(),
            "ignore_index": 255,
            "tile_size": list(self.size),
            "size_multiple": 32,
            "resolution_m": self._resolutions(),
            "split": self.split,
            "epoch": epoch,
            "metrics": metrics,
            "loss": cfg.loss,
            "run_id": self.run_id,
            "casdesk_version": __version__,
            "torch_version": torch.__version__,
            "created": utc_now(),
        }

    def _resolutions(self) -> list[float]:
        rows = self.catalog.query(
            "SELECT DISTINCT COALESCE(s.resolution_m, d.resolution_m) FROM split_tiles st"
            " JOIN tiles t ON t.id = st.tile_id JOIN subdatasets d ON d.id = t.subdataset_id"
            " LEFT JOIN scenes s ON s.id = t.scene_id"
            " WHERE st.split_id = ? AND st.part = 'train'",
            (split_id(self.catalog, self.split),),
        )
        return sorted(float(r[0]) for r in rows if r[0] is not None)

    # ------------------------------------------------------------------ loaders
    def _train_loader(self, epoch: int, start_sample: int) -> DataLoader:
        sampler = DistributedSampler(
            self.train_set, num_replicas=self.ctx.world_size, rank=self.ctx.rank,
            shuffle=True, seed=self.config.seed, drop_last=False,
        )
        sampler.set_epoch(epoch)
        indices = list(sampler)[start_sample:]
        self.train_set.set_epoch(epoch)
        gen = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        return DataLoader(
            self.train_set, batch_size=self.batch_size, sampler=indices,
            num_workers=self.config.num_workers, pin_memory=self.pin,
            drop_last=self._drop_last(), generator=gen,
        )

    def _val_loader(self) -> DataLoader:
        indices = list(range(self.ctx.rank, len(self.val_set), self.ctx.world_size))
        return DataLoader(
            self.val_set, batch_size=self.batch_size, sampler=indices,
            num_workers=self.config.num_workers, pin_memory=self.pin,
        )

    # ------------------------------------------------------------------ main loop
    def _elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.t_start)

    def run(self) -> Generator[Progress, None, TrainResult]:
        self.t_start = time.monotonic()
        self.device_text = describe_device(self.device)
        try:
            self._setup()
            self._start_run()
            result = yield from self._loop()
        except BaseException as exc:
            status = "cancelled" if isinstance(exc, GeneratorExit | KeyboardInterrupt) else "failed"
            if self.run_id is not None and self.ctx.is_main:
                self._finish_run(status, self._elapsed())
            raise
        return result

    def _loop(self) -> Generator[Progress, None, TrainResult]:
        cfg = self.config
        total = cfg.epochs * self._batches_per_epoch()
        yield Progress(self.epoch * self._batches_per_epoch(), total,
                       f"training {self.spec.name} on {self.device_text}", {
                           "event": "start", "run_id": self.run_id, "run_dir": str(self.run_dir),
                           "device": self.device_text, "split": self.split,
                           "train_tiles": len(self.train_tiles), "val_tiles": len(self.val_tiles),
                           "batch_size": self.batch_size, "epoch": self.epoch,
                           "tile_size": list(self.size), "world_size": self.ctx.world_size})
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
        self._finish_run(status, elapsed)
        last = self.history[-1]["val"] if self.history else {}
        model_path = self.run_dir / "model.pt"
        return TrainResult(
            status=status, run_id=self.run_id, run_dir=self.run_dir,
            model_path=model_path if model_path.exists() else None,
            checkpoint_path=ckpt_path if ckpt_path.exists() else None,
            best_epoch=self.best_epoch, best_metrics=self.best_metrics, last_metrics=last,
            epochs_done=self.epoch, device=self.device_text, batch_size=self.batch_size,
            history=self.history,
        )

    def _train_epoch(self, total: int, epoch_times: list[float]) -> Generator[Progress, None, bool]:
        """Train the rest of the current epoch; return True when cancelled."""
        while True:
            try:
                return (yield from self._train_batches(total, epoch_times))
            except torch.OutOfMemoryError:
                yield self._halve_batch()

    def _halve_batch(self) -> Progress:
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch_size <= 1:
            raise TrainingError(
                "CUDA out of memory even with batch size 1",
                hint="use a smaller model or encoder, smaller tiles, --amp bf16, or --device cpu",
            )
        old = self.batch_size
        self.batch_size //= 2
        self.grad_accum *= 2
        self._restore_boundary()
        msg = (f"CUDA out of memory at batch size {old}: retrying with batch size {self.batch_size} "
               f"and {self.grad_accum} accumulation steps (same effective batch)")
        return Progress(0, 0, msg, {"event": "oom", "batch_size": self.batch_size, "grad_accum": self.grad_accum})

    def _snapshot_boundary(self) -> None:
        """Remember the state after the last optimizer step; a cancel or an OOM inside a
        gradient-accumulation group rolls back to it (BatchNorm statistics included)."""
        buffers = (
            {k: b.detach().clone() for k, b in unwrap(self.model).named_buffers()}
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
                for k, b in unwrap(self.model).named_buffers():
                    b.copy_(buffers[k])

    def _train_batches(self, total: int, epoch_times: list[float]) -> Generator[Progress, None, bool]:
        cfg = self.config
        self.model.train()
        self._snapshot_boundary()
        loader = self._train_loader(self.epoch, self.sample_offset)
        n_batches = self._batches_per_epoch()
        bs, accum = self.batch_size, self.grad_accum
        first = self.sample_offset // bs
        t0 = time.monotonic()
        done_samples = 0
        last_loss = float("nan")
        for b, (x, y) in enumerate(loader, start=first):
            if self._cancel_requested():
                self._restore_boundary()
                return True
            group_start = (b // accum) * accum
            group = min(accum, n_batches - group_start)
            boundary = (b + 1) % accum == 0 or b + 1 == n_batches
            x = x.to(self.device, non_blocking=True, memory_format=self.memory)
            y = y.to(self.device, non_blocking=True)
            sync = self.ctx.enabled and not boundary and hasattr(self.model, "no_sync")
            with self.model.no_sync() if sync else _null():  # type: ignore[operator]
                with autocast(self.device, self.amp_dtype):
                    logits = self.model(x)
                loss = self.loss_fn(logits.float(), y)
                scaled = loss / group
                if self.scaler is not None:
                    self.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
            n = x.shape[0]
            self.epoch_loss += loss.detach().double() * n
            self.epoch_cm += confusion_torch(logits, y, cfg.threshold)
            self.epoch_samples += n
            self.sample_offset += n
            done_samples += n
            if boundary:
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.scheduler.step()
                self._snapshot_boundary()
            if self.device.type != "cuda" or (b + 1) % cfg.log_every == 0 or b + 1 == n_batches:
                last_loss = float(loss.detach())
            rate = done_samples * self.ctx.world_size / max(time.monotonic() - t0, 1e-9)
            left = (n_batches - b - 1) * bs * self.ctx.world_size / max(rate, 1e-9)
            left += (cfg.epochs - self.epoch - 1) * (float(np.mean(epoch_times)) if epoch_times
                                                     else n_batches * bs * self.ctx.world_size / max(rate, 1e-9))
            done = self.epoch * n_batches + b + 1
            yield Progress(
                done, total,
                f"epoch {self.epoch + 1}/{cfg.epochs} batch {b + 1}/{n_batches} loss {last_loss:.4f}",
                {"event": "batch", "epoch": self.epoch + 1, "epochs": cfg.epochs, "batch": b + 1,
                 "batches": n_batches, "loss": last_loss, "lr": self.optimizer.param_groups[0]["lr"],
                 "samples_per_s": rate, "eta_s": left},
            )
        return False

    def _cancel_requested(self) -> bool:
        flag = self.cancel is not None and self.cancel.cancelled
        return self.ctx.any_flag(flag, self.device)

    def _validate(self) -> Generator[Progress, None, dict[str, float] | None]:
        cancel = None if self.ctx.enabled else self.cancel
        cm, loss_sum, samples, cancelled = yield from iter_confusion(
            self.model, self._val_loader(), self.device, threshold=self.config.threshold,
            loss_fn=self.loss_fn, amp_dtype=self.amp_dtype,
            channels_last=self.config.channels_last, cancel=cancel,
        )
        if cancelled:
            return None
        stats = torch.tensor([loss_sum, float(samples)], dtype=torch.float64, device=self.device)
        self.ctx.all_reduce_sum(stats)
        self.ctx.all_reduce_sum(cm)
        metrics = segmentation_metrics(cm.cpu().numpy())
        metrics["loss"] = float(stats[0] / max(float(stats[1]), 1.0))
        metrics["confusion"] = cm.cpu().numpy().astype(int).tolist()  # [[TN, FP], [FN, TP]] pixels, for the GUI
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
        record = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"],
                  "train": train_metrics, "val": val, "duration_s": t_epoch,
                  "batch_size": self.batch_size}
        self.history.append(record)
        improved = val["miou"] > self.best_miou
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
            atomic_save(self._checkpoint(), self.run_dir / "last.ckpt")
            if improved:
                _link_or_copy(self.run_dir / "last.ckpt", self.run_dir / "best.ckpt")
                save_model_file(self.run_dir / "model.pt", self.model, self._model_meta(val, self.epoch))
            self._write_csv()
            with self.catalog.transaction() as db:
                db.execute("INSERT OR REPLACE INTO run_epochs(run_id, epoch, metrics) VALUES (?, ?, ?)",
                           (self.run_id, self.epoch, json.dumps(record)))
                db.execute("UPDATE runs SET duration_s = ?, best_metrics = ? WHERE id = ?",
                           (self._elapsed(), json.dumps(self.best_metrics), self.run_id))
        return bool(cfg.early_stopping and self.bad_epochs >= cfg.early_stopping)

    def _write_csv(self) -> None:
        rows = [_flatten(r) for r in self.history]
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


# --------------------------------------------------------------------------- helpers
class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


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


def _optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay)


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


def _amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if mode == "off":
        return None
    if device.type != "cuda":
        if mode == "auto":
            return None
        raise TrainingError(f"mixed precision {mode} needs a CUDA GPU (device is {device})", hint="use --amp off")
    if mode == "fp16":
        return torch.float16
    if mode == "bf16":
        if not torch.cuda.is_bf16_supported():
            raise TrainingError("this GPU does not support bf16", hint="use --amp fp16")
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


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
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
