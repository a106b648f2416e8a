"""Measuring tiles: every registered metric once per tile, in worker processes over every
core, each file read once, results written in large transactions.

A value is recomputed only when the tile was modified after it was computed or the
metric's version changed.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Generator, Iterable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from casdesk.core.errors import CasdeskError
from casdesk.core.jobs import CancelToken, Progress
from casdesk.core.project.catalog import Catalog, Tile
from casdesk.core.qc.detectors import METRICS, load_tile
from casdesk.core.qc.model import QCError
from casdesk.core.qc.stretch import limits_for

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- computing
def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _is_fresh(computed: str, modified: str) -> bool:
    """A value is fresh when computed after the tile's last modification. Projects written
    before timestamps had milliseconds store whole seconds: a value computed within that
    second counts as stale."""
    c, m = _parse_time(computed), _parse_time(modified)
    if "." not in modified:
        m += timedelta(seconds=1)
    return c >= m


def _now_precise() -> str:
    """UTC with microseconds: several tiles are measured per second."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


SLOW_METRICS = ("seam_score",)
"""Metrics measured in a second pass over the tiles, after every other metric of every
tile is stored (the seam costs about 15 times the rest: the other rules' sliders count
every tile within seconds, the seam rule's tiles show "pending" until it is measured)."""
MASK_FREE_METRICS = frozenset({"fill_fraction", "cloud_fraction", "seam_score", "blur_score", "valid_fraction"})
"""Metrics that do not look at the landslide mask: a pass computing only these does not
read it."""


def measure_tile(tile: Tile, names: Sequence[str], display_limits: np.ndarray | None = None) -> dict[str, float]:
    """All requested metrics of one tile. A tile whose pixels cannot be read has no usable
    footprint: fill 1, valid 0, other metrics NaN (so the fill rule rejects it). The mask is
    read only when a metric may need it (not all in :data:`MASK_FREE_METRICS`).
    ``display_limits``: the stretch of the tile's scene when it is not 8-bit
    (:func:`casdesk.core.qc.stretch.limits_for`)."""
    mask_path = None if MASK_FREE_METRICS.issuperset(names) else tile.mask_path
    try:
        data = load_tile(tile.image_path, mask_path, tile.sensor, display_limits=display_limits)
    except CasdeskError as exc:
        log.warning("QC: %s", exc)
        out = {n: math.nan for n in names}
        out.update({k: v for k, v in (("fill_fraction", 1.0), ("valid_fraction", 0.0)) if k in out})
        return out
    out = {}
    for name in names:
        try:
            out[name] = float(METRICS[name].func(data))
        except Exception:  # noqa: BLE001 - one broken plug-in metric must not stop a scan
            log.exception("QC metric %s failed on tile %s", name, tile.image_path)
            out[name] = math.nan
    return out


def _stale(catalog: Catalog, tiles: Sequence[Tile], names: Sequence[str]) -> list[tuple[Tile, list[str]]]:
    stored: dict[tuple[int, str], tuple[int, str]] = {}
    for tid, metric, version, computed in catalog.qc.metric_stamps():
        stored[(tid, metric)] = (version, computed)
    todo = []
    for tile in tiles:
        need = []
        for name in names:
            s = stored.get((tile.id, name))
            if s is None or s[0] != METRICS[name].version or not _is_fresh(s[1], tile.modified):
                need.append(name)
        if need:
            todo.append((tile, need))
    return todo


PROCESS_MIN_TILES = 64
"""Scans of fewer tiles run in threads (a process pool costs about a second to start)."""
CHUNK = 16
"""Tiles per task sent to a worker process (fewer round trips)."""
WORKER_HEAP_KEEP = 64 << 20
"""Bytes of freed memory a worker process keeps for the next tiles (see :func:`_init_worker`)."""
FLUSH_TILES = 2048
FLUSH_SECONDS = 1.0
"""Results are written in one transaction per this many tiles or seconds, whichever first."""


