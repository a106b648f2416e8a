"""The QC tab's measuring: *Compute metrics* in worker processes with a progress bar and
Cancel (counts follow the tiles done so far), and the background recomputation of tiles
whose image or mask changed ("metrics stale"), a few at a time.

A part of :class:`~casdesk.gui.qc.panel.QCPanel` (a QWidget base without state of its own:
the panel's ``__init__`` sets the attributes declared here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QProgressBar, QPushButton, QWidget

from casdesk.core.project.events import QCMetricsChanged
from casdesk.core.qc import rules as qc
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.kit.workers import JobRunner
from casdesk.gui.shell.context import ProjectContext

STALE_BATCH = 8
"""Tiles recomputed per background job after their image or mask changed."""


class QCScanning(QWidget):
    """Compute metrics, cancel, and recompute stale tiles (part of QCPanel)."""

    # the panel's state this part uses (QCPanel.__init__ sets it)
    context: ProjectContext
    table: qc.QCTable | None
    runner: JobRunner | None
    stale_runner: JobRunner | None
    stale_timer: QTimer
    histogram_timer: QTimer
    compute_button: QPushButton
    cancel_button: QPushButton
    progress: QProgressBar
    _stale_pending: set[int]
    _loaded_path: Any

    if TYPE_CHECKING:  # the panel's own

        def recount(self) -> None: ...
        def _load(self) -> None: ...

    # ---- computing
    def compute(self) -> None:
        catalog = self.context.catalog
        if catalog is None or (self.runner is not None and self.runner.is_running()):
            return
        path = catalog.path
        # JobRunner runs the scan below the GUI thread; the worker processes it spawns inherit that
        self.runner = JobRunner(lambda token: qc.compute_metrics(path, cancel=token), self, name="qc")
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_computed)
        self.runner.failed.connect(lambda msg, details: show_error(self, "QC metrics failed", msg, details))
        self.runner.cancelled.connect(lambda: self.context.status_message.emit("QC scan cancelled"))
        self.runner.done.connect(self._on_job_done)
        self.compute_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setFormat("%v / %m tiles")
        self.progress.setRange(0, 0)
        self.progress.show()
        self.runner.start()

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()

    def _on_progress(self, event: Any) -> None:
        if event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
        if event.message:  # the pass and its tiles ("metrics: 800/5280 tiles", then the seam's)
            self.progress.setFormat(event.message.replace("%", "%%"))
        ids = event.data.get("tile_ids") if event.data else None
        if ids and self.table is not None and self.context.catalog is not None:
            qc.update_table(self.context.catalog, self.table, ids)
            self.recount()
            if not self.histogram_timer.isActive():
                self.histogram_timer.start()

    def _on_computed(self, n: int) -> None:
        self.context.status_message.emit(f"QC metrics computed for {n} tiles")

    def _on_job_done(self) -> None:
        self.compute_button.setEnabled(self.context.catalog is not None)
        self.cancel_button.setEnabled(False)
        self.progress.hide()
        self.context.metrics_changed.emit()

    def _on_metrics_changed(self) -> None:
        if self.context.catalog is not None and self.context.catalog.path == self._loaded_path:
            self._load()

    # ---- staleness
    def on_masks_changed(self, change: Any) -> None:
        """A label edit rewrote some masks: their metrics (labelled fraction...) are stale
        and recomputed in the background; the rules and the rest of the table stay."""
        self.mark_stale(getattr(change, "tile_ids", None))

    def mark_stale(self, tile_ids: Any) -> None:
        """Tiles whose image or mask changed: shown as "metrics stale" and recomputed in
        the background, a few at a time."""
        catalog = self.context.catalog
        if catalog is None or self.table is None:
            return
        ids = [int(t) for t in tile_ids] if tile_ids else []
        if ids:
            self.table.stale[self.table.rows(ids)] = True
            self._stale_pending.update(ids)
            self.recount()
        if not catalog.readonly:
            self.stale_timer.start()

    def recompute_stale(self) -> None:
        catalog = self.context.catalog
        if catalog is None or not self._stale_pending:
            return
        if (self.stale_runner is not None and self.stale_runner.is_running()) or (
            self.runner is not None and self.runner.is_running()
        ):
            self.stale_timer.start()
            return
        batch = sorted(self._stale_pending)[:STALE_BATCH]
        self._stale_pending.difference_update(batch)
        path = catalog.path
        self.stale_runner = JobRunner(
            lambda token: qc.compute_metrics(path, tile_ids=batch, cancel=token, workers=1, force=True),
            self,
            name="qc-stale",
        )
        self.stale_runner.progress.connect(self._on_progress_quiet)
        self.stale_runner.done.connect(self._on_stale_done)
        self.stale_runner.start()

    def _on_progress_quiet(self, event: Any) -> None:
        ids = event.data.get("tile_ids") if event.data else None
        if ids and self.table is not None and self.context.catalog is not None:
            qc.update_table(self.context.catalog, self.table, ids)
            self.table.stale[self.table.rows(ids)] = False
            self.recount()

    def _on_stale_done(self) -> None:
        events = getattr(self.context, "events", None)
        if events is not None:
            events.announce(QCMetricsChanged(None))
        if self._stale_pending:
            self.stale_timer.start()

