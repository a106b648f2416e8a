"""Predict tab: a model file + a scene (or a folder of scenes) -> probability, mask and
polygons, shown over the scene; or predictions on the project's tiles for the browser.

The panel only collects options and shows results: reading the model file (torch), the
memory estimate, the run, the decimated overlay read and the label import are jobs of
:mod:`casdesk.gui.predict.jobs`, each driven by a :class:`JobRunner` so the GUI thread
never waits on a file or on torch. The results (outputs, overlay, polygons to the editor)
are :mod:`casdesk.gui.predict.results`, a base of the panel.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from casdesk.core.jobs import CancelToken, Job
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.kit.workers import JobRunner
from casdesk.gui.predict import jobs
from casdesk.gui.predict.models import ModelChooser
from casdesk.gui.predict.results import PredictResults
from casdesk.gui.predict.view import PredictionView
from casdesk.gui.shell.context import ProjectContext

log = logging.getLogger(__name__)

__all__ = ["DEVICES", "RASTER_FILTER", "VECTOR_CHOICES", "PredictPanel", "PredictResults"]
VECTOR_CHOICES = (("GeoPackage (.gpkg)", "gpkg"), ("Shapefile (.shp)", "shp"),
                  ("GeoJSON (.geojson, WGS-84)", "geojson"), ("No polygons", "none"))
DEVICES = ("auto", "cpu", "cuda", "mps")
RASTER_FILTER = "Rasters (*.tif *.tiff *.vrt *.jp2 *.img);;All files (*)"


def _path_row(edit: QLineEdit, *buttons: QPushButton) -> QHBoxLayout:
    row = QHBoxLayout()
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit, 1)
    for b in buttons:
        row.addWidget(b)
    return row


class PredictPanel(PredictResults):
    def __init__(self, context: ProjectContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.runners: dict[str, JobRunner] = {}
        self._pending: dict[str, tuple[Callable[[CancelToken], Job], Callable[[Any], None],
                                       Callable[[str, str], object]]] = {}
        self.model_info: jobs.ModelInfo | None = None
        self.results: list[Any] = []
        self.last_error: str = ""
        self._closed = False  # after shutdown(): no new jobs (focus-out edits, timers)
        self._memory_timer = QTimer(self, singleShot=True, interval=300)
        self._memory_timer.timeout.connect(self.estimate_memory)

        self._build()
        self._update_buttons()
        context.project_opened.connect(lambda _p: self.refresh_splits())
        context.project_opened.connect(lambda _p: self._refresh_models_if_shown())
        context.project_closed.connect(self.refresh_models)
        context.project_closed.connect(self.refresh_splits)
        context.tiles_changed.connect(self.refresh_splits)

    # ---- building
    def _build(self) -> None:
        self.model_chooser = ModelChooser()
        self.model_chooser.setToolTip("The project's trained runs by name, or \"Model file...\" for a model.pt "
                                      "from elsewhere")
        self.model_chooser.model_chosen.connect(self._model_chosen)
        self.model_text = QLabel("No model chosen")
        self.model_text.setWordWrap(True)
        self.model_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.source_edit = QLineEdit(placeholderText="a scene file or a folder of scenes")
        self.source_edit.editingFinished.connect(lambda: self.set_source(self.source_edit.text()))
        self.source_edit.textEdited.connect(lambda _t: self._update_buttons())
        scene_browse = QPushButton("File...")
        scene_browse.clicked.connect(self._browse_scene)
        folder_browse = QPushButton("Folder...")
        folder_browse.clicked.connect(self._browse_folder)
        self.out_edit = QLineEdit(placeholderText="default: 'predictions' beside the scenes")
        out_browse = QPushButton("Browse...")
        out_browse.clicked.connect(self._browse_out)

        self.overlap = QSpinBox(minimum=0, maximum=1024, value=128, singleStep=16, suffix=" px")
        self.threshold = QDoubleSpinBox(minimum=0.01, maximum=0.99, value=0.5, singleStep=0.05, decimals=2)
        self.tta = QCheckBox("Test-time augmentation (flips, rotation; ~4x slower)")
        self.aoi_edit = QLineEdit(placeholderText="optional polygon file: predict inside it only")
        aoi_browse = QPushButton("...")
        aoi_browse.clicked.connect(self._browse_aoi)
        self.vector = QComboBox()
        for text, key in VECTOR_CHOICES:
            self.vector.addItem(text, key)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.batch_size = QSpinBox(minimum=1, maximum=256, value=4)
        self.min_area = QDoubleSpinBox(minimum=0.0, maximum=1e7, value=10.0, decimals=1, suffix=" m²")
        self.min_area.setToolTip("Polygons smaller than this are dropped (speckle); 0 keeps all. "
                                 "Ignored when the scene has no metric CRS.")
        for w in (self.overlap, self.batch_size):
            w.valueChanged.connect(self._request_memory)
        self.tta.toggled.connect(self._request_memory)
        self.memory_text = QLabel("")
        self.memory_text.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Model", self.model_chooser)
        form.addRow(self.model_text)
        form.addRow("Scene(s)", _path_row(self.source_edit, scene_browse, folder_browse))
        form.addRow("Output folder", _path_row(self.out_edit, out_browse))
        form.addRow("Overlap", self.overlap)
        form.addRow("Threshold", self.threshold)
        form.addRow("", self.tta)
        form.addRow("AOI", _path_row(self.aoi_edit, aoi_browse))
        form.addRow("Polygons", self.vector)
        form.addRow("Device", self.device)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Min polygon area", self.min_area)
        form.addRow(self.memory_text)

        self.run_button = QPushButton("Predict scene(s)")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)

        self.split = QComboBox()
        self.part = QComboBox()
        self.part.addItem("validation part", "val")
        self.part.addItem("whole split", None)
        self.tiles_button = QPushButton("Predict project tiles")
        self.tiles_button.clicked.connect(self.run_tiles)
        tiles_box = QGroupBox("Project tiles (shown in Browse: prediction vs label)")
        tiles_form = QFormLayout(tiles_box)
        tiles_form.addRow("Split", self.split)
        tiles_form.addRow("Tiles", self.part)
        tiles_form.addRow(self.tiles_button)

        self.progress = QProgressBar()
        self.status = QLabel("Idle")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        left = QVBoxLayout()
        left.addLayout(form)
        left.addLayout(buttons)
        left.addWidget(tiles_box)
        left.addWidget(self.progress)
        left.addWidget(self.status)
        left.addStretch(1)
        left_widget = QWidget()
        left_widget.setLayout(left)
        scroll = QScrollArea()
        scroll.setWidget(left_widget)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(400)
        scroll.setMaximumWidth(470)

        self.view = PredictionView()
        self.result_choice = QComboBox()
        self.result_choice.currentIndexChanged.connect(self._on_result_chosen)
        self.outputs = QListWidget()
        self.outputs.setMaximumHeight(120)
        self.outputs.itemSelectionChanged.connect(self._update_buttons)
        self.outputs.itemDoubleClicked.connect(lambda _it: self.open_in_file_manager())
        self.open_folder_button = QPushButton("Open in file manager")
        self.open_folder_button.setToolTip("Open the folder of the selected output (or of the outputs)")
        self.open_folder_button.clicked.connect(self.open_in_file_manager)
        self.copy_path_button = QPushButton("Copy path")
        self.copy_path_button.setToolTip("Copy the selected output's path to the clipboard")
        self.copy_path_button.clicked.connect(self.copy_output_path)
        self.to_editor_button = QPushButton("Polygons to editor")
        self.to_editor_button.setToolTip("Store the predicted polygons as this scene's labels (source "
                                         "'predicted') and open the scene in the Label tab")
        self.to_editor_button.clicked.connect(self.polygons_to_editor)
        result_bar = QHBoxLayout()
        result_bar.addWidget(QLabel("Result"))
        result_bar.addWidget(self.result_choice, 1)
        result_bar.addWidget(self.to_editor_button)
        outputs_bar = QHBoxLayout()
        outputs_bar.addWidget(QLabel("Outputs"))
        outputs_bar.addStretch(1)
        outputs_bar.addWidget(self.open_folder_button)
        outputs_bar.addWidget(self.copy_path_button)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.view, 1)
        right_layout.addLayout(result_bar)
        right_layout.addLayout(outputs_bar)
        right_layout.addWidget(self.outputs)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        layout = QHBoxLayout(self)
        layout.addWidget(split)

    # ---- runners
    def _start(self, name: str, factory: Callable[[CancelToken], Job], on_finished: Callable[[Any], None],
               on_failed: Callable[[str, str], object], on_progress: Callable[[Any], None] | None = None) -> None:
        """Start a named job; if one of that name still runs, run the newest request after it
        (model-file reads and estimates cannot be interrupted, and are short)."""
        if self._closed:
            return
        current = self.runners.get(name)
        if current is not None and current.is_running():
            self._pending[name] = (factory, on_finished, on_failed)
            return
        runner = JobRunner(factory, self, name=f"predict-{name}")
        runner.finished.connect(on_finished)
        runner.failed.connect(on_failed)
        if on_progress is not None:
            runner.progress.connect(on_progress)
        runner.done.connect(lambda: self._on_runner_done(name, runner))
        self.runners[name] = runner
        runner.start()
        self._update_buttons()

    def _on_runner_done(self, name: str, runner: JobRunner) -> None:
        if self.runners.get(name) is runner:
            del self.runners[name]
        runner.deleteLater()
        pending = self._pending.pop(name, None)
        if pending is not None:
            self._start(name, *pending)
        self._update_buttons()

    def is_running(self, name: str) -> bool:
        runner = self.runners.get(name)
        return runner is not None and runner.is_running()

    @property
    def busy(self) -> bool:
        """A prediction (scenes or tiles) runs: one at a time, it may hold the GPU."""
        return self.is_running("run")

    def _update_buttons(self) -> None:
        ready = self.model_info is not None and not self.busy
        self.run_button.setEnabled(ready and bool(self.source_edit.text().strip()))
        self.tiles_button.setEnabled(ready and self.context.catalog is not None)
        self.cancel_button.setEnabled(self.busy)
        has_result = self.current_result() is not None
        self.open_folder_button.setEnabled(has_result)
        self.copy_path_button.setEnabled(self.selected_output() is not None)
        self.to_editor_button.setEnabled(has_result and not self.is_running("import"))
        self.part.setEnabled(self.split.currentData() is not None)

    def shutdown(self) -> None:
        self._closed = True
        self._memory_timer.stop()
        self._pending.clear()
        for runner in list(self.runners.values()):
            runner.shutdown(120_000)

    def can_close(self) -> bool:
        if self.busy:
            self.cancel()
        return True

    # ---- inputs
    def _browse_scene(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Scene", self.source_edit.text(), RASTER_FILTER)
        if path:
            self.set_source(path)

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of scenes", self.source_edit.text())
        if path:
            self.set_source(path)

    def _browse_out(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Output folder", self.out_edit.text())
        if path:
            self.out_edit.setText(path)

    def _browse_aoi(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Area of interest", self.aoi_edit.text(),
                                              "Vector files (*.gpkg *.shp *.geojson *.json);;All files (*)")
        self.aoi_edit.setText(path)

    def set_model(self, path: str | Path) -> None:
        """Choose a model file (a project run's or any other); its meta is read in a worker and
        Run is enabled once it is usable."""
        self.model_chooser.set_path(Path(str(path).strip()))

    def _model_chosen(self, path: Path | None) -> None:
        self.model_info = None
        self._model_request = path
        self._update_buttons()
        if path is None:
            self.model_text.setText("No model chosen: train one in the Train tab, or pick \"Model file...\"")
            return
        self.model_text.setText("Reading the model file...")
        self._start("info", lambda _t: jobs.model_info_job(path), self._on_model_info, self._on_model_failed)

    def refresh_models(self) -> None:
        """The project's runs (newest first); the current choice is kept when it still exists."""
        self.model_chooser.refresh(self.context.catalog)

    def _refresh_models_if_shown(self) -> None:
        """A project opened: list its runs now if the tab is on screen; else :meth:`showEvent`
        lists them (checking each run's model file) when it is next shown."""
        if self.isVisible():
            self.refresh_models()

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.refresh_models()  # a run may have finished in the Train tab meanwhile

    def _on_model_info(self, info: jobs.ModelInfo) -> None:
        if getattr(self, "_model_request", None) != info.path:
            return  # an older request
        self.model_info = info
        title = self.model_chooser.currentText()  # the run's name rather than "model.pt"
        self.model_text.setText(info.describe().replace(f"<b>{info.path.name}</b>",
                                                        f"<b>{html.escape(title)}</b>", 1))
        self.model_text.setToolTip(str(info.path))
        self.threshold.setValue(float(info.meta.get("threshold", 0.5)))
        tile = info.meta.get("tile_size") or [512]
        self.overlap.setValue(min(self.overlap.value(), int(min(tile)) // 2))
        self._update_buttons()
        self._request_memory()

    def _on_model_failed(self, message: str, _details: str) -> None:
        """The message is the user-facing one (a ModelError names the file and the fix);
        the traceback went to the log, not into the dialog."""
        self.model_info = None
        self.model_text.setText("Not a usable model file")
        self.last_error = message
        self._update_buttons()
        show_error(self, "Cannot use this model file", message)

    def set_source(self, path: str | Path) -> None:
        self.source_edit.setText(str(path).strip())
        self._update_buttons()
        self._request_memory()

    def options(self) -> dict[str, Any]:
        """predict_scene's keyword options from the form."""
        aoi = self.aoi_edit.text().strip()
        return {
            "overlap": self.overlap.value(),
            "threshold": self.threshold.value(),
            "tta": self.tta.isChecked(),
            "aoi": Path(aoi) if aoi else None,
            "vector": self.vector.currentData(),
            "device": self.device.currentText(),
            "batch_size": self.batch_size.value(),
            "min_area_m2": self.min_area.value(),
        }

    def output_folder(self) -> Path:
        text = self.out_edit.text().strip()
        if text:
            return Path(text)
        source = Path(self.source_edit.text().strip())
        return (source if source.is_dir() else source.parent) / "predictions"

    # ---- memory estimate
    def _request_memory(self) -> None:
        self._memory_timer.start()

    def estimate_memory(self) -> None:
        source = self.source_edit.text().strip()
        if self.model_info is None or not source:
            self.memory_text.setText("")
            return
        model, src, opts = self.model_info.path, Path(source), self.options()
        self.memory_text.setText("Estimating memory...")
        self._start("memory", lambda _t: jobs.memory_job(model, src, opts), self._on_memory,
                    lambda m, _d: self.memory_text.setText(f"No estimate: {m}"))

    def _on_memory(self, estimate: Any) -> None:
        self.memory_text.setText(f"Peak memory: {estimate.describe()}")

    # ---- running
    def run(self) -> None:
        if self.model_info is None or self.busy:
            return
        model, source, out = self.model_info.path, Path(self.source_edit.text().strip()), self.output_folder()
        opts = self.options()
        self.results = []
        self._show_results()
        self.view.clear()
        self.progress.setRange(0, 0)
        self.status.setText(f"Predicting {source.name}...")
        self._start("run", lambda token: jobs.predict_job(model, source, out, opts, token),
                    self._on_predicted, self._on_run_failed, self._on_progress)
        self.runners["run"].cancelled.connect(lambda: self.status.setText("Cancelled: no outputs were kept"))

    def run_tiles(self) -> None:
        if self.model_info is None or self.busy or self.context.catalog is None:
            return
        model, project, opts = self.model_info.path, self.context.catalog.path, self.options()
        split = self.split.currentData()
        part = self.part.currentData() if split is not None else None
        self.progress.setRange(0, 0)
        self.status.setText("Predicting the project's tiles...")
        self._start("run", lambda token: jobs.predict_tiles_job(model, project, split, part, opts, token),
                    self._on_tiles_predicted, self._on_run_failed, self._on_progress)
        self.runners["run"].cancelled.connect(self._on_tiles_cancelled)

    def cancel(self) -> None:
        runner = self.runners.get("run")
        if runner is not None:
            runner.cancel()
            self.status.setText("Cancelling...")

    def _on_progress(self, event: Any) -> None:
        if event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
        if event.message:
            self.status.setText(event.message)

    def _on_run_failed(self, message: str, details: str) -> None:
        self.progress.setRange(0, 1)
        self.status.setText(f"Failed: {message}")
        self.last_error = message
        show_error(self, "Prediction failed", message, details)

    def _on_predicted(self, results: list[Any]) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.results = list(results)
        polys = sum(r.polygons for r in self.results)
        secs = sum(r.seconds for r in self.results)
        warnings = [w for r in self.results for w in r.warnings]
        text = f"Done: {len(self.results)} scene(s), {polys} polygon(s) in {secs:.1f} s on {self.results[0].device}"
        self.status.setText(text + ("<br>" + "<br>".join(warnings) if warnings else ""))
        self.context.status_message.emit(text)
        self._show_results()

    def _on_tiles_predicted(self, summary: Any) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        iou = "" if summary.mean_iou is None else f", mean IoU {100 * summary.mean_iou:.1f} %"
        text = f"Predicted {summary.tiles} tile(s) with {summary.model}{iou} ({summary.seconds:.1f} s)"
        self.status.setText(text)
        self.context.status_message.emit(text)
        self.context.tiles_changed.emit()

    def _on_tiles_cancelled(self) -> None:
        self.status.setText("Cancelled: the tiles predicted so far are kept")
        self.context.tiles_changed.emit()

    # ---- project
    def refresh_splits(self) -> None:
        current = self.split.currentData()
        self.split.clear()
        self.split.addItem("(all tiles)", None)
        catalog = self.context.catalog
        if catalog is not None:
            for name in catalog.splits.names():  # no tile counts: cheap at 20k tiles
                self.split.addItem(name, name)
        index = self.split.findData(current)
        self.split.setCurrentIndex(max(index, 0))
        self._update_buttons()
