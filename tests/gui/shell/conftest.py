"""Fixtures for the app-shell tests: a private log folder and settings file per test."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture()
def log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point casdesk's log file at a temporary folder; drop the handlers afterwards."""
    from casdesk import logsetup

    def drop_handlers() -> None:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, logsetup._MARK, False)]:
            root.removeHandler(handler)
            handler.close()

    folder = tmp_path / "logs"
    monkeypatch.setenv(logsetup.LOG_DIR_ENV, str(folder))
    drop_handlers()  # earlier tests (CLI runs) may have set logging up elsewhere
    monkeypatch.setattr(logsetup, "_log_file", None)
    yield folder
    drop_handlers()
    monkeypatch.setattr(logsetup, "_log_file", None)


@pytest.fixture()
def settings(tmp_path: Path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
