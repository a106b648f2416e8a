"""The catalog's schema: its tables, how timestamps are written, and the migrations.

A project file records the schema it was written with (table ``schema_version``). Opening a
project for writing runs the migrations it lacks, all in one transaction, so a crash leaves
the old schema; opening it read-only reads an older schema as it is and refuses a newer one.

Schema changes are migrations: add a function to ``MIGRATIONS``; never edit an old one.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from casdesk.core.errors import CatalogError

APPLICATION_ID = 0x43415344  # "CASD": marks the SQLite file as a casdesk project
SENSORS = ("SAT", "UAV")


def utc_now() -> str:
    """Timestamps are ISO 8601 UTC strings with milliseconds (tile changes within a second
    must still invalidate thumbnails and QC metrics)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- migrations
def _migration_1(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

        CREATE TABLE subdatasets (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            sensor TEXT CHECK (sensor IN ('SAT', 'UAV')),
            resolution_m REAL,
            region TEXT,
            trigger TEXT,
            source TEXT,
            licence TEXT,
            notes TEXT
        );

        CREATE TABLE scenes (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            name TEXT NOT NULL,
            crs TEXT,                       -- WKT, NULL when not georeferenced
            transform TEXT NOT NULL,        -- JSON [a, b, c, d, e, f] (rasterio Affine order)
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            bands INTEGER NOT NULL,
            dtype TEXT NOT NULL,
            nodata REAL,                    -- NaN is stored as the text 'nan' in nodata_text
            nodata_text TEXT,
            sensor TEXT CHECK (sensor IN ('SAT', 'UAV')),
            resolution_m REAL,
            subdataset_id INTEGER REFERENCES subdatasets(id) ON DELETE SET NULL,
            acquired TEXT,
            source TEXT,
            licence TEXT,
            added TEXT NOT NULL
        );

        CREATE TABLE tiles (
            id INTEGER PRIMARY KEY,
            scene_id INTEGER REFERENCES scenes(id) ON DELETE SET NULL,
            subdataset_id INTEGER NOT NULL REFERENCES subdatasets(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            row_off INTEGER,
            col_off INTEGER,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            image_path TEXT NOT NULL,
            label_path TEXT,
            mask_path TEXT,
            label_pixels INTEGER,           -- landslide pixels in the mask
            valid_pixels INTEGER,           -- pixels inside the scene footprint
            created TEXT NOT NULL,
            modified TEXT NOT NULL,
            UNIQUE (subdataset_id, name)
        );
        CREATE INDEX tiles_scene ON tiles(scene_id);

        CREATE TABLE labels (
            id INTEGER PRIMARY KEY,
            scene_id INTEGER REFERENCES scenes(id) ON DELETE CASCADE,
            tile_id INTEGER REFERENCES tiles(id) ON DELETE CASCADE,
            name TEXT NOT NULL DEFAULT 'landslide',
            geometry_px TEXT NOT NULL,      -- WKT, scene (or tile) pixel coordinates, col/row
            geometry_crs TEXT,              -- WKT in the scene CRS, NULL when no CRS
            source TEXT NOT NULL CHECK (source IN ('imported', 'edited', 'predicted')),
            attributes TEXT,                -- JSON of extra attributes (LabelMe flags, ...)
            created TEXT NOT NULL,
            modified TEXT NOT NULL,
            CHECK (scene_id IS NOT NULL OR tile_id IS NOT NULL)
        );
        CREATE INDEX labels_scene ON labels(scene_id);
        CREATE INDEX labels_tile ON labels(tile_id);

        CREATE TABLE label_edits (
            id INTEGER PRIMARY KEY,
            label_id INTEGER,               -- kept after the label is deleted
            action TEXT NOT NULL CHECK (action IN ('create', 'update', 'delete')),
            geometry_before TEXT,
            geometry_after TEXT,
            author TEXT,
            at TEXT NOT NULL
        );

        CREATE TABLE qc_metrics (
            tile_id INTEGER NOT NULL REFERENCES tiles(id) ON DELETE CASCADE,
            metric TEXT NOT NULL,
            version INTEGER NOT NULL,
            value REAL,
            computed TEXT NOT NULL,
            PRIMARY KEY (tile_id, metric)
        );

        CREATE TABLE qc_decisions (
            id INTEGER PRIMARY KEY,
            tile_id INTEGER NOT NULL REFERENCES tiles(id) ON DELETE CASCADE,
            decision TEXT NOT NULL CHECK (decision IN ('accept', 'reject', 'clear')),
            note TEXT,
            author TEXT,
            decided TEXT NOT NULL
        );
        CREATE INDEX qc_decisions_tile ON qc_decisions(tile_id);

        CREATE TABLE qc_presets (
            name TEXT PRIMARY KEY,
            rules TEXT NOT NULL,            -- JSON
            modified TEXT NOT NULL
        );

        CREATE TABLE splits (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            params TEXT NOT NULL,           -- JSON
            created TEXT NOT NULL
        );

        CREATE TABLE split_tiles (
            split_id INTEGER NOT NULL REFERENCES splits(id) ON DELETE CASCADE,
            tile_id INTEGER NOT NULL REFERENCES tiles(id) ON DELETE CASCADE,
            part TEXT NOT NULL CHECK (part IN ('train', 'val', 'test')),
            PRIMARY KEY (split_id, tile_id)
        );

        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT 'train',
            status TEXT NOT NULL DEFAULT 'running',
            config TEXT NOT NULL,           -- JSON
            split_id INTEGER REFERENCES splits(id) ON DELETE SET NULL,
            device TEXT,
            started TEXT NOT NULL,
            finished TEXT,
            duration_s REAL,
            out_dir TEXT,
            model_path TEXT,
            best_metrics TEXT               -- JSON
        );

        CREATE TABLE run_epochs (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            epoch INTEGER NOT NULL,
            metrics TEXT NOT NULL,          -- JSON
            PRIMARY KEY (run_id, epoch)
        );

        CREATE TABLE predictions (
            tile_id INTEGER NOT NULL REFERENCES tiles(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            mask_path TEXT NOT NULL,
            prob_path TEXT,
            confidence REAL,
            iou REAL,
            created TEXT NOT NULL,
            PRIMARY KEY (tile_id, model)
        );
        """
    )


def _migration_2(db: sqlite3.Connection) -> None:
    """Label-error finder (casdesk.core.qc.suspects): one row per (tile, model) ranked."""
    db.executescript(
        """
        CREATE TABLE suspects (
            tile_id INTEGER NOT NULL REFERENCES tiles(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            score REAL NOT NULL,            -- 0..1, see casdesk.core.qc.suspects
            kind TEXT NOT NULL,             -- missed_landslide, false_label, misaligned, agree
            attributes TEXT NOT NULL,       -- JSON: region_path (disagreement mask), counts, shift
            created TEXT NOT NULL,
            PRIMARY KEY (tile_id, model)
        );
        CREATE INDEX suspects_score ON suspects(score);
        """
    )


def _migration_3(db: sqlite3.Connection) -> None:
    """Scene identity and crops as transactions (issue 13).

    Scene names become unique (tile names carry them); ``scene_crops`` holds one row per
    cropped scene: the scene-level lock of a running crop (pid, host) and the parameters
    of the last complete one; ``crop_staging`` holds the tiles a running (or interrupted,
    resumable) crop has written, until the crop replaces the scene's tiles in one
    transaction. ``runs`` records the process that runs it, so a run whose process is gone
    can be marked interrupted.
    """
    db.executescript(
        """
        UPDATE scenes SET name = name || '-' || id
            WHERE id NOT IN (SELECT MIN(id) FROM scenes GROUP BY name);
        CREATE UNIQUE INDEX scenes_name ON scenes(name);

        CREATE TABLE scene_crops (
            scene_id INTEGER PRIMARY KEY REFERENCES scenes(id) ON DELETE CASCADE,
            state TEXT NOT NULL CHECK (state IN ('running', 'interrupted', 'complete')),
            params TEXT NOT NULL,           -- JSON of the running (or last complete) crop
            out_root TEXT,
            pid INTEGER,
            host TEXT,
            started TEXT NOT NULL,
            finished TEXT
        );

        CREATE TABLE crop_staging (
            scene_id INTEGER NOT NULL REFERENCES scenes(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            row TEXT NOT NULL,              -- JSON: the tile row add_tiles will get
            PRIMARY KEY (scene_id, name)
        );

        ALTER TABLE runs ADD COLUMN pid INTEGER;
        ALTER TABLE runs ADD COLUMN host TEXT;
        """
    )


def _migration_4(db: sqlite3.Connection) -> None:
    """Masks that change only when labels change (issue 15).

    ``mask_pending``: tiles whose labels changed and whose mask is not yet rewritten (the
    marker is written in the label edit's transaction and cleared with the mask, so a crash
    in between is repaired at the next open or by `casdesk labels regenerate`).
    ``mask_bases``: an imported raster label (CAS mask/, image/mask pairs) kept as the base
    layer that the tile's labels paint over. ``label_documents``: the top-level fields of
    an imported LabelMe file (flags, version, extra keys, image source), for a loss-free
    export.
    """
    db.executescript(
        """
        CREATE TABLE mask_pending (
            tile_id INTEGER PRIMARY KEY REFERENCES tiles(id) ON DELETE CASCADE,
            since TEXT NOT NULL
        );
        CREATE TABLE mask_bases (
            tile_id INTEGER PRIMARY KEY REFERENCES tiles(id) ON DELETE CASCADE,
            path TEXT NOT NULL,             -- the imported raster, read-only
            added TEXT NOT NULL
        );
        CREATE TABLE label_documents (
            tile_id INTEGER PRIMARY KEY REFERENCES tiles(id) ON DELETE CASCADE,
            source TEXT,                    -- the LabelMe JSON it came from
            header TEXT NOT NULL            -- JSON: the document without its shapes
        );
        """
    )


MIGRATIONS: list[Any] = [_migration_1, _migration_2, _migration_3, _migration_4]
SCHEMA_VERSION = len(MIGRATIONS)


def read_schema_version(db: sqlite3.Connection) -> int:
    """The schema version a project file records (0: none, a file being created)."""
    row = db.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if row is None:
        return 0
    return int(db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)


def check_schema_version(db: sqlite3.Connection, file: Path) -> int:
    """The recorded schema version; refuse a project written by a newer casdesk."""
    version = read_schema_version(db)
    if version > SCHEMA_VERSION:
        raise CatalogError(
            f"the project was written by a newer casdesk (schema {version} > {SCHEMA_VERSION})",
            file,
            "update casdesk to open it",
        )
    return version


def migrate(db: sqlite3.Connection, file: Path) -> None:
    """Bring the schema up to :data:`SCHEMA_VERSION`: every missing migration, in one
    ``BEGIN IMMEDIATE`` transaction (a failure rolls all of them back)."""
    version = check_schema_version(db, file)
    if version == SCHEMA_VERSION:
        return
    db.isolation_level = None
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER NOT NULL, applied TEXT NOT NULL)"
        )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            _run_migration(db, MIGRATIONS[number - 1])
            db.execute(
                "INSERT INTO schema_version(version, applied) VALUES (?, ?)", (number, utc_now())
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    finally:
        db.isolation_level = "DEFERRED"  # the default ("" is the same, untyped)


def _run_migration(db: sqlite3.Connection, migration: Any) -> None:
    # executescript would COMMIT the surrounding transaction; split statements instead.
    class _NoScript:
        def __init__(self, inner: sqlite3.Connection):
            self._inner = inner

        def executescript(self, script: str) -> None:
            for stmt in _split_sql(script):
                self._inner.execute(stmt)

        def execute(self, *args: Any) -> sqlite3.Cursor:
            return self._inner.execute(*args)

    migration(_NoScript(db))


def _split_sql(script: str) -> list[str]:
    """Split a script into statements (``;`` inside strings or triggers is respected)."""
    text = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    statements, buf = [], ""
    for piece in text.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n;"):
                statements.append(buf.strip())
            buf = ""
    return statements
