"""Two casdesk windows on one project: the second is warned and opens it read-only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from casdesk.core.errors import CatalogError
from casdesk.core.project import lock as project_lock
from casdesk.core.project.catalog import Catalog

from .conftest import kill9, python_subprocess


@pytest.fixture()
def project_file(tmp_path: Path) -> Path:
    Catalog.create(tmp_path / "p").close()
    return tmp_path / "p.casdesk"


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_lock(project: Path, pid: int, host: str | None = None) -> Path:
    path = project_lock.lock_path(project)
    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "user": "ghost",
                                "started": "2024-01-01T00:00:00.000+00:00"}))
    return path


# ---------------------------------------------------------------------- core
def test_acquire_holder_release(project_file: Path) -> None:
    lock = project_lock.acquire(project_file)
    assert lock is not None
    path = project_file.with_name("p.casdesk.lock")
    data = json.loads(path.read_text())
    assert data["pid"] == os.getpid() and data["host"] == socket.gethostname() and data["user"] and data["started"]
    assert project_lock.acquire(project_file) is None  # a second window, same process
    assert project_lock.holder(project_file) == lock.info
    lock.release()
    assert not path.exists() and project_lock.holder(project_file) is None
    with project_lock.acquire(project_file) as again:
        assert again is not None
    assert not path.exists()


def test_stale_and_odd_locks(project_file: Path) -> None:
    """A dead holder (crash, kill -9) or an unreadable lock file is taken over silently;
    a lock from another machine cannot be checked and counts as held."""
    path = _write_lock(project_file, _dead_pid())
    assert project_lock.holder(project_file) is None
    lock = project_lock.acquire(project_file)
    assert lock is not None and json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()

    path.write_text('{"pid": 12')  # a half-written lock of some old version
    lock = project_lock.acquire(project_file)
    assert lock is not None
    lock.release()

    _write_lock(project_file, 1, host="another-workstation")
    assert project_lock.holder(project_file).host == "another-workstation"  # type: ignore[union-attr]
    assert project_lock.acquire(project_file) is None
    assert path.exists()  # never removes somebody else's lock


# ---------------------------------------------------------------------- GUI
@pytest.fixture()
def make_window(qtbot, tmp_path: Path):
    from PySide6.QtCore import QSettings

    from casdesk.gui.shell.main_window import MainWindow

    windows = []

    def make() -> MainWindow:
        settings = QSettings(str(tmp_path / f"settings{len(windows)}.ini"), QSettings.Format.IniFormat)
        w = MainWindow(settings=settings)
        qtbot.addWidget(w)
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.close()


def _never_asked(holder: object) -> bool:
    raise AssertionError("the user must not be asked")


def test_second_window_opens_read_only(make_window, project_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = make_window(), make_window()
    monkeypatch.setattr(first, "_ask_readonly", _never_asked)
    assert first.open_project(project_file)
    assert not first.context.readonly and "read-only" not in first.windowTitle()
    asked: list[object] = []
    monkeypatch.setattr(second, "_ask_readonly", lambda holder: asked.append(holder) or True)
    assert second.open_project(project_file)
    [holder] = asked
    assert holder.pid == os.getpid()  # type: ignore[attr-defined]
    assert second.context.readonly and second.windowTitle() == "p (read-only) - casdesk"
    with pytest.raises(CatalogError, match="read-only"):
        second.context.catalog.set_meta("x", "y")  # type: ignore[union-attr]
    first.context.catalog.set_meta("x", "y")  # type: ignore[union-attr]  # the owner still writes

    lock_file = project_lock.lock_path(project_file)
    second.context.close()
    assert lock_file.exists()  # the read-only window does not release the owner's lock
    first.close()
    assert not lock_file.exists()  # released on close


def test_project_held_by_another_process(make_window, project_file: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    child = python_subprocess(textwrap.dedent(
        """
        import sys, time
        from casdesk.core.project.lock import acquire
        lock = acquire(sys.argv[1])
        print("locked" if lock else "refused", flush=True)
        time.sleep(60)
        """), project_file)
    try:
        assert child.stdout.readline().strip() == "locked"  # type: ignore[union-attr]
        window = make_window()
        monkeypatch.setattr(window, "_ask_readonly", lambda holder: False)  # the user cancels
        assert not window.open_project(project_file)
        assert window.context.catalog is None and window.windowTitle() == "casdesk"
        monkeypatch.setattr(window, "_ask_readonly", lambda holder: holder.pid == child.pid)
        assert window.open_project(project_file) and window.context.readonly
        window.context.close()
    finally:
        kill9(child)
    # the holder was killed: its lock is stale and taken over without a question
    monkeypatch.setattr(window, "_ask_readonly", _never_asked)
    assert window.open_project(project_file) and not window.context.readonly
    assert json.loads(project_lock.lock_path(project_file).read_text())["pid"] == os.getpid()
