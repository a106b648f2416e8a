"""The open project as the GUI sees it: one GUI-thread catalog plus change signals.

Panels never talk to each other directly; they react to these signals. Workers open their
own :class:`Catalog` (SQLite connections are per thread) and the panel announces the change
when the worker reports back.

Precise events: ``context.events.announce(MasksChanged(ids))`` (payloads in
:mod:`casdesk.core.project.events`) emits the payload on the signal of its kind and on
``events.changed``; views update only the ids it names. The older coarse signals
(``tiles_changed`` and friends) still work for panels that have not switched yet: a
``tiles_changed`` without ids means "anything may have changed" and costs a reload.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, QThreadPool, Signal

from casdesk.core.errors import CasdeskError
from casdesk.core.project import lock as project_lock
from casdesk.core.project.catalog import Catalog, project_paths
from casdesk.core.project.events import (
    LabelsChanged,
    MasksChanged,
    ProjectChange,
    QCDecisionsChanged,
    QCMetricsChanged,
    QCRulesChanged,
    RunsChanged,
    SplitsChanged,
    TilesAdded,
    TilesRemoved,
)
from casdesk.core.project.lock import ProjectLockedError
from casdesk.core.qc import shared as shared_qc
from casdesk.gui.kit.gil import lower_thread_priority


class ProjectEvents(QObject):
    """Typed change events of the open project: one signal per payload type (each carries
    the payload object), plus :attr:`changed` for every payload."""

    changed = Signal(object)  # any ProjectChange
    tiles_added = Signal(object)  # TilesAdded
    tiles_removed = Signal(object)  # TilesRemoved
    masks_changed = Signal(object)  # MasksChanged
    labels_changed = Signal(object)  # LabelsChanged
    qc_metrics_changed = Signal(object)  # QCMetricsChanged
    qc_decisions_changed = Signal(object)  # QCDecisionsChanged
    qc_rules_changed = Signal(object)  # QCRulesChanged
    splits_changed = Signal(object)  # SplitsChanged
    runs_changed = Signal(object)  # RunsChanged

    def __init__(self, context: ProjectContext) -> None:
        super().__init__(context)
        self._context = context
        self._signals = {
            TilesAdded: self.tiles_added, TilesRemoved: self.tiles_removed,
            MasksChanged: self.masks_changed, LabelsChanged: self.labels_changed,
            QCMetricsChanged: self.qc_metrics_changed, QCDecisionsChanged: self.qc_decisions_changed,
            QCRulesChanged: self.qc_rules_changed, SplitsChanged: self.splits_changed,
            RunsChanged: self.runs_changed,
        }
        self.history: list[ProjectChange] = []  # the last announcements (tests, benchmark)

    def announce(self, change: ProjectChange) -> None:
        """Tell every view what changed. Also emits the older coarse signal where one
        carries the same meaning with ids (``decisions_changed``), so panels that listen
        to it keep working."""
        signal = self._signals.get(type(change))
        if signal is None:
            raise TypeError(f"not a project change: {change!r}")
        self.history = [*self.history[-63:], change]
        signal.emit(change)
        self.changed.emit(change)
        if isinstance(change, QCDecisionsChanged):
            self._context.decisions_changed.emit(list(change.tile_ids))


class ProjectContext(QObject):
    project_opened = Signal(object)  # Path of the .casdesk file
    project_closed = Signal()
    tiles_changed = Signal()  # coarse: anything about tiles changed (prefer ``events``)
    decisions_changed = Signal(object)  # list[int] tile ids whose QC decision changed
    labels_changed = Signal(object)  # scene id or tile id whose labels changed
    metrics_changed = Signal()  # QC metrics (re)computed
    status_message = Signal(str)
    tile_requested = Signal(int, str)  # tile id, "browse" (detail view) or "label" (editor)
    train_requested = Signal(object)  # browser.quick_train.TrainRequest: a short run on a split
    opening = Signal(object)  # Path: open_in_background started (project_opened or open_failed follows)
    open_failed = Signal(object, str)  # Path, message: open_in_background could not open it
    _cleanup_found_runs = Signal()  # from the cleanup thread; delivered on the GUI thread
    _opened_in_thread = Signal(int, object, str)  # ticket, Catalog or None, error message

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.catalog: Catalog | None = None
        self.events = ProjectEvents(self)
        self._lock: project_lock.Lock | None = None
        self._cleanup: threading.Event | None = None  # set when the cleanup thread is done
        # open and cleanup threads: a QThreadPool task starts without the GUI thread waiting
        # for the new thread to run (threading.Thread.start waits: ~20 ms on a busy machine)
        self._threads = QThreadPool(self)
        self._threads.setMaxThreadCount(4)
        self._cleanup_found_runs.connect(lambda: self.events.announce(RunsChanged()))
        self._open_ticket = 0
        self._pending_open: tuple[int, Path, project_lock.Lock | None] | None = None
        self._opened_in_thread.connect(self._on_opened_in_thread)

    @property
    def path(self) -> Path | None:
        return None if self.catalog is None else self.catalog.path

    @property
    def readonly(self) -> bool:
        """True when the project was opened read-only (another window holds its lock);
        panels check it before offering edits, and every catalog write raises."""
        return self.catalog is not None and self.catalog.readonly

    def _prepare_open(self, path: str | Path, readonly: bool) -> project_lock.Lock | None:
        """What every open does first: supersede a pending open, close the project when it
        is the one being opened again (its lock is given back first), and take the
        project's lock unless ``readonly`` (:class:`ProjectLockedError` when another live
        casdesk holds it). Returns the lock (None when read-only)."""
        file, _ = project_paths(path)
        self._cancel_pending_open()
        if self.catalog is not None and self.catalog.path == file:
            self.close()
        if readonly:
            return None
        lock = project_lock.acquire(path)
        if lock is None:
            raise ProjectLockedError(file, project_lock.holder(file))
        return lock

    def open(self, path: str | Path, readonly: bool = False) -> Catalog:
        """Open a project (raises CatalogError, which the caller shows in a dialog).

        Takes the project's lock file unless ``readonly``; raises
        :class:`ProjectLockedError` when another live casdesk holds it, so the window can
        offer to open it read-only instead.
        """
        lock = self._prepare_open(path, readonly)
        try:
            catalog = Catalog.open(path, readonly=readonly)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        self._install(catalog, lock)
        return catalog

    def open_in_background(self, path: str | Path, readonly: bool = False) -> None:
        """Open a project without blocking the GUI thread: as :meth:`open`, but the database
        is opened and checked (SQLite's quick_check reads the whole file: ~60 ms at 20k
        tiles, seconds on a network share) in a thread. The lock is taken here, so a held
        lock raises :class:`ProjectLockedError` at once as in :meth:`open`; then
        :attr:`project_opened` follows (the current project stays open until then), or
        :attr:`open_failed` with the reason. A newer open or :meth:`close` supersedes a
        pending one."""
        file, _ = project_paths(path)
        lock = self._prepare_open(path, readonly)
        self._open_ticket += 1
        ticket = self._open_ticket
        self._pending_open = (ticket, file, lock)
        report = self._opened_in_thread

        def work() -> None:
            lower_thread_priority()
            catalog: Catalog | None = None
            message = ""
            try:
                catalog = Catalog.open(path, readonly=readonly)
                import casdesk.core.project.stores  # noqa: F401 - loaded here, not at the GUI thread's first query
            except CasdeskError as exc:
                message = str(exc)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                message = f"{type(exc).__name__}: {exc}"
            try:
                report.emit(ticket, catalog, message)
            except RuntimeError:  # the context is gone (the window closed meanwhile)
                if catalog is not None:
                    catalog.close()

        self._threads.start(work)
        self.opening.emit(file)

    def is_opening(self) -> bool:
        """True while :meth:`open_in_background` has not reported."""
        return self._pending_open is not None

    def _cancel_pending_open(self) -> None:
        pending, self._pending_open = self._pending_open, None
        if pending is not None and pending[2] is not None:
            pending[2].release()

    def _on_opened_in_thread(self, ticket: int, catalog: Catalog | None, message: str) -> None:
        pending = self._pending_open
        if pending is None or pending[0] != ticket:  # superseded or closed meanwhile
            if catalog is not None:
                catalog.close()
            return
        self._pending_open = None
        _, file, lock = pending
        if catalog is None:
            if lock is not None:
                lock.release()
            self.open_failed.emit(file, message or "the project could not be opened")
            return
        self._install(catalog, lock)

    def create(self, path: str | Path) -> Catalog:
        catalog = Catalog.create(path)
        lock = project_lock.acquire(catalog.path)  # a new project: nobody else can hold it
        self._install(catalog, lock)
        return catalog

    def _install(self, catalog: Catalog, lock: project_lock.Lock | None) -> None:
        self.close()
        self.catalog = catalog
        self._lock = lock
        self.project_opened.emit(catalog.path)
        if not catalog.readonly:
            self._start_cleanup(catalog.path)

    def _start_cleanup(self, path: Path) -> None:
        """Remove a killed process's leftovers and mark its runs interrupted, off the GUI thread
        (about 0.1 s at 20k tiles); a run it marks is announced as a runs change."""
        done = threading.Event()
        found_runs = self._cleanup_found_runs

        def work() -> None:
            lower_thread_priority()
            try:  # imported here, not on the GUI thread
                from casdesk.core.project.cleanup import cleanup_project

                with Catalog.open(path) as cat:
                    cleaned = cleanup_project(cat)
                if cleaned.runs:
                    found_runs.emit()
            except Exception as exc:  # noqa: BLE001 - cleanup must never disturb the app
                logging.getLogger(__name__).debug("cleanup of %s: %s", path, exc)
            finally:
                done.set()

        self._cleanup = done
        self._threads.start(work)

    def cleanup_finished(self) -> bool:
        """True once the open project's cleanup thread is done (a run it marked interrupted
        has then been announced): views may still reload once for that announcement."""
        return self._cleanup is None or self._cleanup.is_set()

    def close(self) -> None:
        self._cancel_pending_open()
        cleanup = self._cleanup
        if cleanup is not None:
            cleanup.wait(timeout=10)  # it holds its own handle on the project: let it finish
            self._cleanup = None
        if self.catalog is not None:
            shared_qc.forget(self.catalog.path)  # the closed project's QC table is not kept
            self.catalog.close()
            self.catalog = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            self.project_closed.emit()
