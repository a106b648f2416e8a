"""Label names: a dialog with autocompletion over the names used before (kept in QSettings)
and the colour each name is drawn in. "landslide" is always offered first."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from casdesk.gui.editor.items import label_colour

DEFAULT_LABEL = "landslide"
HISTORY_KEY = "editor/label_history"
MAX_HISTORY = 50


def label_history(settings: QSettings) -> list[str]:
    value = settings.value(HISTORY_KEY, [])
    names = [value] if isinstance(value, str) else [str(v) for v in value] if isinstance(value, (list, tuple)) else []
    return [DEFAULT_LABEL, *[n for n in names if n != DEFAULT_LABEL]]


def remember_label(settings: QSettings, name: str) -> None:
    names = [n for n in label_history(settings) if n != name]
    settings.setValue(HISTORY_KEY, [name, *names][:MAX_HISTORY])


def colour_icon(colour: QColor, size: int = 12) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(colour)
    return QIcon(pix)


class LabelDialog(QDialog):
    """Pick or type a label name. Non-blocking: use ``open()`` and ``accepted``."""

    def __init__(self, settings: QSettings, current: str = DEFAULT_LABEL, extra: list[str] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Label")
        self.settings = settings
        names = list(dict.fromkeys([*label_history(settings), *(extra or [])]))
        self.edit = QLineEdit(current)
        self.edit.selectAll()
        completer = QCompleter(names, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.edit.setCompleter(completer)
        self.list = QListWidget()
        for n in names:
            QListWidgetItem(colour_icon(label_colour(n)), n, self.list)
        self.list.itemClicked.connect(lambda it: self.edit.setText(it.text()))
        self.list.itemDoubleClicked.connect(self._choose)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.edit)
        layout.addWidget(self.list)
        layout.addWidget(buttons)

    def name(self) -> str:
        return self.edit.text().strip()

    def _choose(self, item: QListWidgetItem) -> None:
        """A double-clicked name is taken at once."""
        self.edit.setText(item.text())
        self.accept()

    def accept(self) -> None:
        if not self.name():
            return
        remember_label(self.settings, self.name())
        super().accept()
