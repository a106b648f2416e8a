"""The Train tab's live run: progress events of the running job (progress bar, status line
with loss, speed, ETA and GPU memory, plots, confusion counts, validation preview) and the
end of a run (finished, failed, done: the next queued run starts).

A part of :class:`~casdesk.gui.training.panel.TrainingPanel` (a QWidget base without state
of its own: the panel's ``__init__`` sets the attributes declared here).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QLabel, QProgressBar, QWidget

from casdesk.core.jobs import Progress
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.kit.workers import JobRunner
from casdesk.gui.shell.context import ProjectContext
from casdesk.gui.training.form import TrainingForm
from casdesk.gui.training.plots import ConfusionTable, TrainingPlots
from casdesk.gui.training.preview import ValidationPreview

log = logging.getLogger(__name__)


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _fmt_loss(value: Any) -> str:
    """The last loss read back ("-" before the engine's first read-back, which is NaN)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{v:.4f}" if v == v else "-"


class TrainingProgress(QWidget):
    """Progress, finish, failure and end of the running job (part of TrainingPanel)."""

    # the panel's state this part uses (TrainingPanel.__init__ sets it)
    context: ProjectContext
    runner: JobRunner | None
    current: dict[str, Any] | None
    last_run_dir: Path | None
    paused_run_dir: Path | None
    epoch_points: int
    device_text: str
    form: TrainingForm
    progress: QProgressBar
    status: QLabel
    plots: TrainingPlots
    confusion: ConfusionTable
    preview: ValidationPreview

    if TYPE_CHECKING:  # the panel's own

        def refresh_runs(self) -> None: ...
        def _start_next(self) -> None: ...
        def _update_buttons(self) -> None: ...

    def _on_progress(self, event: Progress) -> None:
        data = event.data or {}
        kind = data.get("event")
        if event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
        if kind == "start":
            self.last_run_dir = Path(data["run_dir"]) if data.get("run_dir") else None
            self.device_text = data.get("device", "")
            self.status.setText(
                f"{event.message} | {data.get('train_tiles', 0)} train / {data.get('val_tiles', 0)} val tiles"
                f" | tile loader: {data.get('num_workers', 0)} worker process(es)"
            )
            self.refresh_runs()
        elif kind == "batch":
            self.plots.add_batch(data)
            self.status.setText(
                f"epoch {data['epoch']}/{data['epochs']} batch {data['batch']}/{data['batches']} | "
                f"loss {_fmt_loss(data.get('loss'))} | {data['samples_per_s']:.1f} samples/s | "
                f"ETA {_fmt_eta(data.get('eta_s'))} | {getattr(self, 'device_text', '')}{self._gpu_memory()}"
            )
        elif kind == "epoch":
            self.plots.add_epoch(data)
            self.confusion.set_counts((data.get("val") or {}).get("confusion"))
            self.epoch_points += 1
            if self.context.catalog is not None:
                self.preview.on_epoch(self.last_run_dir, self.context.catalog.path, data.get("best_epoch"))
            self.refresh_runs()
        elif kind == "oom":
            self.context.status_message.emit(event.message)
            log.warning(event.message)
        elif event.message:
            self.status.setText(event.message)

    def _gpu_memory(self) -> str:
        if not getattr(self, "device_text", "").startswith("cuda"):
            return ""
        import torch  # already imported by the worker

        return f" | GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GB"

    def _on_finished(self, result: Any) -> None:
        best = getattr(result, "best_metrics", {}) or {}
        status = str(getattr(result, "status", "done")).replace("_", " ")
        epoch = getattr(result, "best_epoch", None)
        if epoch is None:  # cancelled (or stopped) before the first validation
            text = f"{status.capitalize()} before the first epoch ended: no model saved yet"
            if self.paused_run_dir is not None:
                text += " (the checkpoint is kept: Resume continues)"
        else:
            text = f"{status.capitalize()}: best epoch {epoch}"
        if best and epoch is not None:
            text += f", mIoU {100 * best.get('miou', 0):.2f} %, F1 (class mean) {100 * best.get('f1_mean', 0):.2f} %"
        self.status.setText(text)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if epoch is not None else 0)
        self.context.status_message.emit(f"training {text}")
        if epoch is not None and self.context.catalog is not None:
            # the last epoch's model file may be written after its progress event: catch up
            self.preview.on_epoch(self.last_run_dir, self.context.catalog.path, epoch)

    def _on_failed(self, message: str, details: str) -> None:
        self.status.setText(f"Failed: {message}")
        show_error(self, "Training failed", message, details)

    def _on_done(self) -> None:
        self.runner = None
        self.current = None
        if self.progress.maximum() == 0:  # still "busy" (failed or cancelled before any progress)
            self.progress.setRange(0, 1)
        self.refresh_runs()
        self.form.refresh_splits()
        self._start_next()
        self._update_buttons()
