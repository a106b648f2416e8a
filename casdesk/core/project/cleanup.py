"""Self-cleaning after a crash: leftovers of processes that are gone.

A killed export leaves a hidden ``.OUT.partial-<pid>`` folder, a killed crop or prediction
``.NAME.<pid>-<thread>.tmp`` files, a killed training run a ``running`` row that never
finishes, a killed crop a ``running`` crop lock. Every writing command (and the app when it
opens a project) calls :func:`cleanup_project` first: what belongs to a process that is no
longer alive on this machine is removed or marked; what belongs to a live process (another
window, a crop running in a terminal) is left alone.

Leftovers are recognised by name only (hidden, ``.partial-<pid>`` or ``.tmp``), never by
reading a file, so nothing here opens the project database outside SQLite.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from casdesk.core.project.catalog import Catalog, utc_now

log = logging.getLogger(__name__)

STARTED = time.time()
"""When this process started using casdesk: a leftover without a pid in its name that is
older than this (with a margin, :data:`NO_PID_AGE_S`) belongs to no running write."""
NO_PID_AGE_S = 600.0

_PARTIAL = re.compile(r"^\..+\.partial-(\d+)$")
_TMP = re.compile(r"^\..+\.tmp$")
_PID_MAX = 1 << 22  # Linux pid_max ceiling; thread idents are far larger


@dataclass
class Cleaned:
    """What :func:`cleanup_project` did (for a log line; empty when nothing was stale)."""

    files: list[Path] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)
    crops: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.files or self.runs or self.crops)

    def describe(self) -> str:
        parts = []
        if self.files:
            parts.append(f"removed {len(self.files)} leftover(s) of killed processes")
        if self.runs:
            parts.append(f"marked run(s) {', '.join(map(str, self.runs))} interrupted (their process is gone)")
        if self.crops:
            parts.append(f"crop of scene(s) {', '.join(map(str, self.crops))} was interrupted: crop again to resume")
        return "; ".join(parts)


def _alive(pid: int) -> bool:
    from casdesk.core.project.lock import pid_alive

    return pid == os.getpid() or pid_alive(pid)


def _owner_pid(name: str) -> int | None:
    """The writer's pid: ``.OUT.partial-PID``, or the first of the numbers that end a
    ``.NAME.PID.THREAD[.SEQ].tmp`` / ``.NAME.PID-THREAD.tmp`` name."""
    m = _PARTIAL.match(name)
    if m:
        return int(m.group(1))
    numbers: list[str] = []
    for token in reversed(name[1:-len(".tmp")].split(".")):
        parts = token.split("-")
        if not all(p.isdigit() for p in parts):
            break
        numbers = parts + numbers
    if numbers and 0 < int(numbers[0]) < _PID_MAX:
        return int(numbers[0])
    return None


def is_stale(path: Path) -> bool:
    """A ``.partial-<pid>`` / ``.tmp`` leftover whose process is gone (or, without a pid in
    its name, that is older than this process)."""
    name = path.name
    if not name.startswith(".") or not (_PARTIAL.match(name) or _TMP.match(name)):
        return False
    pid = _owner_pid(name)
    if pid is not None:
        return not _alive(pid)
    try:
        return path.lstat().st_mtime < STARTED - NO_PID_AGE_S
    except OSError:
        return False


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.debug("cannot remove the leftover %s: %s", path, exc)
        return False
    return True


def remove_stale_files(folder: Path, recursive: bool = False) -> list[Path]:
    """Remove stale leftovers directly in ``folder`` (or below it); return what went."""
    removed: list[Path] = []
    stack = [os.fspath(folder)]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:  # names only (d_type): no stat, no Path per tile file
            if entry.name.startswith("."):
                path = Path(entry.path)
                if is_stale(path) and _remove(path):
                    removed.append(path)
            elif recursive and entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return removed


def mark_dead_runs(catalog: Catalog) -> list[int]:
    """Runs still ``running`` whose process is gone become ``interrupted``, with the model
    path when the run folder holds a ``model.pt``."""
    host = socket.gethostname()
    dead = []
    for r in catalog.query("SELECT id, pid, host, out_dir FROM runs WHERE status = 'running' AND pid IS NOT NULL"):
        if (r["host"] or host) != host or _alive(int(r["pid"])):
            continue
        model = Path(r["out_dir"]) / "model.pt" if r["out_dir"] else None
        dead.append((r["id"], str(model) if model is not None and model.exists() else None))
    if dead:
        with catalog.transaction() as db:
            for run_id, model_file in dead:
                db.execute(
                    "UPDATE runs SET status = 'interrupted', finished = COALESCE(finished, ?),"
                    " model_path = COALESCE(?, model_path) WHERE id = ? AND status = 'running'",
                    (utc_now(), model_file, run_id),
                )
    return [d[0] for d in dead]


def mark_dead_crops(catalog: Catalog) -> list[int]:
    """Crop locks left ``running`` by a dead process become ``interrupted`` (resumable)."""
    host = socket.gethostname()
    dead = [
        r["scene_id"]
        for r in catalog.query("SELECT scene_id, pid, host FROM scene_crops WHERE state = 'running'")
        if (r["host"] or host) == host and r["pid"] is not None and r["pid"] != os.getpid() and not _alive(r["pid"])
    ]
    if dead:
        with catalog.transaction() as db:
            db.executemany("UPDATE scene_crops SET state = 'interrupted', pid = NULL WHERE scene_id = ?"
                           " AND state = 'running'", [(s,) for s in dead])
    return dead


def cleanup_project(catalog: Catalog) -> Cleaned:
    """Remove stale leftovers in the project's folders and mark dead runs and crops.

    Leaves the database alone on a project open read-only. Never fails: a cleanup problem is logged at
    debug level and the command goes on.
    """
    out = Cleaned()
    if os.access(catalog.root, os.W_OK):  # files go even when a reading command opened it read-only
        with contextlib.suppress(OSError):
            out.files += remove_stale_files(catalog.root)
        if catalog.data_dir.is_dir():
            out.files += remove_stale_files(catalog.data_dir, recursive=True)
    if not catalog.readonly:
        try:
            out.runs = mark_dead_runs(catalog)
            out.crops = mark_dead_crops(catalog)
        except Exception as exc:  # noqa: BLE001 - cleanup must never stop the command
            log.debug("cleanup of %s: %s", catalog.path, exc)
    if out:
        log.info("%s: %s", catalog.path.name, out.describe())
    return out
