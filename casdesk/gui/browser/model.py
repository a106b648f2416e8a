"""A thin list model over a :class:`~casdesk.core.dataset.tile_table.TileIndex` view.

The model holds the index and ``rows``: index positions of the tiles shown, in display
order, as computed by the core's filter/sort functions. Nothing is stored per item, so a
model of 100k rows costs two int arrays.

Tiles with equal names in different subdatasets (the released dataset has such) are shown as
"subdataset / name" in the grid and the tooltip, so they can be told apart.

The row count lives in C++ (the model is a :class:`QStringListModel` of empty strings, ~24
bytes a row): the grid's layout asks ``rowCount()`` once per item, 20k calls per reset at 20k
tiles. Answered in Python, each call took the GIL from C++ and, while a worker ran Python
(loading the QC columns, decoding thumbnails), waited up to a switch interval for it: a reset
stalled the GUI thread for 100+ ms. ``flags()`` is C++'s too: the view asks it for every
painted cell, and each call from C++ into Python waits for the GIL while a worker decodes
thumbnails (up to a switch interval, 0.5 ms): with the delegate's ``paint`` that was two
waits a cell, now one. (QStringListModel calls its rows editable and draggable; the grid
has no edit triggers and dragging off.) ``data()`` stays in Python (tooltips, tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QStringListModel, Qt

from casdesk.core.dataset.tile_table import TileIndex

TILE_ID_ROLE = Qt.ItemDataRole.UserRole + 1
INDEX_ROW_ROLE = Qt.ItemDataRole.UserRole + 2

_AnyIndex = QModelIndex | QPersistentModelIndex


class TileListModel(QStringListModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.index_data: TileIndex | None = None
        self.rows = np.zeros(0, np.int64)
        self._view_row = np.zeros(0, np.int64)  # index row -> view row (-1 hidden)
        self._dup_of: TileIndex | None = None
        self._dup = np.zeros(0, bool)  # index row -> its name is used by another tile

    # ---- content
    def set_view(self, index: TileIndex | None, rows: np.ndarray | None) -> None:
        """Show ``rows`` (index positions, display order) of ``index`` (a model reset)."""
        self.index_data = index
        self.rows = np.zeros(0, np.int64) if index is None or rows is None else np.asarray(rows, np.int64)
        n = 0 if index is None else len(index)
        self._view_row = np.full(n, -1, np.int64)
        self._view_row[self.rows] = np.arange(self.rows.size)
        if index is not self._dup_of:
            self._dup_of, self._dup = index, (np.zeros(0, bool) if index is None else name_collisions(index))
        self.setStringList([""] * int(self.rows.size))  # resets the model: the rows counted in C++

    def display_name(self, r: int) -> str:
        """The name shown for index row ``r``: "subdataset / name" when the name collides."""
        data = self.index_data
        assert data is not None
        name = str(data.names[r])
        if r < self._dup.size and self._dup[r]:
            return f"{data.subdataset_names[data.subdataset_code[r]]} / {name}"
        return name

    def name_collides(self, r: int) -> bool:
        return bool(r < self._dup.size and self._dup[r])

    @property
    def total(self) -> int:
        return 0 if self.index_data is None else len(self.index_data)

    # ---- Qt interface (rowCount, index and flags are QStringListModel's, in C++)
    def data(self, index: _AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or self.index_data is None or index.row() >= self.rows.size:
            return None
        r = int(self.rows[index.row()])
        if role == Qt.ItemDataRole.DisplayRole:
            return self.display_name(r)
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = self.index_data.tooltip(r)
            if self.name_collides(r):
                tip = f"{self.display_name(r)}\n(another subdataset has a tile of the same name)\n" + tip.split("\n", 1)[-1]
            return tip
        if role == TILE_ID_ROLE:
            return int(self.index_data.ids[r])
        if role == INDEX_ROW_ROLE:
            return r
        return None

    # ---- lookups
    def index_row(self, view_row: int) -> int:
        return int(self.rows[view_row])

    def tile_id(self, view_row: int) -> int:
        assert self.index_data is not None
        return int(self.index_data.ids[self.rows[view_row]])

    def tile_ids(self, view_rows: Iterable[int]) -> list[int]:
        if self.index_data is None:
            return []
        rows = np.fromiter(view_rows, np.int64)
        return self.index_data.ids[self.rows[rows]].tolist() if rows.size else []

    def view_rows_of_ids(self, tile_ids: Sequence[int]) -> np.ndarray:
        """View rows of tile ids (hidden or unknown ids dropped)."""
        if self.index_data is None:
            return np.zeros(0, np.int64)
        rows = self.index_data.rows_of(tile_ids)
        view = self._view_row[rows]
        return view[view >= 0]

    def refresh_rows(self, view_rows: np.ndarray) -> None:
        """Repaint some rows (thumbnails arrived, QC state changed)."""
        if view_rows.size == 0:
            return
        lo, hi = int(view_rows.min()), int(view_rows.max())
        self.dataChanged.emit(self.index(lo), self.index(hi), [Qt.ItemDataRole.DecorationRole])


def name_collisions(index: TileIndex) -> np.ndarray:
    """True for every tile whose name another tile also has (cached on the index)."""
    return index.name_shared()
