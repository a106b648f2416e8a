"""SQLite's quick_check runs once per project file while the process has it open: the first
open checks (a damaged file is refused with one clear sentence), further connections to the
same file (the GUI's workers) skip it, and a file replaced on disk is checked again."""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
import struct
from pathlib import Path

import pytest

from casdesk.core.errors import CatalogError
from casdesk.core.project import connection as connection_module
from casdesk.core.project.catalog import SCHEMA_VERSION, Catalog


def _tile(name: str) -> dict[str, object]:
    return {"name": name, "subdataset": "A", "image_path": f"/x/{name}.tif", "width": 512, "height": 512}


def _healthy(folder: Path, name: str = "p") -> Path:
    """A closed project with enough tiles for a multi-page tiles table, WAL checkpointed."""
    folder.mkdir(parents=True, exist_ok=True)
    cat = Catalog.create(folder / name)
    cat.add_tiles([_tile(f"t{i}") for i in range(300)])
    cat.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = cat.path
    cat.close()
    return path


def _damage(path: Path) -> None:
    """Point the tiles table's root page at page 2 as well: the header checks still pass,
    quick_check reports a second reference to page 2. ``path`` must not be open here."""
    db = sqlite3.connect(path)
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tiles'").fetchone()[0]
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    raw = bytearray(path.read_bytes())
    offset = (root - 1) * page_size
    assert raw[offset] == 0x05  # an interior table page: bytes 8-11 are its right-most child
    raw[offset + 8 : offset + 12] = struct.pack(">I", 2)
    path.write_bytes(bytes(raw))


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The quick_check runs, counted (the database file of each)."""
    runs: list[Path] = []
    real = connection_module._quick_check

    def counting(db: sqlite3.Connection) -> str:
        runs.append(Path(db.execute("PRAGMA database_list").fetchone()[2]))
        return real(db)

    monkeypatch.setattr(connection_module, "_quick_check", counting)
    return runs


def test_first_open_of_a_damaged_project_is_refused_with_the_clear_error(tmp_path: Path, checks):
    path = _healthy(tmp_path)
    _damage(path)
    before = path.read_bytes()
    checks.clear()
    for _ in range(2):  # a refused file is never recorded as checked: each open checks again
        with pytest.raises(CatalogError, match=r"(?s)the project database is damaged \(.*\); it was not modified"):
            Catalog.open(path)
    assert len(checks) == 2
    assert path.read_bytes() == before
    assert not connection_module._checked


def test_further_connections_to_a_checked_file_skip_quick_check(tmp_path: Path, checks):
    path = _healthy(tmp_path)
    checks.clear()
    first = Catalog.open(path)
    assert checks == [path]
    second = Catalog.open(path)  # a worker's own connection
    reader = Catalog.open(path, readonly=True)
    assert checks == [path]
    assert second.tile_count() == reader.tile_count() == 300
    for cat in (second, reader):
        cat.close()
    with Catalog.open(path) as third:  # the first one is still open
        assert third.tile_count() == 300
    assert checks == [path]
    first.close()
    assert not connection_module._checked
    with Catalog.open(path):  # nothing of this process holds it: a new first open checks
        pass
    assert checks == [path, path]


def test_a_file_replaced_on_disk_is_checked_again(tmp_path: Path, checks):
    path = _healthy(tmp_path / "a")
    healthy_copy = _healthy(tmp_path / "b")
    damaged_copy = _healthy(tmp_path / "c")
    _damage(damaged_copy)
    checks.clear()
    held = Catalog.open(path)
    assert len(checks) == 1

    os.replace(healthy_copy, path)  # another inode at the same path
    shutil.rmtree(path.with_name(path.name + ".d"))
    with Catalog.open(path) as replaced:
        assert replaced.tile_count() == 300
    assert len(checks) == 2

    os.replace(damaged_copy, path)
    with pytest.raises(CatalogError, match="the project database is damaged"):
        Catalog.open(path)
    assert len(checks) == 3
    assert held.tile_count() == 300  # the first connection still reads its own (old) file
    held.close()
    assert not connection_module._checked


def test_a_refused_open_after_a_skipped_check_gives_its_hold_back(tmp_path: Path, checks):
    path = _healthy(tmp_path)
    checks.clear()
    held = Catalog.open(path)
    with held.transaction() as db:
        db.execute("INSERT INTO schema_version VALUES (?, 'x')", (SCHEMA_VERSION + 1,))
    with pytest.raises(CatalogError, match="newer casdesk"):
        Catalog.open(path)
    assert len(checks) == 1  # the check was skipped, the schema still refused
    assert list(connection_module._checked.values()) == [1]
    held.close()
    assert not connection_module._checked


def test_a_connection_never_closed_gives_its_hold_back_when_collected(tmp_path: Path, checks):
    path = _healthy(tmp_path)
    checks.clear()
    cat = Catalog.open(path)
    assert list(connection_module._checked.values()) == [1]
    del cat
    gc.collect()
    assert not connection_module._checked
    with Catalog.open(path):
        pass
    assert len(checks) == 2
