"""The end of a training epoch: validation on this rank's share of the validation tiles,
the epoch's record (train and validation metrics), the checkpoints and the best model
file, and early stopping."""

from __future__ import annotations

from collections.abc import Generator

import torch

from casdesk.core.evaluation.metrics import segmentation_metrics
from casdesk.core.jobs import Progress
from casdesk.ml.modelfile import atomic_save, save_model_file
from casdesk.ml.training.checkpoint import Checkpoints, link_or_copy
from casdesk.ml.training.evaluate import iter_confusion


class Validation(Checkpoints):
    """Validate, record the epoch, save its checkpoints; decide on early stopping."""

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
                link_or_copy(self.run_dir / "last.ckpt", self.run_dir / "best.ckpt")
                save_model_file(self.run_dir / "model.pt", self.net.bare, self._model_meta(val, self.epoch))
            self.book.record_epoch(record, self.history, self.best_metrics, self._elapsed())
        return bool(cfg.early_stopping and self.bad_epochs >= cfg.early_stopping)
