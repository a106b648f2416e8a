"""Uncaught exceptions: a short dialog (no traceback), details to copy, a log record."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton

from casdesk import logsetup
from casdesk.core.errors import CasdeskError
from casdesk.gui.shell.errors_hook import ExceptionHook, install_exception_hook, short_message


@pytest.fixture()
def hook(qtbot, log_dir: Path):
    logsetup.setup_logging()
    h = install_exception_hook()
    yield h
    h.uninstall()
    for box in h.dialogs:
        box.close()
        box.deleteLater()


def _visible_boxes(h: ExceptionHook) -> list[QMessageBox]:
    return [d for d in h.dialogs if d.isVisible()]


def _log_text() -> str:
    for handler in logging.getLogger().handlers:
        handler.flush()
    path = logsetup.log_file()
    assert path is not None
    return path.read_text(encoding="utf-8")


def test_short_message_is_one_line() -> None:
    assert short_message(ValueError("bad value\nsecond line")) == "ValueError: bad value"
    assert short_message(KeyError()) == "KeyError"
    assert short_message(CasdeskError("cannot read", "/x.tif", "check it")) == "/x.tif: cannot read (check it)"
    assert len(short_message(RuntimeError("x" * 1000))) <= 300


def test_worker_thread_exception_shows_dialog_and_logs(qtbot, hook: ExceptionHook) -> None:
    def work() -> None:
        raise ZeroDivisionError("tile statistics went wrong")

    thread = threading.Thread(target=work, name="casdesk-test-worker")
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: len(_visible_boxes(hook)) == 1)
    box = _visible_boxes(hook)[0]
    assert box.objectName() == "errorDialog"
    assert "ZeroDivisionError: tile statistics went wrong" in box.text()
    assert "Traceback" not in box.text()
    assert "Traceback" in box.detailedText() and "in work" in box.detailedText()
    copy = [b for b in box.findChildren(QPushButton) if b.text() == "Copy details"]
    assert copy
    copy[0].click()
    assert "tile statistics went wrong" in QApplication.clipboard().text()
    assert box.isVisible()  # copying does not close the box
    log = _log_text()
    assert "uncaught exception in casdesk-test-worker" in log and "Traceback" in log


@pytest.mark.qt_no_exception_capture
def test_exception_in_qt_slot_keeps_app_running(qtbot, hook: ExceptionHook) -> None:
    ran_after: list[bool] = []

    def slot() -> None:
        raise RuntimeError("a panel handler failed")

    QTimer.singleShot(0, slot)
    QTimer.singleShot(10, lambda: ran_after.append(True))
    qtbot.waitUntil(lambda: bool(_visible_boxes(hook)) and bool(ran_after))
    assert "RuntimeError: a panel handler failed" in _visible_boxes(hook)[0].text()
    assert "a panel handler failed" in _log_text()


def test_same_error_repeated_shows_one_dialog(qtbot, hook: ExceptionHook) -> None:
    for _ in range(5):
        try:
            raise ValueError("paint failed")
        except ValueError:
            sys.excepthook(*sys.exc_info())
    qtbot.waitUntil(lambda: len(_visible_boxes(hook)) == 1)
    QApplication.processEvents()  # deliver every signal still queued
    assert len(_visible_boxes(hook)) == 1


def test_uninstall_restores_previous_hooks(qtbot) -> None:
    before_sys, before_thread = sys.excepthook, threading.excepthook
    h = ExceptionHook().install()
    assert sys.excepthook != before_sys and threading.excepthook != before_thread
    h.uninstall()
    assert sys.excepthook == before_sys and threading.excepthook == before_thread
