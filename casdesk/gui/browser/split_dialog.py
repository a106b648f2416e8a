"""Ask which split and part a selection of tiles goes to."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QWidget,
)

from casdesk.core.dataset.tile_table import PART_NAMES


class AssignSplitDialog(QDialog):
    """Split name (an existing one or a new name: created with kind 'manual') and part."""

    def __init__(self, splits: list[str], current: str | None, count: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Assign split")
        form = QFormLayout(self)
        form.addRow(QLabel(f"Put {count} selected tile{'s' if count != 1 else ''} in:"))
        self.split = QComboBox()
        self.split.setEditable(True)
        self.split.addItems(splits or ["manual"])
        if current:
            self.split.setCurrentText(current)
        self.part = QComboBox()
        self.part.addItems(list(PART_NAMES[1:]))
        form.addRow("Split", self.split)
        form.addRow("Part", self.part)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def choice(self) -> tuple[str, str]:
        return self.split.currentText().strip(), self.part.currentText()
