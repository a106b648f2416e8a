"""The open project as the GUI sees it: one GUI-thread catalog plus change signals.

Panels never talk to each other directly; they react to these signals. Workers open their
own :class:`Catalog` (SQLite connections are per thread) and the panel emits the signal
when the worker reports back.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from casdesk.core.catalog import Catalog


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

    @property
    def path(self) -> Path | None:
        return None if self.catalog is None else self.catalog.path

    def open(self, path: str | Path) -> Catalog:
        """Open a project (raises CatalogError, which the caller shows in a dialog)."""
        catalog = Catalog.open(path)
        self.close()
        self.catalog = catalog
        self.project_opened.emit(catalog.path)
        return catalog

    def create(self, path: str | Path) -> Catalog:
        catalog = Catalog.create(path)
        self.close()
        self.catalog = catalog
        self.project_opened.emit(catalog.path)
        return catalog

    def close(self) -> None:
        if self.catalog is not None:
            self.catalog.close()
            self.catalog = None
            self.project_closed.emit()
