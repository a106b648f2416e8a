"""The batches of one training epoch: steps with gradient accumulation, the per-batch
progress events, cancelling within one batch (at log points under DDP), and what happens
on CUDA out of memory (halve the batch, keep the effective batch; under DDP, agree on a
batch size that fits on every process before the first step).

Host synchronisation: the loss is read back at log points only (``log_every``), the
confusion counts stay on the device until the end of the epoch, and under DDP the cancel
flag is agreed at log points only, so the GPU is never drained once per batch."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator

import numpy as np
import torch
from torch import nn

from casdesk.core.jobs import Progress
from casdesk.ml.errors import TrainingError
from casdesk.ml.training.data import worker_errors
from casdesk.ml.training.evaluate import autocast, confusion_torch
from casdesk.ml.training.validation import Validation


class BatchLoop(Validation):
    """Train the batches of an epoch; handle cancel and out-of-memory errors."""

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
