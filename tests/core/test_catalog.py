import sqlite3
import threading
from pathlib import Path

import pytest

from casdesk.core.errors import CatalogError
from casdesk.core.project import schema as schema_module
from casdesk.core.project.catalog import SCHEMA_VERSION, Catalog


def _tile(name: str, sub: str = "A", **kw):
    return {"name": name, "subdataset": sub, "image_path": f"/x/{name}.tif", "width": 512, "height": 512, **kw}


def test_create_sets_wal_foreign_keys_and_version(tmp_path: Path):
    cat = Catalog.create(tmp_path / "p")
    assert cat.path.name == "p.casdesk"
    assert cat.data_dir.is_dir()
    assert cat.query("PRAGMA journal_mode")[0][0] == "wal"
    assert cat.query("PRAGMA foreign_keys")[0][0] == 1
    assert cat.schema_version == SCHEMA_VERSION
    with pytest.raises(CatalogError, match="already exists"):
        Catalog.create(tmp_path / "p.casdesk")
    cat.close()


def test_tiles_upsert_keeps_ids_and_transaction_rolls_back(project: Catalog):
    ids = project.add_tiles([_tile("t1", label_pixels=5, valid_pixels=100), _tile("t2")])
    again = project.add_tiles([_tile("t1", label_pixels=7, valid_pixels=100)])
    assert again == ids[:1]
    assert project.tile(ids[0]).label_pixels == 7
    assert project.tile_count() == 2
    with pytest.raises(RuntimeError), project.transaction():
        project.add_tiles([_tile("t3")])
        raise RuntimeError("boom")
    assert project.tile_count() == 2


def test_paths_inside_project_are_stored_relative(project: Catalog):
    inside = project.data_dir / "tiles" / "a.tif"
    [tid] = project.add_tiles([{**_tile("in"), "image_path": inside}])
    stored = project.query("SELECT image_path FROM tiles WHERE id = ?", (tid,))[0][0]
    assert not Path(stored).is_absolute()
    assert project.tile(tid).image_path == inside


def test_labels_history_and_cascade(project: Catalog):
    sid = project.add_scene("/x/s.tif", crs=None, transform=(1, 0, 0, 0, 1, 0), width=10, height=10,
                            bands=3, dtype="uint8", nodata=None, subdataset="S")
    [lid] = project.add_labels([{"geometry_px": "POLYGON ((0 0, 1 0, 1 1, 0 0))"}], scene_id=sid)
    project.update_label(lid, geometry_px="POLYGON ((0 0, 2 0, 2 2, 0 0))")
    label = project.labels(scene_id=sid)[0]
    assert label.source == "edited" and "2 2" in label.geometry_px
    actions = [r[0] for r in project.query("SELECT action FROM label_edits ORDER BY id")]
    assert actions == ["create", "update"]
    with project.transaction() as db:
        db.execute("DELETE FROM scenes WHERE id = ?", (sid,))
    assert project.labels() == []


def test_nan_nodata_round_trips(project: Catalog):
    sid = project.add_scene("/x/f.tif", crs=None, transform=(1, 0, 0, 0, 1, 0), width=3, height=2,
                            bands=1, dtype="float32", nodata=float("nan"))
    nodata = project.scene(sid).nodata
    assert nodata is not None and nodata != nodata


def test_refuses_non_casdesk_files(tmp_path: Path):
    text = tmp_path / "notes.casdesk"
    text.write_text("hello")
    with pytest.raises(CatalogError, match="not a casdesk project"):
        Catalog.open(text)
    other = tmp_path / "other.casdesk"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.commit()
    with pytest.raises(CatalogError, match="another program"):
        Catalog.open(other)
    with pytest.raises(CatalogError, match="no such project"):
        Catalog.open(tmp_path / "missing.casdesk")


def test_truncated_project_is_refused_and_left_untouched(tmp_path: Path):
    cat = Catalog.create(tmp_path / "p")
    cat.add_tiles([_tile(f"t{i}") for i in range(300)])
    cat.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cat.close()
    path = tmp_path / "p.casdesk"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])
    before = path.read_bytes()
    with pytest.raises(CatalogError, match="truncated or damaged"):
        Catalog.open(path)
    assert path.read_bytes() == before


def test_newer_schema_is_refused(tmp_path: Path):
    cat = Catalog.create(tmp_path / "p")
    with cat.transaction() as db:
        db.execute("INSERT INTO schema_version VALUES (?, 'x')", (SCHEMA_VERSION + 1,))
    cat.close()
    with pytest.raises(CatalogError, match="newer casdesk"):
        Catalog.open(tmp_path / "p.casdesk")


def test_older_schema_is_migrated(tmp_path: Path, monkeypatch):
    cat = Catalog.create(tmp_path / "p")
    cat.add_tiles([_tile("t1")])
    cat.close()

    def migration_next(db):
        db.executescript("ALTER TABLE tiles ADD COLUMN extra TEXT; CREATE TABLE added (x INTEGER);")

    migrations = [*schema_module.MIGRATIONS, migration_next]
    monkeypatch.setattr(schema_module, "MIGRATIONS", migrations)
    monkeypatch.setattr(schema_module, "SCHEMA_VERSION", len(migrations))
    cat = Catalog.open(tmp_path / "p.casdesk")
    assert cat.schema_version == len(migrations)
    assert cat.query("SELECT name, extra FROM tiles")[0]["name"] == "t1"
    cat.close()


def test_reader_sees_committed_rows_while_a_writer_works(tmp_path: Path):
    writer = Catalog.create(tmp_path / "p")
    reader = Catalog.open(tmp_path / "p.casdesk", readonly=True)
    errors = []

    def write():
        try:
            for i in range(20):
                writer.add_tiles([_tile(f"w{i}")])
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - any error is reported below
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    counts = [reader.tile_count() for _ in range(50)]
    thread.join()
    assert not errors
    assert counts == sorted(counts)
    assert reader.tile_count() == 20
    with pytest.raises(CatalogError, match="read-only"), reader.transaction():
        pass
    reader.close()
    writer.close()
