"""Opening a project file, and the plumbing every read and write of the catalog goes through.

A project is one SQLite file (``NAME.casdesk``) plus a data folder beside it
(``NAME.casdesk.d``). The connection runs in WAL mode so a reader (the GUI) and a writer (a
job) can use it at once; every write happens in a transaction (``with
catalog.transaction():``, which joins an outer one when nested). Paths are stored relative
to the project folder when they are inside it.

:class:`ProjectConnection` is the base of :class:`~casdesk.core.project.catalog.Catalog`:
it creates, probes, opens (migrating the schema, :mod:`casdesk.core.project.schema`) and
closes the file, and holds the lock, the transactions and the raw SQL entry points
(:meth:`~ProjectConnection.execute`, :meth:`~ProjectConnection.query`). Raw SQL is for the
project store alone (this package); ``tests/core/test_store_boundary.py`` fails when code
elsewhere in casdesk calls them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

from casdesk.core.errors import CatalogError
from casdesk.core.project.schema import (
    APPLICATION_ID,
    check_schema_version,
    migrate,
    read_schema_version,
    utc_now,
)

PROJECT_SUFFIX = ".casdesk"
DATA_SUFFIX = ".casdesk.d"
# What SQLite raises on a write to a read-only project (the CLI explains it in one line):
# code outside the project store catches it under this name instead of importing sqlite3.
DatabaseOperationalError = sqlite3.OperationalError


def _sidecar(file: Path, suffix: str) -> Path:
    return file.with_name(file.name + suffix)


PROJECT_SIDECARS = ("", "-wal", "-shm", "-journal")


def is_project_file(path: str | Path) -> bool:
    """Whether ``path`` is a project database or one of SQLite's files beside it.

    Such a file must never be opened by anything but SQLite in a process that may hold a
    connection (GDAL reading it as a "raster", OGR as a vector, ``open()`` as a model file):
    closing that other descriptor drops the process's POSIX locks on the database (see
    :meth:`ProjectConnection.open`)."""
    name = Path(path).name
    return any(name.endswith(PROJECT_SUFFIX + s) for s in PROJECT_SIDECARS)


# ---- the integrity check, once per file while the process has it open
#
# ``PRAGMA quick_check`` reads the whole file (~60 ms of CPU at 20k tiles, partly holding the
# GIL), and every worker thread opens its own connection. A file is checked when this process
# opens it first; further connections to the same file skip the check while at least one
# connection of this process that checked it, or skipped it, is still open. The file is
# identified by (st_dev, st_ino), read with ``os.stat`` only (never ``open()``: see
# :meth:`ProjectConnection.open`) before and after SQLite opened it: while one of our
# connections keeps the file open, its inode cannot be freed and reused by another file, so
# the identity is exact; a file replaced on disk (``os.replace``, a restored backup) has
# another inode and is checked again. When the last connection closes (or is collected), the
# record goes: the next open checks again.
_FileId = tuple[int, int]
_checked_lock = threading.Lock()
_checked: dict[_FileId, int] = {}  # identity of a checked file -> live connections to it


def _file_id(file: Path) -> _FileId | None:
    try:
        st = os.stat(file)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _hold_if_checked(ident: _FileId | None) -> bool:
    """Count one more connection to ``ident`` if it was checked and is still held open."""
    if ident is None:
        return False
    with _checked_lock:
        if _checked.get(ident, 0) > 0:
            _checked[ident] += 1
            return True
    return False


def _hold_checked(ident: _FileId) -> None:
    """Record one connection to a file whose check has just passed."""
    with _checked_lock:
        _checked[ident] = _checked.get(ident, 0) + 1


def _release_checked(ident: _FileId) -> None:
    with _checked_lock:
        left = _checked.get(ident, 0) - 1
        if left > 0:
            _checked[ident] = left
        else:
            _checked.pop(ident, None)


def _quick_check(db: sqlite3.Connection) -> str:
    """SQLite's ``PRAGMA quick_check``: ``"ok"`` or the first problem found."""
    return str(db.execute("PRAGMA quick_check").fetchone()[0])


def project_paths(path: str | Path) -> tuple[Path, Path]:
    """Return (project file, data folder) for a project path, adding ``.casdesk`` if absent."""
    p = Path(path).expanduser()
    if p.suffix != PROJECT_SUFFIX:
        p = p.with_name(p.name + PROJECT_SUFFIX)
    p = p.absolute()
    return p, p.with_name(p.name + ".d")


class ProjectConnection:
    """One open project file: its connection, lock and transactions, its paths and its
    ``meta`` table. Use :meth:`create` or :meth:`open`; close with :meth:`close` or ``with``.

    One connection per object; open one per thread (the GUI thread and each worker), as
    SQLite connections are not shared between threads.
    """

    def __init__(self, path: Path, db: sqlite3.Connection, readonly: bool = False):
        self.path = path
        self.data_dir = path.with_name(path.name + ".d")
        self.root = path.parent
        self.readonly = readonly
        self._db = db
        self._lock = threading.RLock()
        self._depth = 0
        # Releases this connection's hold on the "file already checked" record (open()).
        self._checked_hold: weakref.finalize[Any, Any] | None = None

    # ---- opening
    @classmethod
    def create(cls, path: str | Path, exist_ok: bool = False) -> Self:
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
            migrate(db, tmp)
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
    def open(cls, path: str | Path, readonly: bool = False) -> Self:
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
        before = _file_id(file)
        held: _FileId | None = None
        try:
            db = sqlite3.connect(uri, uri=True, timeout=30.0, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA busy_timeout = 30000")
            if not readonly:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
            # The file SQLite opened (it holds it now): the same before and after, else check.
            ident = _file_id(file)
            if ident is not None and ident == before and _hold_if_checked(ident):
                held = ident
            else:
                check = _quick_check(db)
                if check != "ok":
                    db.close()
                    raise CatalogError(
                        f"the project database is damaged ({check}); it was not modified",
                        file,
                        "restore it from a backup",
                    )
                if ident is not None and ident == before:
                    _hold_checked(ident)
                    held = ident
            if not readonly:
                migrate(db, file)
            else:
                check_schema_version(db, file)  # an older schema is read as it is
        except sqlite3.DatabaseError as exc:
            if held is not None:
                _release_checked(held)
            raise CatalogError(f"the project database cannot be read ({exc})", file) from exc
        except BaseException:
            if held is not None:
                _release_checked(held)
            raise
        cat = cls(file, db, readonly=readonly)
        if held is not None:
            cat._checked_hold = weakref.finalize(cat, _release_checked, held)
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

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        if self._checked_hold is not None:
            self._checked_hold()  # once only, like the finalizer it is

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return read_schema_version(self._db)

    # ---- low level
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``); nested uses join the outer one.

        Outside the project store (this package) it is a unit of work only: ``with
        catalog.transaction():`` makes several store calls atomic; the connection it yields
        is for the stores' SQL (``tests/core/test_store_boundary.py``)."""
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
        """Run a read query (or a write inside :meth:`transaction`). Raw SQL: for the
        project store only (this package), never called from elsewhere in casdesk."""
        with self._lock:
            return self._db.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """All rows of a read query. Raw SQL: for the project store only, like :meth:`execute`."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection itself (the project store only)."""
        return self._db

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


def _version() -> str:
    from casdesk import __version__

    return __version__
