"""Help > Keyboard shortcuts: one sheet listing every key the app answers to.

The window's own menu shortcuts are read from its actions (so the sheet never goes stale
for them); the panels' keys are listed here, mirroring the editor canvas key map, the
browser grid and the QC review dialog.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

PANEL_SHORTCUTS: list[tuple[str, str, str]] = [
    ("Label editor", "Ctrl+N", "draw a polygon"),
    ("Label editor", "Ctrl+R", "draw a rectangle"),
    ("Label editor", "Ctrl+J", "edit polygons (move vertices)"),
    ("Label editor", "B / X", "brush / eraser"),
    ("Label editor", "H", "cut a hole"),
    ("Label editor", "G / M", "GrabCut box / magic wand"),
    ("Label editor", "Enter / Esc / Backspace", "close / cancel the polygon / drop the last point"),
    ("Label editor", "Delete", "delete the vertex or shape under the cursor"),
    ("Label editor", "Ctrl+Z / Ctrl+Shift+Z (Ctrl+Y)", "undo / redo"),
    ("Label editor", "Ctrl+C / Ctrl+V / Ctrl+D", "copy / paste / duplicate shapes"),
    ("Label editor", "Ctrl+A", "select all shapes"),
    ("Label editor", "Ctrl+E", "edit the label of the selection"),
    ("Label editor", "D / A", "next / previous tile"),
    ("Label editor", "T", "show / hide shapes"),
    ("Label editor", "Ctrl+0 / Ctrl+= / Ctrl+-", "fit / zoom in / zoom out"),
    ("Label editor", "Space (hold) + drag", "pan"),
    ("Tile browser", "A / R / C", "accept / reject / clear the QC decision of the selection"),
    ("Tile browser", "Space", "show / hide the mask overlay"),
    ("Tile browser", "Enter", "open the tile in the detail view"),
    ("Tile browser", "Esc", "close the detail view"),
    ("QC review", "A / R", "accept / reject the tile"),
    ("QC review", "N", "add a note"),
    ("QC review", "Right / Left", "next / previous tile"),
    ("QC review", "Ctrl+Z", "undo the last decision"),
]


def window_shortcuts(window: QWidget) -> list[tuple[str, str, str]]:
    """(area, keys, action) for every action of ``window`` that has a shortcut."""
    rows = []
    for action in window.findChildren(QAction):
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()]
        keys = [k for k in keys if k]
        if keys:
            rows.append(("Window", " / ".join(keys), action.text().replace("&", "").rstrip(".\u2026")))
    return sorted(set(rows), key=lambda r: (r[1].startswith("Alt"), r[1]))


class ShortcutsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts")
        rows = (window_shortcuts(parent) if parent is not None else []) + PANEL_SHORTCUTS
        self.table = QTableWidget(len(rows), 3)
        self.table.setHorizontalHeaderLabels(["Where", "Keys", "Action"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(720, 620)

    def rows(self) -> list[tuple[str, str, str]]:
        def text(i: int, j: int) -> str:
            item = self.table.item(i, j)
            return "" if item is None else item.text()

        return [(text(i, 0), text(i, 1), text(i, 2)) for i in range(self.table.rowCount())]
