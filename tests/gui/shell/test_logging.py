"""The rotating log file: where it goes, what it holds, and that setup is repeatable."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from casdesk import logsetup


def _flush() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


def test_log_file_created_in_configured_folder(log_dir: Path) -> None:
    path = logsetup.setup_logging()
    assert path == log_dir / "casdesk.log" and path.is_file()
    assert logsetup.log_file() == path
    logging.getLogger("casdesk.test").info("hello from the shell tests")
    logging.getLogger("casdesk.test").debug("not written without -v")
    _flush()
    text = path.read_text(encoding="utf-8")
    assert "hello from the shell tests" in text and "not written" not in text


def test_verbose_writes_debug(log_dir: Path) -> None:
    path = logsetup.setup_logging(verbose=True)
    logging.getLogger("casdesk.test").debug("debug detail")
    _flush()
    assert "debug detail" in path.read_text(encoding="utf-8")


def test_setup_twice_does_not_duplicate_lines(log_dir: Path) -> None:
    logsetup.setup_logging()
    path = logsetup.setup_logging()
    logging.getLogger("casdesk.test").warning("once only")
    _flush()
    assert path.read_text(encoding="utf-8").count("once only") == 1
    marked = [h for h in logging.getLogger().handlers if getattr(h, logsetup._MARK, False)]
    assert len(marked) == 2  # console + file


def test_console_shows_one_line_file_keeps_traceback(log_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = logsetup.setup_logging()
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("casdesk.test").exception("step failed")
    _flush()
    err = capsys.readouterr().err
    assert "step failed" in err and "Traceback" not in err
    assert "Traceback" in path.read_text(encoding="utf-8")


def test_unwritable_log_folder_does_not_stop_the_app(tmp_path: Path, log_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(logsetup.LOG_DIR_ENV, str(blocker / "logs"))
    assert logsetup.setup_logging() is None
    assert logsetup.log_file() is None


def test_cli_main_sets_up_the_log_file(log_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from casdesk.cli import main

    assert main([]) == 1  # prints help
    assert (log_dir / "casdesk.log").is_file()


def test_default_folder_is_the_platform_user_log_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.delenv(logsetup.LOG_DIR_ENV, raising=False)
    assert logsetup.log_dir() == Path(platformdirs.user_log_dir("casdesk", appauthor=False))
