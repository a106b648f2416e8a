"""The Predict tab's results: the list of predicted scenes, their output files (open the
folder, copy a path), the overlay shown for the chosen one, and sending its polygons to
the Label tab.

A part of :class:`~casdesk.gui.predict.panel.PredictPanel` (a QWidget base without state of
its own: the panel's ``__init__`` and ``_build`` set the attributes declared here).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QTabWidget,
    QWidget,
)

from casdesk.core.jobs import CancelToken, Job
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.predict import jobs
from casdesk.gui.predict.view import PredictionView
from casdesk.gui.shell.context import ProjectContext


class PredictResults(QWidget):
    """Results list, output files, overlay, polygons to the editor (part of PredictPanel)."""

    # the panel's state this part uses (PredictPanel.__init__ and _build set it)
    context: ProjectContext
    results: list[Any]
    result_choice: QComboBox
    outputs: QListWidget
    view: PredictionView
    status: QLabel

    if TYPE_CHECKING:  # the panel's own

        def _start(self, name: str, factory: Callable[[CancelToken], Job], on_finished: Callable[[Any], None],
                   on_failed: Callable[[str, str], object],
                   on_progress: Callable[[Any], None] | None = None) -> None: ...
        def _update_buttons(self) -> None: ...

    def current_result(self) -> Any | None:
        i = self.result_choice.currentIndex()
        return self.results[i] if 0 <= i < len(self.results) else None

    def _show_results(self) -> None:
        self.result_choice.blockSignals(True)
        self.result_choice.clear()
        for r in self.results:
            self.result_choice.addItem(f"{r.scene.name}: {r.polygons} polygon(s)")
        self.result_choice.blockSignals(False)
        self._on_result_chosen()

    def _on_result_chosen(self) -> None:
        self.outputs.clear()
        result = self.current_result()
        self._update_buttons()
        if result is None:
            return
        for p in (result.prob_path, result.mask_path, result.vector_path):
            if p is not None:
                item = QListWidgetItem(str(p))
                item.setData(Qt.ItemDataRole.UserRole, str(p))
                item.setToolTip("Double-click: open in the file manager")
                self.outputs.addItem(item)
        area = result.landslide_area_m2
        area_text = f"{area / 1e4:.2f} ha" if area == area else f"{result.landslide_pixels} px"
        self.outputs.addItem(f"{result.polygons} polygon(s), landslide {area_text}, "
                             f"{result.windows - result.windows_skipped}/{result.windows} windows, "
                             f"{result.seconds:.1f} s, {result.device}")
        scene, prob, mask = result.scene, result.prob_path, result.mask_path
        self._start("overlay", lambda _t: jobs.overlay_job(scene, prob, mask), self.view.set_images,
                    lambda m, _d: self.view.caption.setText(f"Cannot show the prediction: {m}"))

    def selected_output(self) -> Path | None:
        item = self.outputs.currentItem()
        data = None if item is None or not item.isSelected() else item.data(Qt.ItemDataRole.UserRole)
        return Path(data) if data else None

    def open_in_file_manager(self) -> QUrl | None:
        """Open the folder holding the selected output (or the result's outputs)."""
        result = self.current_result()
        path = self.selected_output()
        folder = path.parent if path is not None else (result.prob_path.parent if result is not None else None)
        if folder is None:
            return None
        url = QUrl.fromLocalFile(str(folder))
        QDesktopServices.openUrl(url)
        return url

    def copy_output_path(self) -> str | None:
        path = self.selected_output()
        if path is None:
            return None
        QApplication.clipboard().setText(str(path))
        self.context.status_message.emit(f"copied {path}")
        return str(path)

    def polygons_to_editor(self) -> None:
        result = self.current_result()
        if result is None:
            return
        if self.context.catalog is None:
            show_error(self, "No project", "Open or create a project first: the polygons are stored in it.")
            return
        project = self.context.catalog.path
        scene, vector, mask = result.scene, result.vector_path, result.mask_path
        self.status.setText("Importing the predicted polygons...")
        self._start("import", lambda _t: jobs.polygons_to_project_job(project, scene, vector, mask),
                    self._on_polygons_imported, lambda m, d: show_error(self, "Polygons not imported", m, d))

    def _on_polygons_imported(self, result: tuple[int, int, bool]) -> None:
        scene_id, count, added = result
        self.status.setText(f"{count} predicted polygon(s) stored as labels of scene {scene_id}")
        if added:
            self.context.tiles_changed.emit()  # the Label tab lists scenes and tiles
        self.context.labels_changed.emit(scene_id)
        window = self.window()
        editor = getattr(window, "panels", {}).get("Label")
        if editor is not None:
            editor.open_target("scene", scene_id)
            tabs = getattr(window, "tabs", None)  # the main window's QTabWidget
            if isinstance(tabs, QTabWidget):
                tabs.setCurrentWidget(editor)
