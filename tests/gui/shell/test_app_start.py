"""The GUI entry points: run_app installs (and removes) the exception hook; the windowed
executable reports a failed start in a dialog and the log instead of dying silently."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def test_run_app_shows_window_with_hook_and_icon(qtbot, log_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    import casdesk.gui.shell.main_window as mw
    from casdesk.gui.shell import app as app_module

    seen: dict[str, object] = {}

    class Window(mw.MainWindow):
        def __init__(self) -> None:
            super().__init__(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))

            def check_and_quit() -> None:
                seen["visible"] = self.isVisible()
                seen["hook"] = getattr(sys.excepthook, "__self__", None)
                seen["icon"] = not self.windowIcon().isNull()
                seen["window"] = self
                # exit(), not quit() or close(): those post a Quit event that would close
                # the next tests' windows once their event loops run
                QApplication.exit(0)

            QTimer.singleShot(0, check_and_quit)

    monkeypatch.setattr(mw, "MainWindow", Window)
    before = sys.excepthook
    assert app_module.run_app() == 0
    seen["window"].close()  # no event loop running now: no Quit event posted
    assert seen["visible"] and seen["icon"]
    assert type(seen["hook"]).__name__ == "ExceptionHook"
    assert sys.excepthook == before  # uninstalled when the app ends
    assert (log_dir / "casdesk.log").read_text(encoding="utf-8").count("casdesk GUI started") == 1


def test_gui_main_reports_a_failed_start(log_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from casdesk.gui.shell import app as app_module

    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("no usable Qt platform plugin")

    shown: list[str] = []
    monkeypatch.setattr(app_module, "run_app", broken)
    monkeypatch.setattr(app_module, "_show_fatal", shown.append)
    assert app_module.gui_main([]) == 1
    assert shown == ["casdesk could not start: RuntimeError: no usable Qt platform plugin"]
    assert "Traceback" in (log_dir / "casdesk.log").read_text(encoding="utf-8")
