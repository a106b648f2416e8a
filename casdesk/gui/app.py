"""Start the GUI: ``casdesk demo`` and ``casdesk gui [PROJECT]`` end here."""

from __future__ import annotations

import sys
from pathlib import Path


def run_app(project: str | Path | None = None, argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    from casdesk.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName("casdesk")
    app.setOrganizationName("casdesk")
    window = MainWindow()
    window.show()
    if project is not None:
        window.open_project(project)
    return app.exec()
