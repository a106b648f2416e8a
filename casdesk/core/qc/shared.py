"""One QC table per project, shared by every view of the process.

The QC panel, the browser, the map and training's "kept tiles" all count with the same
:class:`~casdesk.core.qc.table.QCTable`. Loading it reads every metric row of the project
(about 250 ms per 20,000 tiles); before this module each view loaded its own copy, three
times when a project opened and again whenever the rules changed. :func:`shared_table`
loads it once and hands the same table to every caller until the project's QC rows change.

Whether they changed is asked of the project file itself (:meth:`QcRecords.fingerprint`,
about 10 ms): a write by this process, by a worker or by the command line on the same
project is seen alike, and no view depends on having heard an event to count right.

The shared table is read-only: its arrays are marked unwritable, so a caller that changes
one in place fails loudly instead of changing what every other view shows. A view that
keeps a table up to date itself (the QC panel during a scan) takes :meth:`QCTable.copy`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from casdesk.core.project.catalog import Catalog
from casdesk.core.qc.detectors import METRICS
from casdesk.core.qc.table import QCTable, load_table

KEEP_PROJECTS = 2
"""Tables kept for this many projects (the most recently used)."""


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    key: tuple[Any, ...] | None = None
    table: QCTable | None = None
    loads: int = 0


_entries: OrderedDict[Path, _Entry] = OrderedDict()
_entries_lock = threading.Lock()


def _entry(path: Path) -> _Entry:
    with _entries_lock:
        entry = _entries.get(path)
        if entry is None:
            entry = _entries[path] = _Entry()
            while len(_entries) > KEEP_PROJECTS:
                _entries.popitem(last=False)
        _entries.move_to_end(path)
        return entry


def _key(catalog: Catalog) -> tuple[Any, ...]:
    versions = tuple(sorted((name, m.version) for name, m in METRICS.items()))
    return (catalog.qc.fingerprint(), versions)


def _freeze(table: QCTable) -> None:
    arrays = [table.tile_ids, table.names, table.subdataset_codes, table.sensor_codes, table.manual,
              table.computed, table.stale, *table.metrics.values(), *(table.measured or {}).values()]
    for array in arrays:
        if isinstance(array, np.ndarray):
            array.flags.writeable = False


def shared_table(catalog: Catalog) -> QCTable:
    """The project's QC table as stored now, loaded at most once per change of the
    project's QC rows. Thread-safe: callers that ask while it loads wait for that one load.
    Read-only (take :meth:`QCTable.copy` to change it). Run it off the GUI thread."""
    entry = _entry(Path(catalog.path).resolve())
    with entry.lock:
        key = _key(catalog)  # read before the table: a write in between costs a reload, never a stale table
        if entry.table is None or entry.key != key:
            table = load_table(catalog)
            _freeze(table)
            entry.table, entry.key = table, key
            entry.loads += 1
        return entry.table


def loads(path: str | Path) -> int:
    """How many times :func:`shared_table` loaded this project's table (tests, benchmarks)."""
    with _entries_lock:
        entry = _entries.get(Path(path).resolve())
    return 0 if entry is None else entry.loads


def forget(path: str | Path | None = None) -> None:
    """Drop the kept table of a project (all projects when None): a project was closed."""
    with _entries_lock:
        if path is None:
            _entries.clear()
        else:
            _entries.pop(Path(path).resolve(), None)
