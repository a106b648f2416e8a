"""Start the GUI: ``casdesk demo``, ``casdesk gui [PROJECT]`` and ``casdesk-gui`` end here.

Startup stays light: Qt and the main window only; torch loads when a panel needs it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import cast

from casdesk.gui.kit.device_probe import PROBE_FLAG, probe_main

log = logging.getLogger(__name__)

BACKGROUND_IMPORTS_AFTER_MS = 2000
"""When the window has shown, wait this long before importing the modules of features not
used yet (:func:`casdesk.gui.kit.warmup.import_in_background`): the project loads first."""


def run_app(project: str | Path | None = None, argv: list[str] | None = None) -> int:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from casdesk import logsetup
    from casdesk.gui.shell.appicon import app_icon
    from casdesk.gui.shell.errors_hook import install_exception_hook
    from casdesk.gui.shell.main_window import MainWindow

    if logsetup.log_file() is None:  # not started through the CLI (which set it up)
        logsetup.setup_logging()
    if QApplication.instance() is None:
        # fractional scaling (125 %, 150 %) as the desktop asks, instead of rounding
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
    app = cast(QApplication, QApplication.instance() or QApplication(argv or sys.argv[:1]))
    app.setApplicationName("casdesk")
    app.setOrganizationName("casdesk")
    app.setWindowIcon(app_icon())
    hook = install_exception_hook()  # before the window: panel construction errors count too
    from casdesk.gui.kit.gc_guard import GuiThreadGarbageCollector, freeze_long_lived, thaw
    from casdesk.gui.kit.gil import favour_gui_thread

    collector = GuiThreadGarbageCollector(app)  # Qt objects are never destroyed on a worker thread
    switch_interval = favour_gui_thread()  # Qt's calls into Python wait less for the GIL behind workers
    window = MainWindow()
    hook.parent_widget = window
    log.info("casdesk GUI started (log file %s)", logsetup.log_file())
    window.show()
    freeze_long_lived()  # full collections no longer walk the startup objects (~120 ms each)
    if project is not None:
        window.start_open_project(project)  # the window shows at once; the project follows
    from PySide6.QtCore import QTimer

    from casdesk.gui.kit.warmup import import_in_background

    # first uses of features import their modules ahead, once the project's first screen is up
    QTimer.singleShot(BACKGROUND_IMPORTS_AFTER_MS, import_in_background)
    try:
        return app.exec()
    finally:
        collector.stop()
        thaw()
        sys.setswitchinterval(switch_interval)
        hook.uninstall()


def gui_main(argv: list[str] | None = None) -> int:
    """The windowed executable's main: ``casdesk-gui [-v] [PROJECT]``."""
    given = sys.argv[1:] if argv is None else argv
    if len(given) == 2 and given[0] == PROBE_FLAG:  # the Train tab's device probe (frozen builds)
        return probe_main(given[1])
    from casdesk import __version__
    from casdesk.logsetup import setup_logging

    parser = argparse.ArgumentParser(prog="casdesk-gui", description="casdesk desktop application")
    parser.add_argument("project", nargs="?", help="project file (.casdesk) to open")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"casdesk {__version__}")
    args, qt_args = parser.parse_known_args(argv)
    setup_logging(verbose=args.verbose)
    try:
        return run_app(args.project, [sys.argv[0], *qt_args])
    except Exception as exc:  # noqa: BLE001 - the windowed app has no console to print to
        log.exception("casdesk could not start")
        _show_fatal(f"casdesk could not start: {type(exc).__name__}: {exc}")
        return 1


def _show_fatal(message: str) -> None:
    """Tell the user why the app did not open (the windowed executable has no console)."""
    from PySide6.QtWidgets import QApplication, QMessageBox

    from casdesk.logsetup import log_file

    if QApplication.instance() is None:
        QApplication(sys.argv[:1])
    QMessageBox.critical(None, "casdesk", f"{message}\n\nDetails are in the log file {log_file()}.")
