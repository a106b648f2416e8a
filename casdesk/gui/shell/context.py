"""The open project as the GUI sees it: one GUI-thread catalog plus change signals.

Panels never talk to each other directly; they react to these signals. Workers open their
own :class:`Catalog` (SQLite connections are per thread) and the panel emits the signal
when the worker reports back.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from casdesk.core.project import lock as project_lock
from casdesk.core.project.catalog import Catalog, project_paths
from casdesk.core.project.lock import ProjectLockedError


class ProjectContext(QObject):
    project_opened = Signal(object)  # Path of the .casdesk file
    project_closed = Signal()
    tiles_changed = Signal()  # tiles added/removed/regenerated
    decisions_changed = Signal(object)  # list[int] tile ids whose QC decision changed
    labels_changed = Signal(object)  # scene id or tile id whose labels changed
    metrics_changed = Signal()  # QC metrics (re)computed
    status_message = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.catalog: Catalog | None = None
        self._lock: project_lock.Lock | None = None

    @property
    def path(self) -> Path | None:
        return None if self.catalog is None else self.catalog.path

    @property
    def readonly(self) -> bool:
        """True when the project was opened read-only (another window holds its lock);
        panels check it before offering edits, and every catalog write raises."""
        return self.catalog is not None and self.catalog.readonly

    def open(self, path: str | Path, readonly: bool = False) -> Catalog:
        """Open a project (raises CatalogError, which the caller shows in a dialog).

        Takes the project's lock file unless ``readonly``; raises
        :class:`ProjectLockedError` when another live casdesk holds it, so the window can
        offer to open it read-only instead.
        """
        file, _ = project_paths(path)
        if self.catalog is not None and self.catalog.path == file:
            self.close()  # re-opening the open project: give its lock back first
        lock = None
        if not readonly:
            lock = project_lock.acquire(path)
            if lock is None:
                raise ProjectLockedError(file, project_lock.holder(file))
        try:
            catalog = Catalog.open(path, readonly=readonly)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        self._install(catalog, lock)
        return catalog

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

    def close(self) -> None:
        if self.catalog is not None:
            self.catalog.close()
            self.catalog = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            self.project_closed.emit()
