"""A reader (the GUI, a read-only window) while a job writes: WAL keeps both going."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from casdesk.core.catalog import Catalog

from .conftest import kill9, python_subprocess

WRITER = textwrap.dedent(
    """
    import sys
    from casdesk.core.catalog import Catalog

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
