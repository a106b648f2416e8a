"""The Label tab's list of scenes and tiles: rows, their model and a delegate that keeps
them as wide as the list (long names elided)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSize, QStringListModel, Qt
from PySide6.QtWidgets import QListView, QStyledItemDelegate, QStyleOptionViewItem

from casdesk.core.project.catalog import Catalog


@dataclass(frozen=True)
class TargetRow:
    kind: str  # "scene" | "tile"
    id: int
    text: str
    tooltip: str = ""


class FitWidthDelegate(QStyledItemDelegate):
    """Rows no wider than the list's viewport, so the view elides their text."""

    def __init__(self, view: QListView):
        super().__init__(view)
        self.view = view

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802
        hint = super().sizeHint(option, index)
        return QSize(min(hint.width(), max(self.view.viewport().width(), 20)), hint.height())


class TargetModel(QStringListModel):
    """Scenes then tiles of the project (thin adapter; 20k rows are fine).

    The row texts are a :class:`QStringListModel`'s: the list view's layout asks for the
    row count once per row, answered in C++ (in Python each call took the GIL from C++ and
    waited behind workers running Python); tooltips and rows come from Python."""

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.rows: list[TargetRow] = []
        self._row_of: dict[tuple[str, int], int] = {}

    def reset(self, rows: list[TargetRow]) -> None:
        self.rows = rows
        self._row_of = {(r.kind, r.id): i for i, r in enumerate(rows)}
        self.setStringList([r.text for r in rows])  # a model reset

    def row_of(self, kind: str, target_id: int) -> int | None:
        """The row showing a scene or tile (None when it is not listed)."""
        return self._row_of.get((kind, target_id))

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return row.text
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.tooltip or row.text
        if role == Qt.ItemDataRole.UserRole:
            return row
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren


def target_rows(catalog: Catalog) -> list[TargetRow]:
    """The project's scenes, then its tiles (a name used in two subdatasets, as CAS tiles
    numbered per subdataset, shows its subdataset)."""
    rows = [TargetRow("scene", s.id, f"scene  {s.name}  ({s.width}x{s.height})") for s in catalog.scenes()]
    tiles = catalog.tile_rows.names()
    seen: dict[str, int] = {}
    for r in tiles:
        seen[r.name] = seen.get(r.name, 0) + 1
    rows += [
        TargetRow("tile", r.id,
                  f"tile  {r.name}  [{r.subdataset}]" if seen[r.name] > 1 else f"tile  {r.name}",
                  f"{r.subdataset} / {r.name}")
        for r in tiles
    ]
    return rows


def load_target_rows(path: Path) -> list[TargetRow]:
    """:func:`target_rows` on a connection of this (worker) thread (~0.15 s at 20k tiles)."""
    with Catalog.open(path, readonly=True) as catalog:
        return target_rows(catalog)
