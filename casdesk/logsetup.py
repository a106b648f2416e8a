"""Logging for the CLI and the GUI: messages on stderr and a rotating file.

Why a file: the installed app has no terminal, so when something goes wrong the log file
in the platform's user log folder (``platformdirs.user_log_dir("casdesk")``) is what a
user can send. ``CASDESK_LOG_DIR`` overrides the folder (tests, portable installs).

Levels: casdesk's own INFO messages go to the file, third-party libraries only from
WARNING; the console shows warnings and errors. ``verbose`` (``casdesk -v``) makes both
DEBUG. Setting up twice replaces the handlers set up before, so repeated ``main()`` calls
(tests, the GUI started from ``casdesk gui``) never duplicate lines.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

LOG_DIR_ENV = "CASDESK_LOG_DIR"
LOG_FILE = "casdesk.log"
MAX_BYTES = 2_000_000
BACKUPS = 3
_MARK = "_casdesk_handler"
_log_file: Path | None = None


class _ConsoleFormatter(logging.Formatter):
    """One line per message on the console; the traceback goes to the file only."""

    def __init__(self, verbose: bool) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not self.verbose:
            record = logging.makeLogRecord(record.__dict__)
            record.exc_info = None
            record.exc_text = None
        return super().format(record)


def log_dir() -> Path:
    """The folder of the log file (not created here)."""
    override = os.environ.get(LOG_DIR_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_log_dir("casdesk", appauthor=False))


def log_file() -> Path | None:
    """The file the current setup writes to; ``None`` before setup or when unwritable."""
    return _log_file


def setup_logging(verbose: bool = False, console: bool = True) -> Path | None:
    """Install the stderr and rotating-file handlers; return the log file path.

    Never raises for an unwritable log folder: the app must start anyway, so it then logs
    to the console only and returns ``None``.
    """
    global _log_file
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
        handler.close()

    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("casdesk").setLevel(logging.DEBUG if verbose else logging.INFO)

    stream = sys.stderr
    if console and stream is not None:  # a windowed executable on Windows has no stderr
        out = logging.StreamHandler(stream)
        out.setLevel(logging.DEBUG if verbose else logging.WARNING)
        out.setFormatter(_ConsoleFormatter(verbose))
        setattr(out, _MARK, True)
        root.addHandler(out)

    _log_file = None
    path = log_dir() / LOG_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
        )
    except OSError as exc:
        logging.getLogger(__name__).warning("cannot write the log file %s: %s", path, exc)
        return None
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(
        logging.Formatter("%(asctime)s %(process)d %(threadName)s %(levelname)s %(name)s: %(message)s")
    )
    setattr(file_handler, _MARK, True)
    root.addHandler(file_handler)
    _log_file = path
    logging.captureWarnings(True)
    return path
