"""Help > About: the versions a bug report needs, torch and the GPU included.

Why a worker thread: importing torch takes seconds and the window opens without it, so
the dialog shows the cheap versions at once and fills in torch/CUDA/GPU when the
background import finishes (instantly when a panel already imported torch).
"""

from __future__ import annotations

import platform
import sys
import threading

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from casdesk import __version__
from casdesk.gui.shell.appicon import app_icon

PENDING = "loading\u2026"


def base_versions() -> list[tuple[str, str]]:
    """Versions known without importing torch (fast)."""
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    rows = [
        ("casdesk", __version__ + (" (frozen app)" if getattr(sys, "frozen", False) else "")),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("Platform", platform.platform()),
        ("Qt", f"{qVersion()} (PySide6 {pyside_version})"),
    ]
    try:
        import numpy
        import rasterio

        rows += [
            ("numpy", numpy.__version__),
            ("rasterio", rasterio.__version__),
            ("GDAL", rasterio.__gdal_version__),
            ("PROJ", _proj_version()),
        ]
    except ImportError as exc:  # a broken install should still show the dialog
        rows.append(("rasterio", f"not available ({exc})"))
    from casdesk.logsetup import log_file

    rows.append(("Log file", str(log_file() or "none")))
    return rows


def _proj_version() -> str:
    import rasterio

    version = getattr(rasterio, "__proj_version__", None)
    if version:
        return str(version)
    try:
        import pyproj

        return f"{pyproj.proj_version_str} (pyproj)"
    except ImportError:
        return "unknown"


def torch_versions() -> list[tuple[str, str]]:
    """torch, CUDA and the GPU name; imports torch (seconds on a cold start)."""
    try:
        from casdesk.gui.kit.torch_import import import_torch_quietly

        torch = import_torch_quietly()
    except Exception as exc:  # noqa: BLE001 - a broken torch must not break About
        return [("torch", f"not available ({type(exc).__name__}: {exc})")]
    rows = [("torch", torch.__version__), ("CUDA (torch build)", torch.version.cuda or "none (CPU build)")]
    try:
        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            rows.append(("GPU", "; ".join(names)))
        else:
            rows.append(("GPU", "none available"))
    except Exception as exc:  # noqa: BLE001 - driver problems are reported, not raised
        rows.append(("GPU", f"error: {exc}"))
    try:
        import segmentation_models_pytorch as smp

        rows.append(("segmentation-models-pytorch", smp.__version__))
    except Exception:  # noqa: BLE001
        rows.append(("segmentation-models-pytorch", "not available"))
    return rows


class _TorchProbe(QObject):
    done = Signal(object)  # list[tuple[str, str]]


class AboutDialog(QDialog):
    """Version table with a "Copy" button (pastes well into a bug report)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About casdesk")
        self.setWindowIcon(app_icon())
        title = QLabel(
            f"<h2>casdesk {__version__}</h2><p>Landslide mapping: GeoTIFF scenes to CAS-layout "
            "datasets, quality control, labelling, training and prediction.</p>"
        )
        title.setWordWrap(True)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Component", "Version"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = QPushButton("&Copy")
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(self.copy_to_clipboard)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(600, 560)

        self.set_rows(base_versions() + [("torch", PENDING)])
        self._probe = _TorchProbe()
        self._probe.done.connect(self._on_torch, Qt.ConnectionType.QueuedConnection)
        threading.Thread(target=self._load_torch, name="casdesk-about-torch", daemon=True).start()

    def _load_torch(self) -> None:
        rows = torch_versions()
        try:
            self._probe.done.emit(rows)
        except RuntimeError:  # the dialog was closed and deleted meanwhile
            pass

    def _on_torch(self, rows: list[tuple[str, str]]) -> None:
        self.set_rows([r for r in self.rows() if r[0] != "torch"] + rows)

    def set_rows(self, rows: list[tuple[str, str]]) -> None:
        self.table.setRowCount(len(rows))
        for i, (name, value) in enumerate(rows):
            self.table.setItem(i, 0, QTableWidgetItem(name))
            self.table.setItem(i, 1, QTableWidgetItem(value))
        self.table.resizeColumnToContents(0)

    def rows(self) -> list[tuple[str, str]]:
        def text(i: int, j: int) -> str:
            item = self.table.item(i, j)
            return "" if item is None else item.text()

        return [(text(i, 0), text(i, 1)) for i in range(self.table.rowCount())]

    def text(self) -> str:
        return "\n".join(f"{name}: {value}" for name, value in self.rows())

    def copy_to_clipboard(self) -> None:
        QApplication.clipboard().setText(self.text())

    @property
    def torch_loaded(self) -> bool:
        return all(value != PENDING for _, value in self.rows())