def _measure_chunk(
    items: list[tuple[Tile, list[str]]], limits: dict[int, np.ndarray] | None = None
) -> list[tuple[int, dict[str, float]]]:
    """A worker's task: measure a few tiles (each file read once; GDAL opens them without
    listing their folder: casdesk.core.raster.io's default). One rasterio environment for
    the chunk: without it every open and read sets up and tears down its own (about
    0.2 ms per tile). ``limits``: scene id -> display stretch of the chunk's scenes that are
    not 8-bit."""
    import rasterio

    limits = limits or {}
    with rasterio.Env():
        return [
            (tile.id, measure_tile(tile, need, None if tile.scene_id is None else limits.get(tile.scene_id)))
            for tile, need in items
        ]


def _init_worker() -> None:
    """Worker processes: one OpenCV thread each (the pool already uses every core), and
    freed memory kept for the next tile (:func:`keep_freed_memory`)."""
    import cv2

    cv2.setNumThreads(1)
    keep_freed_memory()


def keep_freed_memory() -> None:
    """glibc gives the freed top of the heap back to the system (above 128 KiB by default)
    and serves large arrays from fresh mappings: every tile's arrays (a few MB) were then
    mapped and page-faulted in again, about 800 faults and 0.9 ms per 512 px tile, 25 % of
    a scan without the seam. A worker keeps up to :data:`WORKER_HEAP_KEEP` instead. Only
    where the C library has ``mallopt`` (glibc); elsewhere nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_trim_threshold, WORKER_HEAP_KEEP)
    mallopt(m_mmap_threshold, WORKER_HEAP_KEEP // 2)


def _phases(todo: list[tuple[Tile, list[str]]]) -> list[list[tuple[Tile, list[str]]]]:
    """The scan's passes: every metric but :data:`SLOW_METRICS` first, then those (each
    pass only the tiles that need one of its metrics)."""
    fast = [(t, [n for n in need if n not in SLOW_METRICS]) for t, need in todo]
    slow = [(t, [n for n in need if n in SLOW_METRICS]) for t, need in todo]
    return [p for p in ([(t, n) for t, n in fast if n], [(t, n) for t, n in slow if n]) if p]


def compute_metrics(
    catalog: Catalog | str | Path,
    *,
    metrics: Sequence[str] | None = None,
    workers: int | None = None,
    cancel: CancelToken | None = None,
    tile_ids: Iterable[int] | None = None,
    force: bool = False,
    processes: bool | None = None,
) -> Generator[Progress, None, int]:
    """Compute missing or stale metrics; yield progress; return the number of tiles measured.

    Pass a path when running in a worker thread (the job opens its own connection).
    ``workers`` (default: every core) processes measure chunks of :data:`CHUNK` tiles; the
    results are written in large transactions (:data:`FLUSH_TILES` tiles or
    :data:`FLUSH_SECONDS`), so a cancelled scan keeps what it finished. Two passes: every
    metric but :data:`SLOW_METRICS` (the seam) for every tile first, each file read once,
    then the slow ones (each image read again), so the fast metrics of every tile are
    stored before the first seam value. Progress counts the passes' tiles
    (``total``: tiles of the first pass plus tiles of the second); each event carries
    ``data["tile_ids"]``: the tiles written since the previous one (the GUI recounts with
    them, so its counts cover the tiles done so far) and ``data["phase"]`` (the pass: 0 or
    1); the message counts the tiles of the pass ("metrics: 800/5280 tiles", then
    "seam_score: 40/5280 tiles"). Small
    scans (fewer than :data:`PROCESS_MIN_TILES`) or ``processes=False`` use threads.
    """
    own = not isinstance(catalog, Catalog)
    cat = catalog if isinstance(catalog, Catalog) else Catalog.open(catalog)
    try:
        names = list(metrics) if metrics else list(METRICS)
        unknown = [n for n in names if n not in METRICS]
        if unknown:
            raise QCError(f"unknown QC metric(s) {', '.join(unknown)}", hint=f"known: {', '.join(METRICS)}")
        ids = None if tile_ids is None else {int(t) for t in tile_ids}
        tiles = cat.tiles() if ids is None else [t for t in cat.tiles() if t.id in ids]
        todo = [(t, list(names)) for t in tiles] if force else _stale(cat, tiles, names)
        phases = _phases(todo)
        total = sum(len(p) for p in phases)
        stretch = limits_for(cat, [t for t, _ in todo])  # one stretch per scene that is not 8-bit
        yield Progress(0, total, f"{len(todo)} tiles to measure")
        if not total:
            return 0
        n_workers = max(1, workers or os.cpu_count() or 1)
        use_processes = (len(todo) >= PROCESS_MIN_TILES and n_workers > 1) if processes is None else processes
        done = 0
        measured: set[int] = set()
        buffer: list[tuple[int, str, int, float | None, str]] = []
        buffer_ids: list[int] = []
        last_flush = time.monotonic()

        def flush() -> list[int]:
            nonlocal buffer, buffer_ids, last_flush
            if buffer:
                cat.qc.put_metrics(buffer)
            flushed, buffer, buffer_ids = buffer_ids, [], []
            last_flush = time.monotonic()
            return flushed

        def collect(results: list[tuple[int, dict[str, float]]]) -> None:
            nonlocal done
            stamp = _now_precise()
            for tid, values in results:
                for name, value in values.items():
                    v = None if math.isnan(value) else value
                    buffer.append((tid, name, METRICS[name].version, v, stamp))
                buffer_ids.append(tid)
                measured.add(tid)
                done += 1

        def event(phase: int) -> Progress:
            slow = all(n in SLOW_METRICS for _, need in phases[phase] for n in need)
            what = ", ".join(SLOW_METRICS) if slow else "metrics"
            before = sum(len(p) for p in phases[:phase])
            text = f"{what}: {done - before}/{len(phases[phase])} tiles"
            return Progress(done, total, text, {"tile_ids": flush(), "phase": phase})

        chunk = CHUNK if use_processes else 1
        pool: Executor
        if use_processes:
            import multiprocessing

            pool = ProcessPoolExecutor(
                n_workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
            )
        else:
            pool = ThreadPoolExecutor(n_workers, thread_name_prefix="casdesk-qc")
        pending: dict[Future[list[tuple[int, dict[str, float]]]], list[tuple[Tile, list[str]]]] = {}
        stopped = False
        try:
            for phase, items in enumerate(phases):
                queue = iter([items[i : i + chunk] for i in range(0, len(items), chunk)])
                retry: list[list[tuple[Tile, list[str]]]] = []
                while True:
                    while len(pending) < 3 * n_workers and not (cancel is not None and cancel.cancelled):
                        item = retry.pop() if retry else next(queue, None)
                        if item is None:
                            break
                        chunk_limits = {t.scene_id: stretch[t.scene_id] for t, _ in item if t.scene_id in stretch}
                        pending[pool.submit(_measure_chunk, item, chunk_limits)] = item
                    if not pending:
                        break
                    finished, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        item = pending.pop(fut)
                        try:
                            collect(fut.result())
                        except BrokenProcessPool:
                            # processes cannot start here (no importable __main__, a frozen
                            # app without freeze_support): finish in threads
                            log.warning("QC: worker processes unavailable; measuring in threads")
                            retry.append(item)
                            retry.extend(pending.values())
                            pending.clear()
                            pool.shutdown(wait=False, cancel_futures=True)
                            pool = ThreadPoolExecutor(n_workers, thread_name_prefix="casdesk-qc")
                            break
                    if buffer_ids and (
                        time.monotonic() - last_flush > FLUSH_SECONDS or len(buffer_ids) >= FLUSH_TILES
                    ):
                        yield event(phase)
                    if cancel is not None and cancel.cancelled:
                        stopped = True
                        break
                if stopped:
                    break
                if phase + 1 < len(phases):
                    yield event(phase)  # every tile's fast metrics stored before the seam pass
        finally:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
        yield event(phase)
        if cancel is not None:
            cancel.raise_if_cancelled()
        return len(measured)
    finally:
        if own:
            cat.close()
