"""What follows the Label tab's autosave: announce the changed labels, regenerate the
touched tiles' masks in a worker (edits in quick succession batched), resume masks an
interrupted edit left stale; LabelMe files of the shown image.

A part of :class:`~casdesk.gui.editor.panel.EditorPanel` (a QWidget base without state of
its own: the panel's ``__init__`` sets the attributes declared here).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import shapely
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QFileDialog, QLabel, QWidget

from casdesk.core.errors import CasdeskError
from casdesk.core.labels.store import EditTarget, LabelStore, pending_tiles, regenerate_masks
from casdesk.core.project.events import LabelsChanged, MasksChanged, id_tuple
from casdesk.gui.editor.canvas import EditorCanvas
from casdesk.gui.editor.label_dialog import remember_label
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.kit.workers import JobRunner
from casdesk.gui.shell.context import ProjectContext

REGEN_DELAY_MS = 300


class MaskUpkeep(QWidget):
    """Autosave consequences and LabelMe files (part of EditorPanel)."""

    # the panel's state this part uses (EditorPanel.__init__ sets it)
    context: ProjectContext
    canvas: EditorCanvas
    settings: QSettings
    target: EditTarget | None
    status: QLabel
    _regen_pending: set[int]
    _regen: JobRunner | None
    _regen_timer: QTimer

    if TYPE_CHECKING:  # the panel's other parts
        def _open(self, kind: str, target_id: int) -> None: ...

    def _resume_pending_masks(self, path: Any = None, found: list[int] | None = None) -> None:
        cat = self.context.catalog
        if cat is None or (path is not None and cat.path != path):
            return
        # masks an interrupted edit or import left stale: finish them
        stale = pending_tiles(cat) if found is None else found
        if stale and not cat.readonly:
            self._regen_pending.update(stale)
            self._regen_timer.start(0)

    def _on_saved(self, tile_ids: list[int]) -> None:
        if self.target is not None:
            self.context.labels_changed.emit(self.target.scene_id if self.target.kind == "scene" else self.target.tile_id)
            scene = (self.target.scene_id,) if self.target.kind == "scene" and self.target.scene_id is not None else ()
            self.context.events.announce(LabelsChanged(scene, id_tuple(tile_ids)))
        remember_label(self.settings, self.canvas.current_label)
        self._regen_pending.update(tile_ids)
        self._regen_timer.start()

    def _start_regen(self) -> None:
        if not self._regen_pending or self.context.catalog is None:
            return
        if self._regen is not None and self._regen.is_running():
            return  # restarted when the running batch ends
        ids = sorted(self._regen_pending)
        self._regen_pending.clear()
        project = self.context.catalog.path
        runner = JobRunner(lambda token: regenerate_masks(project, ids, token), self, name="masks")
        runner.failed.connect(lambda msg, details: show_error(self, "Masks not regenerated", msg, details))
        # precise: only these tiles' masks changed (views update those rows, no reload)
        runner.finished.connect(lambda r: self.context.events.announce(MasksChanged(id_tuple(r or ids))))
        runner.done.connect(self._regen_done)
        self._regen = runner
        runner.start()

    def _regen_done(self) -> None:
        if self._regen_pending:
            self._regen_timer.start(0)

    def regen_idle(self) -> bool:
        """No mask regeneration running or waiting (tests wait on this)."""
        return not self._regen_pending and not self._regen_timer.isActive() and (
            self._regen is None or not self._regen.is_running()
        )

    def _flush_regen(self) -> None:
        if self._regen is not None:
            self._regen.wait()
        if self._regen_pending and self.context.catalog is not None:
            from casdesk.core.jobs import run_job

            ids = sorted(self._regen_pending)
            self._regen_pending.clear()
            self._regen_timer.stop()
            run_job(regenerate_masks(self.context.catalog, ids))

    # ---- LabelMe interop for the shown image
    def regenerate_masks_now(self) -> None:
        """Rebuild the open target's tile masks from its labels (core: regenerate_masks)."""
        if self.target is None or self.context.catalog is None:
            return
        t = self.target
        if t.kind == "scene" and t.tile_id is None:
            ids = [tile.id for tile in self.context.catalog.tiles(scene_id=t.scene_id)]
        else:
            ids = LabelStore(self.context.catalog, t).affected_tiles([shapely.box(0, 0, t.width, t.height)]) or ([t.tile_id] if t.tile_id else [])
        self._regen_pending.update(ids)
        self._regen_timer.start(0)

    def export_labelme_dialog(self) -> None:
        if self.target is None or self.context.catalog is None:
            return
        start = str(Path(self.target.image_path).with_suffix(".json"))
        path, _ = QFileDialog.getSaveFileName(self, "Export LabelMe JSON", start, "LabelMe JSON (*.json)")
        if path:
            from casdesk.core.labels.exchange import export_labelme

            try:
                export_labelme(self.context.catalog, self.target, Path(path))
            except CasdeskError as exc:
                show_error(self, "Export failed", str(exc))

    def import_labelme_dialog(self) -> None:
        if self.target is None or self.context.catalog is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Import LabelMe JSON", str(self.target.image_path.parent), "LabelMe JSON (*.json)")
        if path:
            from casdesk.core.labels.exchange import import_labelme_file

            try:
                ids = import_labelme_file(self.context.catalog, self.target, Path(path))
            except CasdeskError as exc:
                show_error(self, "Import failed", str(exc))
                return
            target = self.target
            self._open(target.kind if target.tile_id is None else "tile", target.tile_id or target.scene_id or 0)
            self._on_saved(LabelStore(self.context.catalog, target).affected_tiles([]) or ([target.tile_id] if target.tile_id else []))
            self.status.setText(f"imported {len(ids)} shapes from {Path(path).name}")
