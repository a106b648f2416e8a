"""Training panel: a job form, a queue of runs executed one by one in a worker QThread,
live plots, and the runs table with comparison and paper-style export.

Why a QThread and not a subprocess: the engine is a generator that yields progress and
polls a cancel token between batches, so a thread gives live events and a cancel that
acts within one batch with no IPC; CUDA errors surface as Python exceptions in the worker
and are shown as dialogs. (A hard CUDA crash would take the app down; the engine's
checkpoints make the run resumable afterwards.)

Pause = cancel keeping the checkpoint; Resume = continue that run from its checkpoint.
The running job's progress and end are :mod:`casdesk.gui.training.progress`, a base of the
panel.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from casdesk.core.evaluation.experiments import EXPERIMENTS, PlannedRun, prepare_split
from casdesk.core.evaluation.runs import (
    PAPER_COLUMNS,
    comparison_csv,
    comparison_markdown,
    list_runs,
    run_epochs,
)
from casdesk.core.jobs import CancelToken, Job, Progress
from casdesk.core.project.catalog import Catalog
from casdesk.gui.kit.devices import DeviceProbe
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.kit.torch_import import import_ml_quietly, import_torch_quietly, torch_imported
from casdesk.gui.kit.workers import JobRunner
from casdesk.gui.predict.models import effective_encoder
from casdesk.gui.shell.context import ProjectContext
from casdesk.gui.training.form import TrainingForm
from casdesk.gui.training.plots import ConfusionTable, TrainingPlots
from casdesk.gui.training.preview import ValidationPreview
from casdesk.gui.training.progress import TrainingProgress

log = logging.getLogger(__name__)

__all__ = [
    "EXPERIMENT_WIDE",
    "FIRST_METRIC_COLUMN",
    "MIN_RUN_ROWS",
    "QUICK_EPOCHS",
    "RUN_COLUMNS",
    "TrainingPanel",
    "TrainingProgress",
    "gui_loader_workers",
]
RUN_COLUMNS = ["Id", "Run", "Model", "Encoder", "Split", "Status", "Device", "Minutes", *[h for _, h in PAPER_COLUMNS]]
FIRST_METRIC_COLUMN = 8
MIN_RUN_ROWS = 10  # the runs table shows at least this many rows
QUICK_EPOCHS = 5  # "Train on these tiles": a short run
# the form's settings a paper experiment takes (as `casdesk experiment`'s options); the paper
# recipe fixes the rest (loss, optimizer, learning rate, classes, normalization, augmentation)
EXPERIMENT_WIDE = ("epochs", "batch_size", "amp", "device", "num_workers", "seed")


def gui_loader_workers() -> int:
    """DataLoader worker processes of a GUI training run: half the cores, 1 to 4."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class TrainingPanel(TrainingProgress):
    def __init__(self, context: ProjectContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.runner: JobRunner | None = None
        self.device_runner: JobRunner | None = None  # imports torch ahead of the first run
        self.queue: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None
        self.last_run_dir: Path | None = None
        self.paused_run_dir: Path | None = None
        self.epoch_points = 0

        self.form = TrainingForm()
        self.device_probe = DeviceProbe(self)
        self.device_probe.found.connect(self.form.set_devices)
        form_layout = self.form.layout()
        if isinstance(form_layout, QFormLayout):  # the loader's worker processes, as the job will use
            n = gui_loader_workers()
            workers = QLabel(f"{n} worker process{'es' if n != 1 else ''} read and prepare tiles")
            workers.setObjectName("loader_workers")
            form_layout.addRow("Tile loader", workers)
        self.start_button = QPushButton("Start training")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start_from_form)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self.pause)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.experiment = QComboBox()
        self.experiment.addItems(list(EXPERIMENTS))
        self.queue_button = QPushButton("Queue experiment")
        self.queue_button.clicked.connect(lambda: self.queue_experiment(self.experiment.currentText()))
        self.progress = QProgressBar()
        self.status = QLabel("Idle")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.queue_label = QLabel("")

        buttons = QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.cancel_button):
            buttons.addWidget(b)
        exp = QHBoxLayout()
        exp.addWidget(self.experiment, 1)
        exp.addWidget(self.queue_button)
        left = QVBoxLayout()
        left.addWidget(self.form)
        left.addLayout(buttons)
        left.addWidget(QLabel("<b>Paper experiments</b> (queue runs, fill the comparison table)"))
        left.addLayout(exp)
        left.addWidget(self.queue_label)
        left.addStretch(1)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setMaximumWidth(430)

        self.plots = TrainingPlots()
        self.confusion = ConfusionTable()
        self.preview = ValidationPreview()
        self.runs = QTableWidget(0, len(RUN_COLUMNS))
        self.runs.setHorizontalHeaderLabels(RUN_COLUMNS)
        self.runs.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.runs.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.runs.verticalHeader().hide()
        self.runs.verticalHeader().setDefaultSectionSize(self.runs.fontMetrics().height() + 8)
        self.runs.setMinimumHeight(self._rows_height(MIN_RUN_ROWS))
        self.runs.itemSelectionChanged.connect(self._on_runs_selected)
        compare_key = QComboBox()
        for key, heading in PAPER_COLUMNS:
            compare_key.addItem(heading, key)
        compare_key.setCurrentIndex(compare_key.findData("miou"))
        self.compare_key = compare_key
        compare_key.currentIndexChanged.connect(self._on_runs_selected)
        export_md = QPushButton("Export table (Markdown)...")
        export_md.clicked.connect(lambda: self.export_table("md"))
        export_csv = QPushButton("Export table (CSV)...")
        export_csv.clicked.connect(lambda: self.export_table("csv"))
        runs_bar = QHBoxLayout()
        runs_bar.addWidget(QLabel("Select runs to compare; curve:"))
        runs_bar.addWidget(compare_key)
        runs_bar.addStretch(1)
        runs_bar.addWidget(export_md)
        runs_bar.addWidget(export_csv)
        runs_box = QWidget()
        runs_layout = QVBoxLayout(runs_box)
        runs_layout.setContentsMargins(0, 0, 0, 0)
        runs_layout.addLayout(runs_bar)
        runs_layout.addWidget(self.runs)

        right_split = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        status_row = QHBoxLayout()
        status_row.addWidget(self.progress, 2)
        status_row.addWidget(self.status, 3)
        top_layout.addLayout(status_row)
        top_layout.addWidget(self.plots, 1)
        extras = QHBoxLayout()
        confusion_box = QVBoxLayout()
        confusion_box.addWidget(QLabel("Validation confusion (last epoch)"))
        confusion_box.addWidget(self.confusion)
        self.confusion.setMaximumWidth(420)
        extras.addLayout(confusion_box, 2)
        extras.addWidget(self.preview, 3)
        top_layout.addLayout(extras)
        right_split.addWidget(top)
        right_split.addWidget(runs_box)
        right_split.setStretchFactor(0, 3)
        right_split.setStretchFactor(1, 2)

        layout = QHBoxLayout(self)
        layout.addWidget(left_widget)
        layout.addWidget(right_split, 1)
        self._update_buttons()
        context.project_opened.connect(lambda _p: self.refresh())
        context.project_closed.connect(self.refresh)
        context.tiles_changed.connect(self.form.refresh_splits)
        self._devices_detected = False

    def _rows_height(self, rows: int) -> int:
        header = self.runs.horizontalHeader().sizeHint().height()
        scroll = self.runs.horizontalScrollBar().sizeHint().height()
        return header + rows * self.runs.verticalHeader().defaultSectionSize() + scroll + 2 * self.runs.frameWidth()

    # ---- lifecycle
    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._devices_detected:
            self._devices_detected = True
            self.detect_devices()

    def detect_devices(self) -> None:
        """List the devices in a child process (once per session), and import torch here in a
        worker meanwhile, its libraries loaded outside the GIL (:mod:`casdesk.gui.kit.torch_import`):
        the first "Start training" then finds it loaded, and the window never waits."""
        cached = DeviceProbe.cached()
        if cached is not None:
            self.form.set_devices(cached)
        elif not self.device_probe.is_running():
            self.device_probe.start()
        self.warm_torch()

    def warm_torch(self) -> None:
        """Import torch in a worker unless it is imported (or being imported) already."""
        if torch_imported() or (self.device_runner is not None and self.device_runner.is_running()):
            return

        def job(_token: CancelToken) -> Job:
            yield Progress(0, 1, "loading torch")
            import_torch_quietly()

        self.device_runner = JobRunner(job, self, name="torch-import")
        self.device_runner.start()

    def refresh(self) -> None:
        self.form.set_catalog(self.context.catalog)
        self.refresh_runs()
        self._update_buttons()

    @property
    def busy(self) -> bool:
        return self.runner is not None and self.runner.is_running()

    def _update_buttons(self) -> None:
        has_project = self.context.catalog is not None
        self.start_button.setEnabled(has_project and not self.busy)
        self.queue_button.setEnabled(has_project)
        self.cancel_button.setEnabled(self.busy or bool(self.queue))
        self.pause_button.setEnabled(self.busy or self.paused_run_dir is not None)
        self.pause_button.setText("Resume" if self.paused_run_dir is not None and not self.busy else "Pause")
        self.queue_label.setText(f"{len(self.queue)} run(s) queued" if self.queue else "")

    # ---- starting runs
    def start_from_form(self) -> None:
        split, holdout = self.form.split_choice()
        tiles = self.form.tile_choice()
        sensors = (tiles,) if tiles in ("UAV", "SAT") else self._project_sensors()
        kind = split.split(":", 1)[1] if split.startswith("new:") else None
        planned = PlannedRun(
            name=f"{self.form.config_values()['model']}",
            model=self.form.config_values()["model"],
            sensors=sensors,
            qc_accepted_only=tiles != "all",
            split_kind=kind or "random",
            holdout=tuple(holdout),
        )
        self.enqueue(planned, self.form.config_values(), existing_split=None if kind else split)

    def train_on_tiles(self, tile_ids: list[int], title: str, epochs: int | None = None) -> str | None:
        """A short run on exactly these tiles (the editor's and Browse's "Train on these tiles"):
        a random 7:3 split of them is stored, then the form's model and settings train for at
        most :data:`QUICK_EPOCHS` epochs. Returns the split's name (None when refused)."""
        catalog = self.context.catalog
        ids = sorted({int(i) for i in tile_ids})
        if catalog is None:
            return None
        if len(ids) < 2:
            show_error(self, "Cannot train on these tiles", "Pick at least two tiles: one to train on, one to validate.")
            return None
        from casdesk.core.dataset.splits import make_split

        config = self.form.config_values()
        seed = int(config.get("seed", 0))
        name = f"quick-{len(ids)}-tiles-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            make_split(catalog, "random", name=name, val_fraction=0.3, seed=seed, tile_ids=ids)
        except Exception as exc:  # noqa: BLE001 - shown to the user (too few tiles per subdataset, ...)
            show_error(self, "Cannot train on these tiles", str(exc))
            return None
        config = {**config, "epochs": epochs or min(int(config["epochs"]), QUICK_EPOCHS),
                  "qc_accepted_only": False, "name": f"quick {title}"}
        planned = PlannedRun(name=f"quick {title}", model=config["model"], sensors=self._project_sensors(),
                             qc_accepted_only=False)
        self.form.refresh_splits()
        self.enqueue(planned, config, existing_split=name)
        return name

    def _project_sensors(self) -> tuple[str, ...]:
        """The sensors the project's tiles come from (the split is named after them: a
        UAV-only project trains on "UAV" tiles, not "UAV+SAT")."""
        catalog = self.context.catalog
        found: set[str] = set()
        if catalog is not None:
            found = {s for s in catalog.tile_rows.sensors() if s in ("UAV", "SAT")}  # no sensor: counts as any
        return tuple(s for s in ("UAV", "SAT") if s in found) or ("UAV", "SAT")

    def queue_experiment(self, title: str) -> list[PlannedRun]:
        if self.context.catalog is None:
            return []
        try:
            runs = EXPERIMENTS[title](self.context.catalog)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self, "Cannot queue the experiment", str(exc))
            return []
        for planned in runs:
            self.enqueue(planned, self.experiment_config(planned))
        return runs

    def experiment_config(self, planned: PlannedRun) -> dict[str, Any]:
        """A paper experiment's run settings, as `casdesk experiment` makes them: the paper
        recipe, then the experiment-wide settings the form gives (epochs, batch size, device,
        precision, seed; encoder weights only when a local file is chosen, else the recipe's
        ImageNet weights), then the run's own (model with its paper encoder, tiles)."""
        from casdesk.ml.training.config import recipe_settings

        form = self.form.config_values()
        wide = {k: form[k] for k in EXPERIMENT_WIDE if k in form}
        if self.form.weights_file and form.get("encoder_weights") == self.form.weights_file:
            wide["encoder_weights"] = self.form.weights_file
        return {**recipe_settings("paper"), **wide, "model": planned.model, "encoder": None,
                "qc_accepted_only": planned.qc_accepted_only, "name": planned.name, **planned.overrides}

    def enqueue(self, planned: PlannedRun, config: dict[str, Any], existing_split: str | None = None,
                resume: Path | None = None) -> None:
        self.queue.append({"planned": planned, "config": config, "split": existing_split, "resume": resume})
        self._update_buttons()
        if not self.busy:
            self._start_next()

    def _start_next(self) -> None:
        if not self.queue or self.context.catalog is None:
            self._update_buttons()
            return
        item = self.queue.pop(0)
        self.current = item
        path = self.context.catalog.path

        def factory(token: CancelToken) -> Job:
            def job() -> Job:
                import_ml_quietly()  # torch at once if the Train tab's warm-up did it; the model packages
                from casdesk.ml.training.config import TrainConfig
                from casdesk.ml.training.trainer import train

                yield Progress(0, 0, "preparing the split")
                config = dict(item["config"])
                # loader worker processes also from this QThread: the engine starts them
                # with forkserver/spawn (casdesk.ml.training.data.worker_context), never fork
                config["num_workers"] = config.get("num_workers") or gui_loader_workers()
                if item["resume"] is None:
                    with Catalog.open(path) as cat:
                        config["split"] = item["split"] or prepare_split(cat, item["planned"], seed=config["seed"])
                    return (yield from train(path, TrainConfig(**config), cancel=token))
                return (yield from train(path, TrainConfig(**config), cancel=token, resume=item["resume"]))

            return job()

        runner = JobRunner(factory, self, name="training")
        runner.progress.connect(self._on_progress)
        runner.finished.connect(self._on_finished)
        runner.failed.connect(self._on_failed)
        runner.cancelled.connect(lambda: self.status.setText("Cancelled"))
        runner.done.connect(self._on_done)
        self.runner = runner
        self.plots.clear()
        self.confusion.clear_counts()
        self.preview.reset()
        self.epoch_points = 0
        self.t_start = time.monotonic()
        self.status.setText(f"Starting {item['planned'].name}...")
        self.progress.setRange(0, 0)
        runner.start(after=self.device_runner)  # its thread is made once torch's warm-up import ends
        self._update_buttons()

    # ---- control
    def cancel(self) -> None:
        self.queue.clear()
        self.paused_run_dir = None
        if self.runner is not None:
            self.runner.cancel()
            self.status.setText("Cancelling (within one batch)...")
        self._update_buttons()

    def pause(self) -> None:
        if self.busy and self.current is not None and self.runner is not None:  # busy: runner is set
            self.paused_run_dir = self.last_run_dir
            self.paused_item = self.current
            self.runner.cancel()
            self.status.setText("Pausing: the checkpoint is kept")
        elif self.paused_run_dir is not None:
            item, run_dir = self.paused_item, self.paused_run_dir
            self.paused_run_dir = None
            self.enqueue(item["planned"], item["config"], item["split"], resume=run_dir)
        self._update_buttons()

    def can_close(self) -> bool:
        if not self.busy:
            return True
        answer = QMessageBox.question(
            self, "Training is running",
            "A training run is in progress. Cancel it (its last checkpoint is kept) and quit?",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.cancel()
            return True
        return False

    def shutdown(self) -> None:
        self.queue.clear()
        self.preview.shutdown()
        self.device_probe.shutdown()
        for runner in (self.runner, self.device_runner):
            if runner is not None:
                runner.shutdown(120_000)

    # ---- runs table
    def refresh_runs(self) -> None:
        catalog = self.context.catalog
        self.runs.setRowCount(0)
        if catalog is None:
            return
        runs = list_runs(catalog)
        self.runs.setRowCount(len(runs))
        for r, run in enumerate(runs):
            values = [str(run.id), run.name, run.model, effective_encoder(run.model, run.encoder), run.split or "",
                      run.status, run.device or "", "" if run.duration_s is None else f"{run.duration_s / 60:.1f}"]
            values += ["" if run.best.get(k) is None else f"{100 * run.best[k]:.2f}" for k, _ in PAPER_COLUMNS]
            for c, v in enumerate(values):
                item = QTableWidgetItem(v)
                if c >= FIRST_METRIC_COLUMN or c == 0:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.runs.setItem(r, c, item)

    def selected_run_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.runs.selectedIndexes()})
        return [int(it.text()) for r in rows if (it := self.runs.item(r, 0)) is not None]

    def _on_runs_selected(self) -> None:
        if self.busy or self.context.catalog is None:
            return
        ids = self.selected_run_ids()
        if not ids:
            return
        runs = {r.id: r for r in list_runs(self.context.catalog)}
        if len(ids) == 1:
            history = run_epochs(self.context.catalog, ids[0])
            self.plots.show_history(history)
            self.confusion.set_counts((history[-1].get("val") or {}).get("confusion") if history else None)
        else:
            self.plots.overlay([(runs[i].name, run_epochs(self.context.catalog, i)) for i in ids if i in runs],
                               key=self.compare_key.currentData())

    def export_table(self, fmt: str, path: str | None = None) -> str | None:
        if self.context.catalog is None:
            return None
        runs = list_runs(self.context.catalog)
        ids = set(self.selected_run_ids())
        if ids:
            runs = [r for r in runs if r.id in ids]
        text = comparison_markdown(runs) if fmt == "md" else comparison_csv(runs)
        if path is None:
            suffix = "Markdown (*.md)" if fmt == "md" else "CSV (*.csv)"
            path, _ = QFileDialog.getSaveFileName(self, "Export runs table", f"runs.{fmt}", suffix)
            if not path:
                QApplication.clipboard().setText(text)
                return None
        tmp = Path(path).with_name(Path(path).name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        return path

