"""Error and information dialogs: a short message a user can act on, details on demand."""

from __future__ import annotations

import logging

from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton, QWidget

log = logging.getLogger(__name__)


def show_error(parent: QWidget | None, title: str, message: str, details: str = "") -> QMessageBox:
    """Show ``message`` (never a traceback) with the details behind "Copy details".

    Returns the box; it is shown non-modally so tests and background jobs never block.
    """
    log.error("%s: %s", title, message)
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("errorDialog")
    if details:
        box.setDetailedText(details)
        copy = QPushButton("Copy details", box)  # parented: the box owns it after return
        box.addButton(copy, QMessageBox.ButtonRole.ActionRole)
        copy.clicked.disconnect()
        copy.clicked.connect(lambda: QApplication.clipboard().setText(f"{message}\n\n{details}"))
    box.setModal(False)
    box.show()
    return box
