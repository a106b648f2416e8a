"""The Train tab's device menu, filled by a child process (:mod:`.device_probe`), once per
session: the window's process neither imports torch for it nor initialises CUDA."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from casdesk.gui.kit.device_probe import probe_command, read_result

log = logging.getLogger(__name__)

_found: list[tuple[str, str]] | None = None
"""The devices the session's probe listed (devices do not come and go while the app runs)."""


class DeviceProbe(QObject):
    """Lists the devices in a child process; :attr:`found` carries ``[(key, label), ...]``
    (empty when the child failed: the menu keeps "auto" and "cpu")."""

    found = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._process: QProcess | None = None
        self._folder: str | None = None

    @staticmethod
    def cached() -> list[tuple[str, str]] | None:
        return _found

    def start(self) -> bool:
        """Start the child; False when the session already knows the devices (use :meth:`cached`)."""
        if _found is not None or self._process is not None:
            return False
        self._folder = tempfile.mkdtemp(prefix="casdesk-devices-")
        program, args, env = probe_command(str(Path(self._folder) / "devices.json"))
        process = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        for key, value in env.items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.ForwardedErrorChannel)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self._process = process
        process.start(program, args)
        return True

    def is_running(self) -> bool:
        return self._process is not None

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            log.warning("the device probe could not start")
            self._finish(None)

    def _on_finished(self, _code: int, _status: QProcess.ExitStatus) -> None:
        folder = self._folder
        self._finish(None if folder is None else read_result(str(Path(folder) / "devices.json")))

    def _finish(self, devices: list[tuple[str, str]] | None) -> None:
        global _found
        process, self._process = self._process, None
        if process is None:
            return
        process.deleteLater()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        if devices is None:
            log.warning("the device probe listed no devices")
        else:
            _found = devices
        self.found.emit(devices or [])

    def shutdown(self, msecs: int = 5_000) -> None:
        """Stop the child if it still runs (nothing outlives the window)."""
        process = self._process
        if process is None:
            return
        process.finished.disconnect(self._on_finished)
        process.kill()
        process.waitForFinished(msecs)
        self._process = None
        process.deleteLater()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
