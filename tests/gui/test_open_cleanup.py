"""Opening a project in the app cleans up after a killed process, off the GUI thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from casdesk.core.project.catalog import Catalog


def test_open_in_the_app_marks_dead_runs_and_removes_leftovers(qtbot, tmp_path: Path) -> None:
    from casdesk.core.project.events import RunsChanged
    from casdesk.gui.shell.context import ProjectContext

    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # a process that is gone
    dead.wait()
    cat = Catalog.create(tmp_path / "p")
    leftover = cat.data_dir / f".t.tif.{dead.pid}-1.tmp"  # its half-written tile
    leftover.write_bytes(b"x")
    with cat.transaction() as db:
        db.execute("INSERT INTO runs(name, status, config, started, out_dir, pid, host) "
                   "VALUES ('r', 'running', '{}', 'x', ?, ?, ?)", (str(tmp_path), dead.pid, os.uname().nodename))
    cat.close()

    context = ProjectContext()
    seen: list[object] = []
    context.events.changed.connect(seen.append)
    context.open(tmp_path / "p.casdesk")
    qtbot.waitUntil(lambda: any(isinstance(e, RunsChanged) for e in seen), timeout=10_000)
    assert not leftover.exists()
    status = context.catalog.query("SELECT status FROM runs")[0][0]
    assert status == "interrupted"
    context.close()
    assert context._cleanup is None
