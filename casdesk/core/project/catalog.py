"""The project catalog: one SQLite file (``NAME.casdesk``) plus a data folder beside it.

The catalog is the single source of truth shared by the GUI and the CLI. It runs in WAL
mode so a reader (the GUI) and a writer (a job) can use it at once; every write happens in
a transaction (``with catalog.transaction():``). Tile pixels live in GeoTIFF files; the
catalog stores their paths, relative to the project folder when they are inside it.

Schema changes are migrations: add a function to ``MIGRATIONS``; never edit an old one.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casdesk.core.errors import CatalogError

if TYPE_CHECKING:
    from casdesk.core.project.stores import (
        CropsStore,
        LabelRecords,
        MaskRecords,
        PredictionsStore,
        QcRecords,
        RunsStore,
        SplitsStore,
        SuspectsStore,
        TileRows,
    )

APPLICATION_ID = 0x43415344  # "CASD": marks the SQLite file as a casdesk project
PROJECT_SUFFIX = ".casdesk"
DATA_SUFFIX = ".casdesk.d"
SENSORS = ("SAT", "UAV")
# What SQLite raises on a write to a read-only project (the CLI explains it in one line):
# code outside the project store catches it under this name instead of importing sqlite3.
DatabaseOperationalError = sqlite3.OperationalError


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


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Scene:
    id: int
    path: Path
    name: str
    crs: str | None
    transform: tuple[float, ...]
    width: int
    height: int
    bands: int
    dtype: str
    nodata: float | None
    sensor: str | None
    resolution_m: float | None
    subdataset: str | None
    acquired: str | None
    source: str | None
    licence: str | None


@dataclass(frozen=True)
class Tile:
    id: int
    name: str
    subdataset: str
    scene_id: int | None
    row_off: int | None
    col_off: int | None
    width: int
    height: int
    image_path: Path
    label_path: Path | None
    mask_path: Path | None
    label_pixels: int | None
    valid_pixels: int | None
    sensor: str | None
    modified: str


@dataclass(frozen=True)
class Label:
    id: int
    scene_id: int | None
    tile_id: int | None
    name: str
    geometry_px: str
    geometry_crs: str | None
    source: str
    attributes: dict[str, Any]
    modified: str


# --------------------------------------------------------------------------- catalog
def _sidecar(file: Path, suffix: str) -> Path:
    return file.with_name(file.name + suffix)


PROJECT_SIDECARS = ("", "-wal", "-shm", "-journal")


def is_project_file(path: str | Path) -> bool:
    """Whether ``path`` is a project database or one of SQLite's files beside it.

    Such a file must never be opened by anything but SQLite in a process that may hold a
    connection (GDAL reading it as a "raster", OGR as a vector, ``open()`` as a model file):
    closing that other descriptor drops the process's POSIX locks on the database (see
    :meth:`Catalog.open`)."""
    name = Path(path).name
    return any(name.endswith(PROJECT_SUFFIX + s) for s in PROJECT_SIDECARS)


def project_paths(path: str | Path) -> tuple[Path, Path]:
    """Return (project file, data folder) for a project path, adding ``.casdesk`` if absent."""
    p = Path(path).expanduser()
    if p.suffix != PROJECT_SUFFIX:
        p = p.with_name(p.name + PROJECT_SUFFIX)
    p = p.absolute()
    return p, p.with_name(p.name + ".d")


class Catalog:
    """An open project. Use :meth:`create` or :meth:`open`; close with :meth:`close` or ``with``.

    One connection per Catalog object; open one Catalog per thread (the GUI thread and each
    worker), as SQLite connections are not shared between threads.
    """

    def __init__(self, path: Path, db: sqlite3.Connection, readonly: bool = False):
        self.path = path
        self.data_dir = path.with_name(path.name + ".d")
        self.root = path.parent
        self.readonly = readonly
        self._db = db
        self._lock = threading.RLock()
        self._depth = 0

    # ---- opening
    @classmethod
    def create(cls, path: str | Path, exist_ok: bool = False) -> Catalog:
        file, data = project_paths(path)
        if file.exists():
            if exist_ok:
                return cls.open(file)
            raise CatalogError("a project already exists here", file, "open it, or pick another name")
        if not file.parent.is_dir():
            raise CatalogError("the folder does not exist", file.parent, "create it first")
        if not os.access(file.parent, os.W_OK):
            raise CatalogError("the folder is not writable", file.parent, "pick a writable folder")
        tmp = file.with_name(file.name + ".creating")
        tmp.unlink(missing_ok=True)
        db = sqlite3.connect(tmp)
        try:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute("PRAGMA foreign_keys = ON")
            cls._migrate(db, tmp)
            with db:
                db.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [("created", utc_now()), ("casdesk_version", _version())],
                )
        finally:
            db.close()
        os.replace(tmp, file)
        data.mkdir(exist_ok=True)
        return cls.open(file)

    @classmethod
    def open(cls, path: str | Path, readonly: bool = False) -> Catalog:
        """Open a project; ``readonly`` opens it with SQLite's ``mode=ro``.

        A project whose file or folder is not writable (an archive on a read-only share)
        opens read-only whatever ``readonly`` says, with ``immutable=1`` when SQLite could
        not create its shared-memory file there; writes then fail with "open read-only".

        The file is only ever touched through SQLite. On POSIX, closing *any* descriptor of
        a file drops every lock this process holds on it, so a plain ``open()``/``close()``
        of the project file beside a live connection (the GUI's) lets another process
        believe it is the last user, checkpoint and delete the WAL under the running app.
        SQLite's own VFS defers such closes, so the header checks run through a probe
        connection instead of Python's ``open()``.
        """
        file, _ = project_paths(path)
        if not file.exists():
            raise CatalogError("no such project file", file, "create it with `casdesk init`")
        if file.is_dir():
            raise CatalogError("this is a folder, not a casdesk project file", file,
                               "pass the NAME.casdesk file")
        writable = os.access(file, os.W_OK) and os.access(file.parent, os.W_OK)
        readonly = readonly or not writable
        immutable = not os.access(file.parent, os.W_OK) and not _sidecar(file, "-shm").exists()
        cls._probe(file, immutable)
        if readonly:
            uri = f"{file.as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
        else:
            uri = file.as_uri()
        try:
            db = sqlite3.connect(uri, uri=True, timeout=30.0, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA busy_timeout = 30000")
            if not readonly:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                db.close()
                raise CatalogError(
                    f"the project database is damaged ({check}); it was not modified",
                    file,
                    "restore it from a backup",
                )
            if not readonly:
                cls._migrate(db, file)
            else:
                cls._check_version(db, file)  # an older schema is read as it is
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"the project database cannot be read ({exc})", file) from exc
        cat = cls(file, db, readonly=readonly)
        if not readonly:
            cat.data_dir.mkdir(exist_ok=True)
        return cat

    @staticmethod
    def _probe(file: Path, immutable: bool) -> None:
        """Refuse a file that is not an intact casdesk database, without modifying it.

        Reads the header fields through a read-only SQLite connection (see :meth:`open` for
        why never through Python's ``open()``); the size comes from ``stat``.
        """
        uri = f"{file.as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
        try:
            probe = sqlite3.connect(uri, uri=True, timeout=30.0)
        except sqlite3.Error as exc:
            raise CatalogError(f"the project file cannot be opened ({exc})", file) from exc
        try:
            try:
                app_id = probe.execute("PRAGMA application_id").fetchone()[0]
                page_size = probe.execute("PRAGMA page_size").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                if "not a database" in str(exc):
                    raise CatalogError("not a casdesk project (not an SQLite database)", file) from exc
                raise CatalogError(
                    f"the project file is truncated or damaged; it was not modified ({exc})",
                    file,
                    "restore it from a backup",
                ) from exc
        finally:
            probe.close()
        size = file.stat().st_size
        if size < 100:
            raise CatalogError("not a casdesk project (not an SQLite database)", file)
        if size % page_size:
            raise CatalogError(
                "the project file is truncated or damaged; it was not modified",
                file,
                "restore it from a backup",
            )
        if app_id != APPLICATION_ID:
            raise CatalogError("not a casdesk project (an SQLite file of another program)", file)

    @staticmethod
    def _schema_version(db: sqlite3.Connection) -> int:
        row = db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'"
        ).fetchone()
        if row is None:
            return 0
        return int(db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)

    @classmethod
    def _check_version(cls, db: sqlite3.Connection, file: Path) -> int:
        version = cls._schema_version(db)
        if version > SCHEMA_VERSION:
            raise CatalogError(
                f"the project was written by a newer casdesk (schema {version} > {SCHEMA_VERSION})",
                file,
                "update casdesk to open it",
            )
        return version

    @classmethod
    def _migrate(cls, db: sqlite3.Connection, file: Path) -> None:
        version = cls._check_version(db, file)
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

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._schema_version(self._db)

    # ---- low level
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``); nested uses join the outer one."""
        if self.readonly:
            raise CatalogError("the project is open read-only", self.path)
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """Run a read query (or a write inside :meth:`transaction`)."""
        with self._lock:
            return self._db.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    @property
    def connection(self) -> sqlite3.Connection:
        return self._db

    # ---- stores: one per concept, the only SQL outside this module (casdesk.core.project.stores)
    @functools.cached_property
    def runs(self) -> RunsStore:
        from casdesk.core.project.stores import RunsStore

        return RunsStore(self)

    @functools.cached_property
    def predictions(self) -> PredictionsStore:
        from casdesk.core.project.stores import PredictionsStore

        return PredictionsStore(self)

    @functools.cached_property
    def splits(self) -> SplitsStore:
        from casdesk.core.project.stores import SplitsStore

        return SplitsStore(self)

    @functools.cached_property
    def label_records(self) -> LabelRecords:
        from casdesk.core.project.stores import LabelRecords

        return LabelRecords(self)

    @functools.cached_property
    def mask_records(self) -> MaskRecords:
        from casdesk.core.project.stores import MaskRecords

        return MaskRecords(self)

    @functools.cached_property
    def tile_rows(self) -> TileRows:
        from casdesk.core.project.stores import TileRows

        return TileRows(self)

    @functools.cached_property
    def qc(self) -> QcRecords:
        from casdesk.core.project.stores import QcRecords

        return QcRecords(self)

    @functools.cached_property
    def suspects(self) -> SuspectsStore:
        from casdesk.core.project.stores import SuspectsStore

        return SuspectsStore(self)

    @functools.cached_property
    def crops(self) -> CropsStore:
        from casdesk.core.project.stores import CropsStore

        return CropsStore(self)

    # ---- paths
    def store_path(self, path: str | Path) -> str:
        """Path as stored: relative (POSIX) to the project folder when inside it."""
        p = Path(path).absolute()
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return str(p)

    def resolve(self, stored: str | None) -> Path | None:
        if stored is None:
            return None
        p = Path(stored)
        return p if p.is_absolute() else self.root / p

    # ---- meta
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # ---- runs
    def claim_run(self, run_id: int) -> None:
        """Record that this process runs ``run_id`` (pid and host), so that a run whose
        process was killed can be told from a live one and marked ``interrupted``
        (:func:`casdesk.core.project.cleanup.mark_dead_runs`)."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET pid = ?, host = ? WHERE id = ?", (os.getpid(), socket.gethostname(), run_id))

    # ---- subdatasets
    def ensure_subdataset(self, name: str, **fields: Any) -> int:
        """Return the id of subdataset ``name``, creating it with ``fields`` if new.

        Fields of an existing subdataset that are NULL are filled from ``fields``.
        """
        allowed = {"sensor", "resolution_m", "region", "trigger", "source", "licence", "notes"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown subdataset fields: {sorted(unknown)}")
        if fields.get("sensor") not in (None, *SENSORS):
            raise CatalogError(f"sensor must be SAT or UAV, not {fields['sensor']!r}")
        with self.transaction() as db:
            row = db.execute("SELECT id FROM subdatasets WHERE name = ?", (name,)).fetchone()
            if row is None:
                cols = ["name", *fields]
                cur = db.execute(
                    f"INSERT INTO subdatasets({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    (name, *fields.values()),
                )
                return int(cur.lastrowid or 0)
            sid = int(row[0])
            for key, value in fields.items():
                if value is not None:
                    db.execute(
                        f"UPDATE subdatasets SET {key} = ? WHERE id = ? AND {key} IS NULL",
                        (value, sid),
                    )
            return sid

    def update_subdataset(self, name: str, **fields: Any) -> None:
        """Overwrite metadata of an existing subdataset (the user edited it)."""
        if not fields:
            return
        with self.transaction() as db:
            sets = ", ".join(f"{k} = ?" for k in fields)
            cur = db.execute(f"UPDATE subdatasets SET {sets} WHERE name = ?", (*fields.values(), name))
            if cur.rowcount == 0:
                raise CatalogError(f"no subdataset named {name!r}", self.path)

    def subdatasets(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query("SELECT * FROM subdatasets ORDER BY name")]

    # ---- scenes
    def add_scene(
        self,
        path: str | Path,
        *,
        crs: str | None,
        transform: Sequence[float],
        width: int,
        height: int,
        bands: int,
        dtype: str,
        nodata: float | None,
        sensor: str | None = None,
        resolution_m: float | None = None,
        subdataset: str | None = None,
        acquired: str | None = None,
        source: str | None = None,
        licence: str | None = None,
        name: str | None = None,
    ) -> int:
        if sensor not in (None, *SENSORS):
            raise CatalogError(f"sensor must be SAT or UAV, not {sensor!r}")
        p = Path(path)
        with self.transaction() as db:
            if name is None:
                name = self.unique_scene_name(p.stem)
            elif db.execute("SELECT 1 FROM scenes WHERE name = ?", (name,)).fetchone():
                raise CatalogError(f"a scene named {name!r} already exists", self.path,
                                   "pick another name")
            sid = (
                self.ensure_subdataset(subdataset, sensor=sensor, resolution_m=resolution_m)
                if subdataset
                else None
            )
            nodata_text = None if nodata is None else repr(float(nodata))
            cur = db.execute(
                "INSERT INTO scenes(path, name, crs, transform, width, height, bands, dtype, nodata,"
                " nodata_text, sensor, resolution_m, subdataset_id, acquired, source, licence, added)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.store_path(p),
                    name,
                    crs,
                    json.dumps([float(v) for v in transform]),
                    width,
                    height,
                    bands,
                    dtype,
                    None if nodata is None or nodata != nodata else float(nodata),
                    nodata_text,
                    sensor,
                    resolution_m,
                    sid,
                    acquired,
                    source,
                    licence,
                    utc_now(),
                ),
            )
            return int(cur.lastrowid or 0)

    def unique_scene_name(self, base: str) -> str:
        """``base``, or ``base-2``, ``base-3``, ... when a scene already has that name (tile
        names carry the scene name, so two scenes must never share one)."""
        taken = {r[0] for r in self.query("SELECT name FROM scenes WHERE name = ? OR name LIKE ?",
                                          (base, base.replace("%", "_") + "-%"))}
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        return name

    def _scene(self, row: sqlite3.Row) -> Scene:
        nodata = float(row["nodata_text"]) if row["nodata_text"] is not None else None
        return Scene(
            id=row["id"],
            path=self.resolve(row["path"]),  # type: ignore[arg-type]
            name=row["name"],
            crs=row["crs"],
            transform=tuple(json.loads(row["transform"])),
            width=row["width"],
            height=row["height"],
            bands=row["bands"],
            dtype=row["dtype"],
            nodata=nodata,
            sensor=row["sensor"],
            resolution_m=row["resolution_m"],
            subdataset=row["subdataset"],
            acquired=row["acquired"],
            source=row["source"],
            licence=row["licence"],
        )

    _SCENE_SQL = (
        "SELECT s.*, d.name AS subdataset FROM scenes s "
        "LEFT JOIN subdatasets d ON d.id = s.subdataset_id"
    )

    def scene(self, scene_id: int) -> Scene:
        row = self.execute(self._SCENE_SQL + " WHERE s.id = ?", (scene_id,)).fetchone()
        if row is None:
            raise CatalogError(f"no scene with id {scene_id}", self.path, "see `casdesk info`")
        return self._scene(row)

    def crop_state(self, scene_id: int) -> str | None:
        """``complete``, ``running`` or ``interrupted`` (resumable), None if never cropped
        (or the schema predates crop records)."""
        try:
            row = self.execute("SELECT state, pid, host FROM scene_crops WHERE scene_id = ?",
                               (scene_id,)).fetchone()
        except sqlite3.OperationalError:  # an older project opened read-only
            return None
        if row is None:
            return None
        if row[0] == "running" and row[1] is not None and row[2] == socket.gethostname():
            from casdesk.core.project.lock import pid_alive  # lock imports this module

            if row[1] != os.getpid() and not pid_alive(int(row[1])):
                return "interrupted"  # its process is gone (a reader cannot mark it)
        return str(row[0])

    def scenes(self) -> list[Scene]:
        return [self._scene(r) for r in self.query(self._SCENE_SQL + " ORDER BY s.id")]

    # ---- tiles
    def add_tiles(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert or replace tiles (keyed by subdataset + name); return their ids.

        Each row: name, subdataset, image_path, and optionally scene_id, row_off, col_off,
        width, height, label_path, mask_path, label_pixels, valid_pixels.
        """
        ids: list[int] = []
        now = utc_now()
        with self.transaction() as db:
            sub_ids: dict[str, int] = {}
            for r in rows:
                sub = r["subdataset"]
                if sub not in sub_ids:
                    sub_ids[sub] = self.ensure_subdataset(sub)
                values = (
                    r.get("scene_id"),
                    sub_ids[sub],
                    r["name"],
                    r.get("row_off"),
                    r.get("col_off"),
                    int(r["width"]),
                    int(r["height"]),
                    self.store_path(r["image_path"]),
                    None if r.get("label_path") is None else self.store_path(r["label_path"]),
                    None if r.get("mask_path") is None else self.store_path(r["mask_path"]),
                    r.get("label_pixels"),
                    r.get("valid_pixels"),
                    now,
                    now,
                )
                cur = db.execute(
                    "INSERT INTO tiles(scene_id, subdataset_id, name, row_off, col_off, width, height,"
                    " image_path, label_path, mask_path, label_pixels, valid_pixels, created, modified)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(subdataset_id, name) DO UPDATE SET"
                    " scene_id=excluded.scene_id, row_off=excluded.row_off, col_off=excluded.col_off,"
                    " width=excluded.width, height=excluded.height, image_path=excluded.image_path,"
                    " label_path=excluded.label_path, mask_path=excluded.mask_path,"
                    " label_pixels=excluded.label_pixels, valid_pixels=excluded.valid_pixels,"
                    " modified=excluded.modified"
                    " RETURNING id",
                    values,
                )
                ids.append(int(cur.fetchone()[0]))
        return ids

    def touch_tile(self, tile_id: int, **fields: Any) -> None:
        """Record that a tile's files changed (mask regenerated, ...); updates ``modified``."""
        allowed = {"label_path", "mask_path", "label_pixels", "valid_pixels"}
        if set(fields) - allowed:
            raise ValueError(f"unknown tile fields: {sorted(set(fields) - allowed)}")
        values = {
            k: (self.store_path(v) if k.endswith("_path") and v is not None else v)
            for k, v in fields.items()
        }
        sets = "".join(f", {k} = ?" for k in values)
        with self.transaction() as db:
            db.execute(
                f"UPDATE tiles SET modified = ?{sets} WHERE id = ?",
                (utc_now(), *values.values(), tile_id),
            )

    _TILE_SQL = (
        "SELECT t.*, d.name AS subdataset, COALESCE(s.sensor, d.sensor) AS sensor FROM tiles t"
        " JOIN subdatasets d ON d.id = t.subdataset_id"
        " LEFT JOIN scenes s ON s.id = t.scene_id"
    )

    def _tile(self, row: sqlite3.Row) -> Tile:
        return Tile(
            id=row["id"],
            name=row["name"],
            subdataset=row["subdataset"],
            scene_id=row["scene_id"],
            row_off=row["row_off"],
            col_off=row["col_off"],
            width=row["width"],
            height=row["height"],
            image_path=self.resolve(row["image_path"]),  # type: ignore[arg-type]
            label_path=self.resolve(row["label_path"]),
            mask_path=self.resolve(row["mask_path"]),
            label_pixels=row["label_pixels"],
            valid_pixels=row["valid_pixels"],
            sensor=row["sensor"],
            modified=row["modified"],
        )

    def tile(self, tile_id: int) -> Tile:
        row = self.execute(self._TILE_SQL + " WHERE t.id = ?", (tile_id,)).fetchone()
        if row is None:
            raise CatalogError(f"no tile with id {tile_id}", self.path)
        return self._tile(row)

    def tiles(
        self,
        *,
        subdataset: str | None = None,
        scene_id: int | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[Tile]:
        where: list[str] = []
        params: list[Any] = []
        if subdataset is not None:
            where.append("d.name = ?")
            params.append(subdataset)
        if scene_id is not None:
            where.append("t.scene_id = ?")
            params.append(scene_id)
        if ids is not None:
            where.append(f"t.id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        sql = self._TILE_SQL + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY t.id"
        return [self._tile(r) for r in self.query(sql, params)]

    def tile_count(self) -> int:
        return int(self.execute("SELECT COUNT(*) FROM tiles").fetchone()[0])

    def delete_tiles(self, *, scene_id: int | None = None) -> int:
        with self.transaction() as db:
            if scene_id is None:
                return db.execute("DELETE FROM tiles").rowcount
            return db.execute("DELETE FROM tiles WHERE scene_id = ?", (scene_id,)).rowcount

    # ---- labels
    def add_labels(
        self,
        labels: Sequence[dict[str, Any]],
        *,
        scene_id: int | None = None,
        tile_id: int | None = None,
        source: str = "imported",
        author: str | None = None,
    ) -> list[int]:
        """Insert label polygons. Each dict: geometry_px (WKT), optional geometry_crs, name,
        attributes (dict)."""
        now = utc_now()
        ids = []
        with self.transaction() as db:
            for lab in labels:
                cur = db.execute(
                    "INSERT INTO labels(scene_id, tile_id, name, geometry_px, geometry_crs, source,"
                    " attributes, created, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        scene_id,
                        tile_id,
                        lab.get("name") or "landslide",
                        lab["geometry_px"],
                        lab.get("geometry_crs"),
                        source,
                        json.dumps(lab.get("attributes") or {}),
                        now,
                        now,
                    ),
                )
                lid = int(cur.lastrowid or 0)
                ids.append(lid)
                db.execute(
                    "INSERT INTO label_edits(label_id, action, geometry_after, author, at)"
                    " VALUES (?, 'create', ?, ?, ?)",
                    (lid, lab["geometry_px"], author, now),
                )
        return ids

    def update_label(
        self,
        label_id: int,
        *,
        geometry_px: str | None = None,
        geometry_crs: str | None = None,
        name: str | None = None,
        author: str | None = None,
    ) -> None:
        now = utc_now()
        with self.transaction() as db:
            row = db.execute("SELECT geometry_px FROM labels WHERE id = ?", (label_id,)).fetchone()
            if row is None:
                raise CatalogError(f"no label with id {label_id}", self.path)
            db.execute(
                "UPDATE labels SET geometry_px = COALESCE(?, geometry_px),"
                " geometry_crs = COALESCE(?, geometry_crs), name = COALESCE(?, name),"
                " source = 'edited', modified = ? WHERE id = ?",
                (geometry_px, geometry_crs, name, now, label_id),
            )
            db.execute(
                "INSERT INTO label_edits(label_id, action, geometry_before, geometry_after, author, at)"
                " VALUES (?, 'update', ?, ?, ?, ?)",
                (label_id, row[0], geometry_px, author, now),
            )

    def delete_label(self, label_id: int, author: str | None = None) -> None:
        with self.transaction() as db:
            row = db.execute("SELECT geometry_px FROM labels WHERE id = ?", (label_id,)).fetchone()
            if row is None:
                return
            db.execute("DELETE FROM labels WHERE id = ?", (label_id,))
            db.execute(
                "INSERT INTO label_edits(label_id, action, geometry_before, author, at)"
                " VALUES (?, 'delete', ?, ?, ?)",
                (label_id, row[0], author, utc_now()),
            )

    def labels(self, *, scene_id: int | None = None, tile_id: int | None = None) -> list[Label]:
        where: list[str] = []
        params: list[Any] = []
        if scene_id is not None:
            where.append("scene_id = ?")
            params.append(scene_id)
        if tile_id is not None:
            where.append("tile_id = ?")
            params.append(tile_id)
        sql = "SELECT * FROM labels" + (" WHERE " + " AND ".join(where) if where else "")
        return [
            Label(
                id=r["id"],
                scene_id=r["scene_id"],
                tile_id=r["tile_id"],
                name=r["name"],
                geometry_px=r["geometry_px"],
                geometry_crs=r["geometry_crs"],
                source=r["source"],
                attributes=json.loads(r["attributes"] or "{}"),
                modified=r["modified"],
            )
            for r in self.query(sql + " ORDER BY id", params)
        ]

    # ---- summary
    def summary(self) -> dict[str, Any]:
        """Scenes, subdatasets with tile counts and labelled fraction, for `casdesk info`."""
        subs = []
        for r in self.query(
            "SELECT d.name, d.sensor, d.resolution_m, d.region,"
            " COUNT(t.id) AS tiles,"
            " SUM(CASE WHEN t.label_pixels > 0 THEN 1 ELSE 0 END) AS labelled_tiles,"
            " SUM(t.label_pixels) AS label_pixels, SUM(t.valid_pixels) AS valid_pixels"
            " FROM subdatasets d LEFT JOIN tiles t ON t.subdataset_id = d.id"
            " GROUP BY d.id ORDER BY d.name"
        ):
            valid = r["valid_pixels"] or 0
            subs.append(
                {
                    "name": r["name"],
                    "sensor": r["sensor"],
                    "resolution_m": r["resolution_m"],
                    "region": r["region"],
                    "tiles": r["tiles"],
                    "labelled_tiles": r["labelled_tiles"] or 0,
                    "labelled_fraction": (r["label_pixels"] or 0) / valid if valid else 0.0,
                }
            )
        scenes = [
            {
                "id": s.id,
                "name": s.name,
                "path": str(s.path),
                "size": [s.width, s.height],
                "bands": s.bands,
                "dtype": s.dtype,
                "crs": _short_crs(s.crs),
                "sensor": s.sensor,
                "subdataset": s.subdataset,
                "labels": int(
                    self.execute("SELECT COUNT(*) FROM labels WHERE scene_id = ?", (s.id,)).fetchone()[0]
                ),
                "tiles": int(
                    self.execute("SELECT COUNT(*) FROM tiles WHERE scene_id = ?", (s.id,)).fetchone()[0]
                ),
                "crop": self.crop_state(s.id),
            }
            for s in self.scenes()
        ]
        total_valid = sum(
            (r[1] or 0) for r in self.query("SELECT 1, SUM(valid_pixels) FROM tiles")
        )
        total_label = sum((r[1] or 0) for r in self.query("SELECT 1, SUM(label_pixels) FROM tiles"))
        return {
            "project": str(self.path),
            "schema_version": self.schema_version,
            "scenes": scenes,
            "subdatasets": subs,
            "tiles": self.tile_count(),
            "labelled_fraction": total_label / total_valid if total_valid else 0.0,
        }


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


def _short_crs(wkt: str | None) -> str | None:
    if not wkt:
        return None
    try:
        from rasterio.crs import CRS

        crs = CRS.from_wkt(wkt)
        epsg = crs.to_epsg()
        return f"EPSG:{epsg}" if epsg else crs.to_string()[:60]
    except Exception:  # noqa: BLE001 - a display string only
        return wkt[:60]


def _version() -> str:
    from casdesk import __version__

    return __version__
