"""A reader (the GUI, a read-only window) while a job writes: WAL keeps both going."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from casdesk.core.project.catalog import Catalog

from .conftest import kill9, python_subprocess

WRITER = textwrap.dedent(
    """
    import sys
    from casdesk.core.project.catalog import Catalog

    cat = Catalog.open(sys.argv[1])
    for batch in range(150):
        cat.add_tiles([{"name": f"t{batch}_{i}", "subdataset": "W", "image_path": f"/x/{batch}_{i}.tif",
                        "width": 64, "height": 64} for i in range(10)])
    cat.close()
    """
)


@pytest.mark.timeout(60)
@pytest.mark.skipif(sys.platform == "win32", reason="uses a POSIX child process helper")
def test_readonly_reader_during_writes(tmp_path: Path) -> None:
    """Reads never fail (no "database is locked") and counts only grow: each read sees a
    committed state, never a half-applied batch (counts are multiples of 10)."""
    Catalog.create(tmp_path / "p").close()
    project = tmp_path / "p.casdesk"
    reader = Catalog.open(project, readonly=True)
    proc = python_subprocess(WRITER, project)
    counts: list[int] = []
    try:
        while proc.poll() is None:
            counts.append(reader.tile_count())
            reader.query("SELECT name FROM tiles ORDER BY id DESC LIMIT 5")
        counts.append(reader.tile_count())
    finally:
        reader.close()
        kill9(proc)
    assert proc.returncode == 0
    assert counts == sorted(counts) and counts[-1] == 1500
    assert all(c % 10 == 0 for c in counts)
    assert len(set(counts)) > 2, "the reader never overlapped the writer"


@pytest.mark.timeout(120)
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX lock semantics")
def test_gui_and_cli_side_by_side_lose_nothing(tmp_path: Path) -> None:
    """The GUI's pattern (a long-lived handle plus short-lived worker handles in threads)
    while CLI readers and writers run in other processes: every write made through the
    long-lived handle afterwards is there after reopening, and no handle ever fails.

    Before the fix, ``Catalog.open`` read the header with Python's ``open()``; closing that
    descriptor dropped the process's POSIX locks, so the CLI's last close checkpointed and
    deleted the WAL under the app and every later handle failed with "disk I/O error"."""
    import subprocess
    import threading

    import numpy as np

    from .conftest import REPO  # noqa: F401  (the subprocess runs the installed casdesk)

    Catalog.create(tmp_path / "p").close()
    project = tmp_path / "p.casdesk"
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    import rasterio

    rows = []
    for i in range(4):
        ip, mp = tiles / f"i{i}.tif", tiles / f"m{i}.tif"
        for path, data in ((ip, np.full((3, 16, 16), 90, np.uint8)), (mp, np.zeros((1, 16, 16), np.uint8))):
            with rasterio.open(path, "w", driver="GTiff", width=16, height=16, count=data.shape[0],
                               dtype="uint8") as dst:
                dst.write(data)
        rows.append({"name": f"t{i}", "subdataset": "S", "image_path": ip, "mask_path": mp,
                     "width": 16, "height": 16})
    gui = Catalog.open(project)  # the GUI's long-lived handle
    gui.add_tiles(rows)

    def worker_handle() -> None:  # a GUI worker: its own short-lived handle in a thread
        with Catalog.open(project) as cat:
            cat.tile_count()

    for round_ in range(3):
        thread = threading.Thread(target=worker_handle)
        thread.start()
        thread.join()
        for argv in (["info", str(project), "--json"],
                     ["export", str(project), str(tmp_path / f"out{round_}")],
                     ["qc-report", str(project), str(tmp_path / f"qc{round_}.csv")]):
            done = subprocess.run([sys.executable, "-m", "casdesk", *argv], capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0, done.stderr
        # the app keeps working after the CLI commands ended ...
        gui.set_meta(f"after_cli_{round_}", "yes")
        worker_handle()
    gui.close()
    # ... and everything it wrote is in the project after reopening
    with Catalog.open(project, readonly=True) as cat:
        assert [cat.get_meta(f"after_cli_{r}") for r in range(3)] == ["yes"] * 3
        assert cat.tile_count() == 4
