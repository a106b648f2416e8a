"""Project panel: what the project holds, and the import / crop steps.

Imports and crops run in a :class:`JobRunner` (their own catalog connection in the worker
thread); the panel shows progress, can cancel, and refreshes when the job ends.
Subdataset metadata (sensor, resolution, region, trigger) is editable in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from casdesk.core.errors import CasdeskError
from casdesk.core.jobs import CancelToken, Job
from casdesk.core.project.catalog import Catalog
from casdesk.gui.browser.loader import LatestCall
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.kit.workers import JobRunner
from casdesk.gui.shell.context import ProjectContext


def load_summary_for(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The project summary and subdataset records (worker thread, its own connection)."""
    with Catalog.open(path, readonly=True) as catalog:
        return catalog.summary(), {s["name"]: s for s in catalog.subdatasets()}


SUB_COLUMNS = ["Subdataset", "Sensor", "Resolution (m)", "Region", "Trigger", "Tiles", "Labelled %"]
EDITABLE = {1: "sensor", 2: "resolution_m", 3: "region", 4: "trigger"}


class CropDialog(QDialog):
    """Tile size, stride and edge policy, with the paper's values one click away."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Crop scenes into tiles")
        self.tile_size = QSpinBox(minimum=16, maximum=4096, value=512, singleStep=64)
        self.stride = QSpinBox(minimum=1, maximum=4096, value=512, singleStep=64)
        self.edge = QComboBox()
        self.edge.addItems(["shift", "pad", "drop"])
        self.edge.setToolTip("shift: last tile moved back to the edge (CAS); pad: nodata fill; drop: skip")
        paper = QPushButton("Paper settings (512, stride 256)")
        paper.clicked.connect(self._paper_settings)
        form = QFormLayout(self)
        form.addRow("Tile size (px)", self.tile_size)
        form.addRow("Stride (px)", self.stride)
        form.addRow("Edge policy", self.edge)
        form.addRow(paper)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _paper_settings(self) -> None:
        self.tile_size.setValue(512)
        self.stride.setValue(256)


class AddSceneDialog(QDialog):
    def __init__(self, scene: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Add scene {scene.name}")
        self.labels = QLineEdit()
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.labels)
        row.addWidget(browse)
        self.subdataset = QLineEdit(scene.stem)
        self.sensor = QComboBox()
        self.sensor.addItems(["", "SAT", "UAV"])
        self.label_names = QLineEdit()
        self.label_names.setPlaceholderText("all labels (or comma-separated names)")
        form = QFormLayout(self)
        form.addRow("Labels (vector / raster / LabelMe)", row)
        form.addRow("Landslide label names", self.label_names)
        form.addRow("Subdataset", self.subdataset)
        form.addRow("Sensor", self.sensor)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Labels", "", "Labels (*.shp *.gpkg *.geojson *.json *.tif *.tiff *.png)"
        )
        if path:
            self.labels.setText(path)

    def options(self) -> dict[str, Any]:
        names = [n.strip() for n in self.label_names.text().split(",") if n.strip()]
        return {
            "labels": self.labels.text() or None,
            "label_names": names or None,
            "subdataset": self.subdataset.text() or None,
            "sensor": self.sensor.currentText() or None,
        }


class ProjectPanel(QWidget):
    def __init__(self, context: ProjectContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.runner: JobRunner | None = None
        self._filling = False

        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.add_scene_button = QPushButton("Add scene...")
        self.import_button = QPushButton("Import dataset...")
        self.crop_button = QPushButton("Crop into tiles...")
        self.add_scene_button.clicked.connect(self.add_scene_dialog)
        self.import_button.clicked.connect(self.import_dialog)
        self.crop_button.clicked.connect(self.crop_dialog)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel)
        actions = QHBoxLayout()
        for w in (self.add_scene_button, self.import_button, self.crop_button):
            actions.addWidget(w)
        actions.addStretch(1)
        actions.addWidget(self.progress, 2)
        actions.addWidget(self.cancel_button)

        self.subdatasets = QTableWidget(0, len(SUB_COLUMNS))
        self.subdatasets.setHorizontalHeaderLabels(SUB_COLUMNS)
        self.subdatasets.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.subdatasets.itemChanged.connect(self._on_sub_edited)
        self.scenes = QTableWidget(0, 7)
        self.scenes.setHorizontalHeaderLabels(["Id", "Scene", "Size", "Bands", "CRS", "Labels", "Tiles"])
        self.scenes.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.scenes.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.scenes.verticalHeader().hide()
        self.subdatasets.verticalHeader().hide()

        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addLayout(actions)
        self.crop_notes: list[str] = []
        self.notes = QLabel()  # what the last crop replaced or dropped, until the next job
        self.notes.setWordWrap(True)
        self.notes.hide()
        layout.addWidget(self.notes)
        layout.addWidget(QLabel("<b>Subdatasets</b> (double-click sensor, resolution, region or trigger to edit)"))
        layout.addWidget(self.subdatasets, 2)
        layout.addWidget(QLabel("<b>Scenes</b>"))
        layout.addWidget(self.scenes, 1)
        self._summary_call = LatestCall(self)
        self._summary_call.finished.connect(lambda result: self._show(*result))
        self._summary_call.failed.connect(self._on_summary_failed)
        context.project_opened.connect(lambda _p: self._on_opened())
        context.project_closed.connect(self.refresh)
        context.tiles_changed.connect(self._refresh_when_shown)
        events = context.events
        for signal in (events.tiles_added, events.tiles_removed, events.masks_changed):
            signal.connect(lambda _c: self._refresh_when_shown())
        self._stale = False
        self.refresh()

    def _refresh_when_shown(self) -> None:
        """Tiles or masks changed: refresh now if the tab is shown, else when it is next shown
        (the summary reads the whole tile table: ~40 ms at 20k tiles)."""
        if self.isVisible():
            self.refresh()
        else:
            self._stale = True

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._stale:
            self._stale = False
            self.refresh_in_background()

    def _on_opened(self) -> None:
        """A project opened: its summary is read in a worker (~40 ms at 20k tiles), now if the
        tab is shown, else when it is next shown."""
        self._summary_call.cancel()
        self._enable_actions()
        self.heading.setText("Loading the project summary\u2026")
        self.subdatasets.setRowCount(0)
        self.scenes.setRowCount(0)
        if self.isVisible():
            self.refresh_in_background()
        else:
            self._stale = True

    def refresh_in_background(self) -> None:
        """As :meth:`refresh`, reading the project in a worker (its own connection)."""
        catalog = self.context.catalog
        if catalog is None:
            self.refresh()
            return
        path = catalog.path
        self._summary_call.submit(lambda: load_summary_for(path))

    def is_loading(self) -> bool:
        return self._summary_call.is_busy()

    def _on_summary_failed(self, message: str) -> None:
        self.heading.setText(f"The project could not be read: {message}")

    def _enable_actions(self) -> None:
        for b in (self.add_scene_button, self.import_button, self.crop_button):
            b.setEnabled(self.context.catalog is not None and not self.busy)

    # ---- view
    def refresh(self) -> None:
        """Show what the project holds (read on the GUI thread: after jobs and edits)."""
        self._summary_call.cancel()  # an older read in a worker must not overwrite this one
        catalog = self.context.catalog
        self._enable_actions()
        if catalog is None:
            self.heading.setText("No project open: File > New project (Ctrl+N) or File > Open project (Ctrl+O).")
            self.subdatasets.setRowCount(0)
            self.scenes.setRowCount(0)
            return
        self._show(catalog.summary(), {s["name"]: s for s in catalog.subdatasets()})

    def _show(self, summary: dict[str, Any], meta: dict[str, dict[str, Any]]) -> None:
        if self.context.catalog is None:
            return
        self.heading.setText(
            f"<b>{Path(summary['project']).stem}</b>: {len(summary['scenes'])} scene(s), "
            f"{summary['tiles']} tiles, {100 * summary['labelled_fraction']:.2f} % of valid pixels "
            "labelled landslide"
        )
        self._filling = True
        subs = summary["subdatasets"]
        self.subdatasets.setRowCount(len(subs))
        for r, s in enumerate(subs):
            m = meta.get(s["name"], {})
            values = [
                s["name"],
                s["sensor"] or "",
                "" if s["resolution_m"] is None else f"{s['resolution_m']:g}",
                m.get("region") or "",
                m.get("trigger") or "",
                str(s["tiles"]),
                f"{100 * s['labelled_fraction']:.2f}",
            ]
            for c, v in enumerate(values):
                item = QTableWidgetItem(v)
                if c not in EDITABLE:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.subdatasets.setItem(r, c, item)
        self._filling = False
        scenes = summary["scenes"]
        self.scenes.setRowCount(len(scenes))
        for r, s in enumerate(scenes):
            values = [str(s["id"]), s["name"], f"{s['size'][0]} x {s['size'][1]}",
                      f"{s['bands']} x {s['dtype']}", s["crs"] or "none", str(s["labels"]), str(s["tiles"])]
            for c, v in enumerate(values):
                self.scenes.setItem(r, c, QTableWidgetItem(v))

    def _on_sub_edited(self, item: QTableWidgetItem) -> None:
        if self._filling or self.context.catalog is None or item.column() not in EDITABLE:
            return
        first = self.subdatasets.item(item.row(), 0)
        if first is None:
            return
        name = first.text()
        field = EDITABLE[item.column()]
        text = item.text().strip()
        try:
            if field == "sensor":
                text = text.upper()
                if text not in ("", "SAT", "UAV"):
                    raise CasdeskError("sensor must be SAT or UAV")
            value: Any = (float(text) if text else None) if field == "resolution_m" else (text or None)
            self.context.catalog.update_subdataset(name, **{field: value})
        except (CasdeskError, ValueError) as exc:
            show_error(self, "Cannot change the subdataset", str(exc))
        self.refresh()

    # ---- jobs
    @property
    def busy(self) -> bool:
        return self.runner is not None and self.runner.is_running()

    def start_job(self, title: str, work: Any) -> JobRunner | None:
        """Run ``work(catalog, token) -> Job`` in a worker with its own catalog connection."""
        if self.context.catalog is None or self.busy:
            return None
        path = self.context.catalog.path

        def factory(token: CancelToken) -> Job:
            def job() -> Job:
                with Catalog.open(path) as cat:
                    return (yield from work(cat, token))

            return job()

        runner = JobRunner(factory, self, name=title)
        runner.progress.connect(self._on_progress)
        runner.finished.connect(lambda result: self.context.status_message.emit(f"{title}: done"))
        runner.failed.connect(lambda msg, details: show_error(self, f"{title} failed", msg, details))
        runner.cancelled.connect(lambda: self.context.status_message.emit(f"{title}: cancelled"))
        runner.done.connect(self._on_done)
        self.runner = runner
        self.progress.setFormat(f"{title}: %p%")
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        runner.start()
        self.refresh()
        return runner

    def _on_progress(self, event: Any) -> None:
        if event.total:
            self.progress.setMaximum(event.total)
            self.progress.setValue(event.done)

    def _on_done(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()
        self.runner = None
        self.notes.setText("\n".join(self.crop_notes))
        self.notes.setVisible(bool(self.crop_notes))
        self.crop_notes = []
        self.context.tiles_changed.emit()

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()

    def shutdown(self) -> None:
        self._summary_call.shutdown()
        if self.runner is not None:
            self.runner.shutdown()

    # ---- actions
    def add_scene(self, scene: str | Path, **options: Any) -> JobRunner | None:
        from casdesk.core.dataset.scenes import add_scene, same_file_scenes

        if self.context.catalog is not None and not options.get("allow_duplicate"):
            same = same_file_scenes(self.context.catalog, Path(scene).absolute())
            if same:
                answer = QMessageBox.question(
                    self, "Scene already in the project",
                    f"{Path(scene).name} is already scene {same[0].id} ({same[0].name}) of this "
                    "project.\n\nAdd it again as a separate scene (its tiles get their own names)?",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                    QMessageBox.StandardButton.No)
                if answer != QMessageBox.StandardButton.Yes:
                    return None
                options["allow_duplicate"] = True

        def work(cat: Catalog, token: CancelToken) -> Job:
            from casdesk.core.jobs import Progress

            yield Progress(0, 1, "reading the scene")
            added = add_scene(cat, scene, **options)
            for message in added.messages:
                self.context.status_message.emit(message)
            yield Progress(1, 1, "done")
            return added.scene_id

        return self.start_job("Add scene", work)

    def import_dataset(self, folder: str | Path, fmt: str = "auto") -> JobRunner | None:
        from casdesk.core.dataset.importers import IMPORTERS, detect_format

        try:
            fmt = detect_format(folder) if fmt == "auto" else fmt
        except CasdeskError as exc:
            show_error(self, "Cannot import", str(exc))
            return None
        return self.start_job("Import", lambda cat, token: IMPORTERS[fmt](cat, folder, cancel=token))

    def crop(self, size: int = 512, stride: int = 512, edge: str = "shift") -> JobRunner | None:
        from casdesk.core.dataset.tiling import CropParams, crop_scene

        params = CropParams(size, stride, edge)

        def work(cat: Catalog, token: CancelToken) -> Job:
            ids: list[int] = []
            notes: list[str] = []
            for scene in cat.scenes():
                result = yield from crop_scene(cat, scene.id, params, cancel=token)
                ids += result
                notes += [f"{scene.name}: {w}" for w in getattr(result, "warnings", [])]
            for note in notes:  # e.g. decisions dropped by a re-crop at another size
                self.context.status_message.emit(note)
            self.crop_notes = notes
            return ids

        return self.start_job("Crop", work)

    def import_path(self, path: Path) -> None:
        """Drag and drop: a GeoTIFF becomes a scene, a folder a dataset."""
        if path.is_dir():
            self.import_dataset(path)
        elif path.suffix.lower() in (".tif", ".tiff", ".vrt", ".jp2"):
            self.add_scene(path)

    def _settings(self) -> QSettings:
        return QSettings("casdesk", "casdesk")

    def add_scene_dialog(self) -> None:
        start = str(self._settings().value("paths/last_scene_dir", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, "Add scene", start, "Rasters (*.tif *.tiff *.vrt *.jp2)")
        if not path:
            return
        self._settings().setValue("paths/last_scene_dir", str(Path(path).parent))
        dialog = AddSceneDialog(Path(path), self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.add_scene(path, **dialog.options())

    def import_dialog(self) -> None:
        start = str(self._settings().value("paths/last_dataset_dir", str(Path.home())))
        folder = QFileDialog.getExistingDirectory(self, "Import dataset folder", start)
        if folder:
            self._settings().setValue("paths/last_dataset_dir", folder)
            self.import_dataset(folder)

    def crop_dialog(self) -> None:
        dialog = CropDialog(self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.crop(dialog.tile_size.value(), dialog.stride.value(), dialog.edge.currentText())
