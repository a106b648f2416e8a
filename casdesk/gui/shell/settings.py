"""GUI preferences in ``QSettings``: last folders per purpose and the default device.

Why helpers: every file dialog should open where the user last was *for that kind of
file* (scenes, label files, exports, models), and every panel that trains or predicts
should start from the same device choice. Keys live here so panels do not invent their
own. The core never reads these: it takes explicit arguments.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QWidget,
)

DEVICES = ("auto", "cpu", "cuda", "mps")
DEVICE_KEY = "ml/default_device"


def last_folder(settings: QSettings, purpose: str) -> str:
    """The folder last used for ``purpose`` ("project", "scene", "labels", "export", ...)."""
    value = settings.value(f"paths/last_{purpose}_dir", "")
    folder = str(value) if value else ""
    return folder if folder and Path(folder).is_dir() else str(Path.home())


def remember_folder(settings: QSettings, purpose: str, path: str | Path) -> None:
    """Remember the folder of ``path`` (a file or a folder) for ``purpose``."""
    p = Path(path)
    settings.setValue(f"paths/last_{purpose}_dir", str(p if p.is_dir() else p.parent))


def default_device(settings: QSettings) -> str:
    value = str(settings.value(DEVICE_KEY, "auto") or "auto")
    return value if value in DEVICES or value.startswith("cuda:") else "auto"


def set_default_device(settings: QSettings, device: str) -> None:
    settings.setValue(DEVICE_KEY, device)


class PreferencesDialog(QDialog):
    """Edit > Preferences: the default device for training and prediction."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("preferencesDialog")
        self.setWindowTitle("Preferences")
        self.settings = settings
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setEditable(True)  # cuda:1 etc.
        self.device.setCurrentText(default_device(settings))
        self.device.setToolTip("auto: the first CUDA GPU when there is one, else the CPU")
        form = QFormLayout(self)
        form.addRow("Default &device for training and prediction:", self.device)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def accept(self) -> None:
        set_default_device(self.settings, self.device.currentText().strip() or "auto")
        super().accept()
