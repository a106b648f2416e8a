"""The accept/reject/flagged counts table (total + one row per subdataset)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

COLUMNS = [
    ("tiles", "Tiles"),
    ("accepted", "Accepted"),
    ("rejected", "Rejected"),
    ("flagged", "Flagged"),
    ("manual_accept", "Manual acc."),
    ("manual_reject", "Manual rej."),
    ("pending", "Pending"),
    ("kept", "Kept"),
]


class CountsView(QTableWidget):
    """Small (a row per subdataset), so a QTableWidget is enough."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS) + 1, parent)
        self.setHorizontalHeaderLabels(["Subdataset", *(title for _, title in COLUMNS)])
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.horizontalHeader().setMinimumSectionSize(70)
        # the names column fits its longest name ("Tiburon Peninsula (Sentinel)" and
        # "(Planet)" must not both elide to "Tiburon Penins..."); long ones elide in the middle
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.counts: dict[str, Any] = {}

    def set_counts(self, counts: dict[str, Any]) -> None:
        self.counts = counts
        rows = [("Total", counts["total"]), *counts["subdatasets"].items()]
        self.setRowCount(len(rows))
        for r, (name, c) in enumerate(rows):
            self._set(r, 0, name, bold=r == 0).setToolTip(name)
            for col, (key, _) in enumerate(COLUMNS, start=1):
                self._set(r, col, str(c[key]), bold=r == 0, right=True)

    def value(self, subdataset: str, key: str) -> int:
        """The number shown for a subdataset ("Total" for the sum) and a count key."""
        col = 1 + [k for k, _ in COLUMNS].index(key)
        for r in range(self.rowCount()):
            head, cell = self.item(r, 0), self.item(r, col)
            if head is not None and cell is not None and head.text() == subdataset:
                return int(cell.text())
        raise KeyError(subdataset)

    def _set(self, row: int, col: int, text: str, bold: bool = False, right: bool = False) -> QTableWidgetItem:
        item = self.item(row, col)
        if item is None:
            item = QTableWidgetItem()
            self.setItem(row, col, item)
        item.setText(text)
        font = item.font()
        font.setBold(bold)
        item.setFont(font)
        if right:
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return item
