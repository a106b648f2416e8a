"""Uncaught exceptions in the GUI: log them, show a short dialog, keep the app running.

Why: a bug in one panel or worker must not take the whole app (and the user's unsaved
work) down, nor show a raw traceback. Qt calls ``sys.excepthook`` for exceptions escaping
slots and event handlers, ``threading.excepthook`` catches plain worker threads, and a
``QThread.run`` that raises ends in ``sys.excepthook`` on that thread. Each is logged with
its traceback (to the log file) and shown through :func:`casdesk.gui.kit.dialogs.show_error`
with a one-line message and the traceback behind "Copy details". The dialog is always
created on the GUI thread: the hook emits a queued signal from whatever thread it runs on.
The project is not touched: catalog writes are transactions, so nothing half-written stays.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from casdesk.core.errors import CasdeskError
from casdesk.gui.kit.dialogs import show_error
from casdesk.logsetup import log_file

log = logging.getLogger(__name__)
TITLE = "Unexpected error"
MAX_MESSAGE = 300
MAX_OPEN_DIALOGS = 3


def short_message(exc: BaseException) -> str:
    """One line a user can read: the error's own text, never its traceback."""
    if isinstance(exc, CasdeskError):
        text = str(exc)
    else:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "\u2026"


class ExceptionHook(QObject):
    """Installs ``sys.excepthook`` and ``threading.excepthook``; shows errors in dialogs."""

    caught = Signal(str, str)  # message, details

    def __init__(self, parent_widget: QWidget | None = None) -> None:
        super().__init__()
        self.parent_widget = parent_widget
        self.dialogs: list[QMessageBox] = []
        self._previous_sys = sys.excepthook
        self._previous_thread = threading.excepthook
        self.caught.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def install(self) -> ExceptionHook:
        self._previous_sys = sys.excepthook
        self._previous_thread = threading.excepthook
        sys.excepthook = self._sys_hook
        threading.excepthook = self._thread_hook
        return self

    def uninstall(self) -> None:
        if sys.excepthook == self._sys_hook:
            sys.excepthook = self._previous_sys
        if threading.excepthook == self._thread_hook:
            threading.excepthook = self._previous_thread

    # ---- hooks (any thread)
    def _sys_hook(self, exc_type: type[BaseException], exc: BaseException,
                  tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            self._previous_sys(exc_type, exc, tb)
            return
        self.report(exc, tb, threading.current_thread().name)

    def _thread_hook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        name = args.thread.name if args.thread is not None else "worker thread"
        self.report(args.exc_value, args.exc_traceback, name)

    def report(self, exc: BaseException, tb: TracebackType | None, thread: str) -> None:
        """Log ``exc`` with its traceback and queue the dialog on the GUI thread."""
        details = "".join(traceback.format_exception(type(exc), exc, tb))
        log.error("uncaught exception in %s: %s", thread, short_message(exc),
                  exc_info=(type(exc), exc, tb))
        try:
            self.caught.emit(short_message(exc), details)
        except RuntimeError:  # the hook object is being destroyed at shutdown
            pass

    # ---- dialog (GUI thread)
    @Slot(str, str)
    def _show(self, message: str, details: str) -> None:
        self.dialogs = [d for d in self.dialogs if d.isVisible()]
        if any(d.property("casdeskMessage") == message for d in self.dialogs):
            return  # the same error again (e.g. in a paint handler): one dialog is enough
        if len(self.dialogs) >= MAX_OPEN_DIALOGS or QApplication.instance() is None:
            return
        path = log_file()
        hint = f"\n\nThe app keeps running and your project is unchanged. Details are in the log file:\n{path}" \
            if path else "\n\nThe app keeps running and your project is unchanged."
        box = show_error(self.parent_widget, TITLE, message + hint, details)
        box.setProperty("casdeskMessage", message)
        self.dialogs.append(box)


def install_exception_hook(parent_widget: QWidget | None = None) -> ExceptionHook:
    """Create and install the hook; keep the returned object alive (it owns the signal)."""
    return ExceptionHook(parent_widget).install()
