"""An advisory lock file so two casdesk windows do not edit one project at once.

SQLite (WAL) keeps the catalog consistent under concurrent writers, but two windows on one
project would each keep their own view (QC queue, editor autosave) and silently undo each
other's work. So the GUI takes ``<project>.casdesk.lock`` when it opens a project and, when
another live casdesk holds it, offers to open the project read-only instead.

The lock file is JSON (pid, host, user, started), written atomically. It is *advisory*:
the CLI and batch jobs do not take it (they are single, short writers that SQLite
serialises). A lock whose pid is no longer alive on the same host is stale (the holder
crashed or was killed) and is taken over silently. A lock from another host (a project on
a network share) cannot be checked and counts as live.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import socket
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from casdesk.core.errors import CasdeskError
from casdesk.core.project.catalog import project_paths, utc_now

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"

# Lock files this process holds. A second window in the same process must be told the
# project is in use, so "held by our own pid" is not enough to count as ours.
_held: set[Path] = set()
_held_guard = threading.Lock()


@dataclass(frozen=True)
class LockInfo:
    """Who holds a project: shown to the user ("in use by alice on ws-12 since ...")."""

    pid: int
    host: str
    user: str
    started: str

    def describe(self) -> str:
        return f"{self.user} on {self.host} (process {self.pid}, since {self.started})"


class ProjectLockedError(CasdeskError):
    """Another live casdesk holds the project's lock; the GUI offers read-only instead."""

    def __init__(self, project: Path, holder: LockInfo | None):
        self.holder = holder
        who = holder.describe() if holder is not None else "another program (the lock cannot be written)"
        super().__init__(f"the project is open in another casdesk: {who}", project,
                         "open it read-only, or close the other window first")


def lock_path(project: str | Path) -> Path:
    """``/x/p.casdesk`` -> ``/x/p.casdesk.lock`` (beside the project, visible to every window)."""
    file, _ = project_paths(project)
    return file.with_name(file.name + LOCK_SUFFIX)


def _host() -> str:
    return socket.gethostname()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (never signals it)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would *terminate* the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        try:
            code = ctypes.c_ulong()
            ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
            return bool(ok) and code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _read(path: Path) -> LockInfo | None:
    """The lock's content, or None when absent or unreadable (a half-written or foreign file
    must not keep a project locked forever)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockInfo(int(data["pid"]), str(data["host"]), str(data["user"]), str(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _is_live(info: LockInfo, path: Path) -> bool:
    if info.host != _host():
        return True  # cannot check another machine's processes
    if info.pid == os.getpid():
        return path in _held  # our pid but not held by us: a dead holder's reused pid
    return pid_alive(info.pid)


def holder(project: str | Path) -> LockInfo | None:
    """Who holds the project now, or None when nobody does (no lock, or a stale one)."""
    path = lock_path(project)
    info = _read(path)
    if info is None or not _is_live(info, path):
        return None
    return info


class Lock:
    """A held project lock; :meth:`release` it when the project closes (also ``with``)."""

    def __init__(self, path: Path, info: LockInfo):
        self.path = path
        self.info = info
        self._released = False

    def release(self) -> None:
        """Remove the lock file if it is still ours (never another window's lock)."""
        if self._released:
            return
        self._released = True
        with _held_guard:
            _held.discard(self.path)
        if _read(self.path) == self.info:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(project: str | Path) -> Lock | None:
    """Take the project's lock; None when another live casdesk holds it or it cannot be
    written (read-only folder): the caller then opens the project read-only.

    Creation is exclusive (hard link of a complete temporary file), so two windows opening
    at the same moment cannot both win; a stale lock is replaced atomically.
    """
    path = lock_path(project)
    info = LockInfo(os.getpid(), _host(), _user(), utc_now())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(json.dumps(asdict(info)), encoding="utf-8")
    except OSError as exc:
        log.warning("cannot write the lock file %s (%s)", path, exc.strerror or exc)
        return None
    try:
        with _held_guard:
            try:
                os.link(tmp, path)
            except FileExistsError:
                current = _read(path)
                if current is not None and _is_live(current, path):
                    return None
                log.info("taking over a stale lock %s (%s)", path, current and current.describe())
                os.replace(tmp, path)
            except OSError:  # no hard links here (some network or FAT file systems)
                if (current := _read(path)) is not None and _is_live(current, path):
                    return None
                os.replace(tmp, path)
            if _read(path) != info:  # another window replaced the same stale lock first
                return None
            _held.add(path)
    except OSError as exc:
        log.warning("cannot write the lock file %s (%s)", path, exc.strerror or exc)
        return None
    finally:
        tmp.unlink(missing_ok=True)
    return Lock(path, info)

