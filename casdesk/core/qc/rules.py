"""Quality control: per-tile metrics, threshold rules, manual decisions, presets.

The paper (Xu et al. 2024) drops tiles with more than 30 % boundary fill, less than 0.1 %
landslide pixels, more than 80 % cloud (satellite tiles) and severe mosaic seams; automated
metrics flag tiles and a person decides on the flagged ones. Here:

* :func:`compute_metrics` measures every registered metric (:data:`METRICS`) once per tile,
  in a process pool over every core, and stores it in ``qc_metrics``. A value is recomputed only when the
  tile was modified after it was computed or the metric's version changed.
* :func:`load_table` loads all metrics and manual decisions into a :class:`QCTable` of
  numpy arrays; :func:`evaluate` and :func:`count_states` are pure numpy, so moving a
  threshold recounts 100,000 tiles in about a millisecond without touching the disk.
* Manual decisions (``qc_decisions``, history, the latest row per tile wins) override the
  rules, so they survive threshold changes and metric recomputation.
"""

from __future__ import annotations

import csv
import getpass
import json
import logging
import math
import os
import tempfile
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
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np

from casdesk.core.errors import CasdeskError, OutputError
from casdesk.core.jobs import CancelToken, Progress
from casdesk.core.project.catalog import Catalog, Tile, utc_now
from casdesk.core.qc.detectors import METRICS, Metric, TileData, load_tile, register_metric

__all__ = [
    "ACCEPTED",
    "FLAGGED",
    "MANUAL_ACCEPT",
    "MANUAL_REJECT",
    "METRICS",
    "PAPER_DEFAULTS",
    "PAPER_PRESET",
    "PENDING",
    "REJECTED",
    "STATE_KEYS",
    "STATE_NAMES",
    "Metric",
    "QCError",
    "QCTable",
    "Rule",
    "TileData",
    "accepted_tile_ids",
    "compute_metrics",
    "count_states",
    "describe_failure",
    "failure_details",
    "stale_tile_ids",
    "current_rules",
    "evaluate",
    "kept_tile_ids",
    "list_presets",
    "load_preset",
    "load_table",
    "register_metric",
    "save_preset",
    "preset_state",
    "set_active_preset",
    "set_current_rules",
    "set_decision",
    "update_table",
    "write_report",
]

log = logging.getLogger(__name__)


class QCError(CasdeskError):
    """A QC request cannot be carried out (unknown metric or preset, bad rule)."""


# --------------------------------------------------------------------------- states
PENDING = np.int8(0)
"""Metrics not computed yet (and no manual decision)."""
ACCEPTED = np.int8(1)
REJECTED = np.int8(2)
FLAGGED = np.int8(3)
"""Within a rule's margin of its threshold (on either side): a person should look."""
MANUAL_ACCEPT = np.int8(4)
MANUAL_REJECT = np.int8(5)
STATE_NAMES: dict[int, str] = {
    int(PENDING): "pending",
    int(ACCEPTED): "accepted",
    int(REJECTED): "rejected",
    int(FLAGGED): "flagged",
    int(MANUAL_ACCEPT): "manual accept",
    int(MANUAL_REJECT): "manual reject",
}
STATE_KEYS: dict[int, str] = {k: v.replace(" ", "_") for k, v in STATE_NAMES.items()}
N_STATES = len(STATE_NAMES)

SEAM_DEFAULT = 20.5
"""Seam rule default in DN (margin 6: 14.5-26.5 is flagged), calibrated on the 22 released tiles
and the evaluation set of ``benchmarks/bench_qc_accuracy.py`` (docs/qc.md): released tiles
score 3-14 except 10026 (19.9) and Palu0117 (24.9, a faint real seam the authors kept),
which are flagged, never rejected."""


# --------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """A threshold on one metric. ``op="max"`` rejects values above ``threshold``,
    ``op="min"`` values below it. Tiles within ``margin`` of the threshold (either side) are
    flagged for review instead. ``sensors`` limits the rule to tiles of those sensors (tiles
    of unknown sensor are always checked). ``overrides`` maps a subdataset name to its own
    threshold, or to None to switch the rule off for that subdataset. NaN values (metric
    not applicable, e.g. label fraction of an unlabelled tile) never fail a rule."""

    metric: str
    op: Literal["max", "min"]
    threshold: float
    enabled: bool = True
    sensors: tuple[str, ...] | None = None
    margin: float = 0.0
    overrides: dict[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.op not in ("max", "min"):
            raise QCError(f"rule op must be 'max' or 'min', not {self.op!r}")

    def describe(self) -> str:
        sign = ">" if self.op == "max" else "<"
        return f"{self.metric} {sign} {self.threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sensors"] = list(self.sensors) if self.sensors else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rule:
        return cls(
            metric=str(d["metric"]),
            op=d["op"],
            threshold=float(d["threshold"]),
            enabled=bool(d.get("enabled", True)),
            sensors=tuple(d["sensors"]) if d.get("sensors") else None,
            margin=float(d.get("margin", 0.0)),
            overrides={str(k): (None if v is None else float(v)) for k, v in (d.get("overrides") or {}).items()},
        )


PAPER_PRESET = "paper defaults"
PAPER_DEFAULTS: list[Rule] = [
    Rule("fill_fraction", "max", 0.30, margin=0.05),
    Rule("label_fraction", "min", 0.001, margin=0.0005),
    Rule("cloud_fraction", "max", 0.80, sensors=("SAT",), margin=0.05),
    Rule("seam_score", "max", SEAM_DEFAULT, margin=6.0),
]


def paper_defaults() -> list[Rule]:
    """A fresh copy of the paper's rules (Rules are frozen; the list is new)."""
    return list(PAPER_DEFAULTS)


def with_threshold(rules: Sequence[Rule], metric: str, threshold: float) -> list[Rule]:
    """``rules`` with ``metric``'s threshold replaced (CLI flags, slider moves)."""
    out = [replace(r, threshold=float(threshold)) if r.metric == metric else r for r in rules]
    if not any(r.metric == metric for r in rules):
        base = next((r for r in PAPER_DEFAULTS if r.metric == metric), None)
        op = base.op if base else ("max" if METRICS[metric].higher_is_worse else "min")
        out.append(Rule(metric, op, float(threshold)))
    return out


# --------------------------------------------------------------------------- presets
_ACTIVE_KEY = "qc.active_preset"


def list_presets(catalog: Catalog) -> list[str]:
    """Preset names, the built-in paper preset first."""
    names = catalog.qc.preset_names()
    return [PAPER_PRESET, *[n for n in names if n != PAPER_PRESET]]


def save_preset(catalog: Catalog, name: str, rules: Sequence[Rule], activate: bool = True) -> None:
    """Store ``rules`` under ``name`` (replacing a preset of that name). With ``activate``
    (the panel's "Save preset"), the working rules are named: they become the active
    preset's rules, unchanged, so nothing else in the project moves."""
    name = name.strip()
    if not name or name == PAPER_PRESET:
        raise QCError(
            f"cannot save a preset named {name!r}", catalog.path, "pick another name; the paper preset is built in"
        )
    text = json.dumps([r.to_dict() for r in rules])
    catalog.qc.put_preset(name, text)
    if activate:
        set_active_preset(catalog, name)


def load_preset(catalog: Catalog, name: str) -> list[Rule]:
    if name == PAPER_PRESET:
        return paper_defaults()
    text = catalog.qc.preset_text(name)
    if text is None:
        raise QCError(f"no QC preset named {name!r}", catalog.path, f"presets: {', '.join(list_presets(catalog))}")
    try:
        return [Rule.from_dict(d) for d in json.loads(text)]
    except (ValueError, KeyError, TypeError) as exc:
        raise QCError(f"QC preset {name!r} is damaged ({exc})", catalog.path, "save it again") from exc


def set_active_preset(catalog: Catalog, name: str) -> None:
    """Make preset ``name`` the project's current rule set (its rules become the working
    rules every view uses)."""
    if name != PAPER_PRESET and name not in list_presets(catalog):
        raise QCError(f"no QC preset named {name!r}", catalog.path)
    rules = load_preset(catalog, name)
    with catalog.transaction():
        catalog.set_meta(_ACTIVE_KEY, name)
        catalog.set_meta(_CURRENT_KEY, json.dumps([r.to_dict() for r in rules]))


def active_preset(catalog: Catalog) -> str:
    """The preset the working rules started from (see :func:`preset_state`)."""
    name = catalog.get_meta(_ACTIVE_KEY, PAPER_PRESET) or PAPER_PRESET
    return name if name in list_presets(catalog) else PAPER_PRESET


_CURRENT_KEY = "qc.current_rules"


def current_rules(catalog: Catalog) -> list[Rule]:
    """The project's working rules: what the QC panel's sliders show, and what the browser,
    ``export --accepted-only``, training's kept tiles and the CLI all use. Persisted in the
    project (:func:`set_current_rules`); a project that never changed them uses the active
    preset (the paper defaults unless the user chose another)."""
    text = catalog.get_meta(_CURRENT_KEY, None)
    if text:
        try:
            return [Rule.from_dict(d) for d in json.loads(text)]
        except (ValueError, KeyError, TypeError, QCError) as exc:
            log.warning("QC: the stored working rules are damaged (%s); using the active preset", exc)
    return load_preset(catalog, active_preset(catalog))


def set_current_rules(catalog: Catalog, rules: Sequence[Rule]) -> None:
    """Store the working rules (a slider moved): every view reads them from here. The
    active preset's name is kept; :func:`preset_state` tells whether they differ from it."""
    catalog.set_meta(_CURRENT_KEY, json.dumps([r.to_dict() for r in rules]))


def preset_state(catalog: Catalog, rules: Sequence[Rule] | None = None) -> tuple[str, bool]:
    """(name of the preset the working rules came from, True when they were changed since:
    unsaved changes, shown as "name (modified)")."""
    name = active_preset(catalog)
    rules = current_rules(catalog) if rules is None else list(rules)
    return name, [r.to_dict() for r in rules] != [r.to_dict() for r in load_preset(catalog, name)]


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


def measure_tile(tile: Tile, names: Sequence[str]) -> dict[str, float]:
    """All requested metrics of one tile. A tile whose pixels cannot be read has no usable
    footprint: fill 1, valid 0, other metrics NaN (so the fill rule rejects it)."""
    try:
        data = load_tile(tile.image_path, tile.mask_path, tile.sensor)
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
FLUSH_TILES = 2048
FLUSH_SECONDS = 1.0
"""Results are written in one transaction per this many tiles or seconds, whichever first."""


def _measure_chunk(items: list[tuple[Tile, list[str]]]) -> list[tuple[int, dict[str, float]]]:
    """A worker process's task: measure a few tiles (each file read once)."""
    return [(tile.id, measure_tile(tile, need)) for tile, need in items]


def _init_worker() -> None:
    """Worker processes: one OpenCV thread each (the pool already uses every core)."""
    import cv2

    cv2.setNumThreads(1)


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
    ``workers`` (default: every core) processes measure chunks of :data:`CHUNK` tiles, each
    file read once; the results are written in large transactions (:data:`FLUSH_TILES`
    tiles or :data:`FLUSH_SECONDS`), so a cancelled scan keeps what it finished. Each
    progress event carries ``data["tile_ids"]``: the tiles written since the previous one
    (the GUI recounts with them, so its counts cover the tiles done so far). Small scans
    (fewer than :data:`PROCESS_MIN_TILES`) or ``processes=False`` use threads.
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
        total = len(todo)
        yield Progress(0, total, f"{total} tiles to measure")
        if not total:
            return 0
        n_workers = max(1, workers or os.cpu_count() or 1)
        use_processes = (total >= PROCESS_MIN_TILES and n_workers > 1) if processes is None else processes
        done = 0
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
                done += 1

        chunk = CHUNK if use_processes else 1
        chunks = [todo[i : i + chunk] for i in range(0, total, chunk)]
        pool: Executor
        if use_processes:
            import multiprocessing

            pool = ProcessPoolExecutor(
                n_workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
            )
        else:
            pool = ThreadPoolExecutor(n_workers, thread_name_prefix="casdesk-qc")
        pending: dict[Future[list[tuple[int, dict[str, float]]]], list[tuple[Tile, list[str]]]] = {}
        queue = iter(chunks)
        retry: list[list[tuple[Tile, list[str]]]] = []
        try:
            while True:
                while len(pending) < 3 * n_workers:
                    item = retry.pop() if retry else next(queue, None)
                    if item is None:
                        break
                    pending[pool.submit(_measure_chunk, item)] = item
                if not pending:
                    break
                finished, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in finished:
                    item = pending.pop(fut)
                    try:
                        collect(fut.result())
                    except BrokenProcessPool:
                        # processes cannot start here (no importable __main__, a frozen app
                        # without freeze_support): finish in threads
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
                    flushed = flush()
                    yield Progress(done, total, f"{done}/{total} tiles", {"tile_ids": flushed})
                if cancel is not None and cancel.cancelled:
                    break
        finally:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
        flushed = flush()
        yield Progress(done, total, f"{done}/{total} tiles", {"tile_ids": flushed})
        if cancel is not None:
            cancel.raise_if_cancelled()
        return done
    finally:
        if own:
            cat.close()


# --------------------------------------------------------------------------- the table
@dataclass
class QCTable:
    """Everything QC counting needs, as numpy arrays aligned by row (one row per tile).

    ``metrics[name]`` is float64 with NaN where missing or not applicable; ``manual`` is
    int8: 0 no decision, 1 manual accept, -1 manual reject. Subdatasets and sensors are
    integer codes into ``subdataset_names`` / ``sensor_names`` ("" = unknown sensor).
    """

    tile_ids: np.ndarray
    names: np.ndarray
    subdataset_codes: np.ndarray
    subdataset_names: list[str]
    sensor_codes: np.ndarray
    sensor_names: list[str]
    metrics: dict[str, np.ndarray]
    manual: np.ndarray
    computed: np.ndarray
    notes: dict[int, str] = field(default_factory=dict)
    _index: dict[int, int] | None = field(default=None, repr=False)
    stale: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    """True where the tile's image or mask changed after its metrics were computed: the
    values shown are old until the background recomputation reaches it."""

    def __post_init__(self) -> None:
        if self.stale.shape != self.tile_ids.shape:
            self.stale = np.zeros(self.tile_ids.shape, bool)

    def __len__(self) -> int:
        return int(self.tile_ids.size)

    @property
    def subdatasets(self) -> np.ndarray:
        """Subdataset name per tile (object array)."""
        return np.asarray(self.subdataset_names, dtype=object)[self.subdataset_codes]

    @property
    def sensors(self) -> np.ndarray:
        """Sensor per tile ("SAT", "UAV" or "" when unknown; object array)."""
        return np.asarray(self.sensor_names, dtype=object)[self.sensor_codes]

    def rows(self, tile_ids: Iterable[int]) -> np.ndarray:
        """Row positions of ``tile_ids`` (unknown ids are skipped)."""
        if self._index is None:
            self._index = {int(t): i for i, t in enumerate(self.tile_ids)}
        return np.array([self._index[t] for t in map(int, tile_ids) if t in self._index], dtype=np.int64)

    def set_manual(self, tile_ids: Iterable[int], decision: str) -> None:
        """Mirror a decision in memory (after :func:`set_decision`) without reloading."""
        self.manual[self.rows(tile_ids)] = {"accept": 1, "reject": -1, "clear": 0}[decision]

    @classmethod
    def from_arrays(
        cls,
        subdatasets: Sequence[str],
        metrics: dict[str, np.ndarray],
        sensors: Sequence[str] | None = None,
        manual: np.ndarray | None = None,
        tile_ids: np.ndarray | None = None,
    ) -> QCTable:
        """Build a table from plain arrays (benchmarks, tests, what-if tools)."""
        sub_names, sub_codes = np.unique(np.asarray(subdatasets, dtype=str), return_inverse=True)
        n = sub_codes.size
        sens = np.asarray(sensors if sensors is not None else [""] * n, dtype=str)
        sensor_names, sensor_codes = np.unique(sens, return_inverse=True)
        metrics = {k: np.asarray(v, dtype=np.float64) for k, v in metrics.items()}
        computed = np.zeros(n, bool)
        for v in metrics.values():
            computed |= ~np.isnan(v)
        return cls(
            tile_ids=np.arange(1, n + 1, dtype=np.int64) if tile_ids is None else np.asarray(tile_ids),
            names=np.array([f"tile{i}" for i in range(n)], dtype=object),
            subdataset_codes=sub_codes.astype(np.int32),
            subdataset_names=[str(s) for s in sub_names],
            sensor_codes=sensor_codes.astype(np.int32),
            sensor_names=[str(s) for s in sensor_names],
            metrics=metrics,
            manual=np.zeros(n, np.int8) if manual is None else np.asarray(manual, np.int8),
            computed=computed,
        )


def latest_decisions(catalog: Catalog) -> dict[int, dict[str, Any]]:
    """The latest decision row per tile (``clear`` rows are dropped: no manual decision)."""
    return {int(r["tile_id"]): r for r in catalog.qc.latest_decisions() if r["decision"] != "clear"}


def stale_tile_ids(catalog: Catalog) -> list[int]:
    """Tiles whose image or mask changed after their metrics were computed."""
    return catalog.qc.stale_tile_ids()


def load_table(catalog: Catalog) -> QCTable:
    """Load every tile's metrics (current versions only) and manual decision into memory."""
    rows = catalog.tile_rows.qc_rows()
    n = len(rows)
    tile_ids = np.fromiter((r[0] for r in rows), np.int64, n)
    index = {int(t): i for i, t in enumerate(tile_ids)}
    subs = [r[2] for r in rows]
    sub_names = sorted(set(subs))
    sub_lut = {s: i for i, s in enumerate(sub_names)}
    sensors = [r[3] or "" for r in rows]
    sensor_names = sorted(set(sensors) | {""})
    sensor_lut = {s: i for i, s in enumerate(sensor_names)}
    metrics = {name: np.full(n, np.nan) for name in METRICS}
    computed = np.zeros(n, bool)
    versions = {name: m.version for name, m in METRICS.items()}
    for tid, metric, version, value in catalog.qc.metric_values():
        i = index.get(tid)
        if i is None or versions.get(metric) != version:
            continue
        computed[i] = True
        if value is not None:
            metrics[metric][i] = value
    stale = np.zeros(n, bool)
    for tid in catalog.qc.stale_tile_ids():
        i = index.get(tid)
        if i is not None:
            stale[i] = True
    manual = np.zeros(n, np.int8)
    notes = {}
    for tid, dec in latest_decisions(catalog).items():
        i = index.get(tid)
        if i is not None:
            manual[i] = 1 if dec["decision"] == "accept" else -1
            if dec["note"]:
                notes[tid] = dec["note"]
    return QCTable(
        tile_ids=tile_ids,
        names=np.array([r[1] for r in rows], dtype=object),
        subdataset_codes=np.fromiter((sub_lut[s] for s in subs), np.int32, n),
        subdataset_names=sub_names,
        sensor_codes=np.fromiter((sensor_lut[s] for s in sensors), np.int32, n),
        sensor_names=sensor_names,
        metrics=metrics,
        manual=manual,
        computed=computed,
        notes=notes,
        _index=index,
        stale=stale,
    )


def update_table(catalog: Catalog, table: QCTable, tile_ids: Iterable[int]) -> None:
    """Refresh the metrics and manual decisions of some tiles in place (a scan's progress,
    another panel's decisions) without reloading the whole project."""
    ids = [int(t) for t in tile_ids]
    rows = table.rows(ids)
    if not rows.size:
        return
    versions = {name: m.version for name, m in METRICS.items()}
    index = table._index or {}
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        for tid, metric, version, value in catalog.qc.metric_values(chunk):
            i = index.get(tid)
            if i is None or versions.get(metric) != version:
                continue
            table.computed[i] = True
            if metric in table.metrics:
                table.metrics[metric][i] = math.nan if value is None else value
        table.manual[table.rows(chunk)] = 0
        for dec in catalog.qc.latest_decisions(chunk):
            tid, decision, note = int(dec["tile_id"]), dec["decision"], dec["note"]
            i = index.get(tid)
            if i is None:
                continue
            table.manual[i] = {"accept": 1, "reject": -1}.get(decision, 0)
            if note and decision != "clear":
                table.notes[tid] = note
            else:
                table.notes.pop(tid, None)


# --------------------------------------------------------------------------- evaluating
def evaluate(table: QCTable, rules: Sequence[Rule]) -> tuple[np.ndarray, np.ndarray]:
    """Tile states (int8, see :data:`STATE_NAMES`) and failed-rule bits (uint32; bit i set
    when ``rules[i]`` fails, margin or not, manual decision or not). Pure numpy.

    Order: a manual decision wins; else a rule failed beyond its margin -> rejected; else a
    value within a margin of a threshold -> flagged; else accepted; tiles with no metric
    computed yet are pending.
    """
    if len(rules) > 32:
        raise QCError("at most 32 rules can be evaluated at once")
    n = len(table)
    failed = np.zeros(n, np.uint32)
    rejected = np.zeros(n, bool)
    flagged = np.zeros(n, bool)
    for bit, rule in enumerate(rules):
        values = table.metrics.get(rule.metric)
        if values is None or not (rule.enabled or rule.overrides):
            continue
        thr: float | np.ndarray = rule.threshold
        applies = np.isfinite(values)
        if rule.overrides:
            lut = np.full(len(table.subdataset_names), rule.threshold)
            on = np.full(len(table.subdataset_names), rule.enabled)
            for i, sub in enumerate(table.subdataset_names):
                if sub in rule.overrides:
                    value = rule.overrides[sub]
                    on[i] = value is not None
                    lut[i] = rule.threshold if value is None else value
            thr = lut[table.subdataset_codes]
            applies &= on[table.subdataset_codes]
        if rule.sensors:
            ok = np.array([s == "" or s in rule.sensors for s in table.sensor_names])
            applies &= ok[table.sensor_codes]
        with np.errstate(invalid="ignore"):
            fail = (values > thr) if rule.op == "max" else (values < thr)
            near = np.abs(values - thr) <= rule.margin if rule.margin > 0 else np.zeros(n, bool)
        fail &= applies
        near &= applies
        failed |= fail.astype(np.uint32) << np.uint32(bit)
        rejected |= fail & ~near
        flagged |= near
    states = np.where(rejected, REJECTED, np.where(flagged, FLAGGED, ACCEPTED)).astype(np.int8)
    states[~table.computed] = PENDING
    states[table.manual == 1] = MANUAL_ACCEPT
    states[table.manual == -1] = MANUAL_REJECT
    return states, failed


def count_states(table: QCTable, states: np.ndarray) -> dict[str, Any]:
    """Counts per state, total and per subdataset: ``{"total": {...}, "subdatasets":
    {name: {...}}}``; each count dict has every key of :data:`STATE_KEYS`, ``tiles`` and
    ``kept`` (accepted + manual accept: what training and export use)."""
    n_sub = len(table.subdataset_names)
    counts = np.bincount(
        table.subdataset_codes.astype(np.int64) * N_STATES + states, minlength=n_sub * N_STATES
    ).reshape(n_sub, N_STATES)

    def as_dict(row: np.ndarray) -> dict[str, int]:
        d = {STATE_KEYS[k]: int(row[k]) for k in range(N_STATES)}
        d["tiles"] = int(row.sum())
        d["kept"] = d["accepted"] + d["manual_accept"]
        return d

    return {
        "total": as_dict(counts.sum(axis=0)),
        "subdatasets": {name: as_dict(counts[i]) for i, name in enumerate(table.subdataset_names)},
    }


def failed_rule_names(bits: int, rules: Sequence[Rule]) -> list[str]:
    return [r.describe() for i, r in enumerate(rules) if int(bits) >> i & 1]


def describe_failure(rule: Rule, value: float) -> str:
    """Which rule a value fails and by how much: "seam_score 31.2 > 25 (by 6.2)"."""
    if value is None or not math.isfinite(value):
        return rule.describe()
    sign = ">" if rule.op == "max" else "<"
    return f"{rule.metric} {value:.4g} {sign} {rule.threshold:g} (by {abs(value - rule.threshold):.3g})"


def failure_details(table: QCTable, failed: np.ndarray, rules: Sequence[Rule], row: int) -> list[str]:
    """:func:`describe_failure` of every rule tile ``row`` fails."""
    return [
        describe_failure(r, float(table.metrics[r.metric][row]) if r.metric in table.metrics else math.nan)
        for i, r in enumerate(rules)
        if int(failed[row]) >> i & 1
    ]


# --------------------------------------------------------------------------- decisions
def set_decision(
    catalog: Catalog,
    tile_ids: Iterable[int],
    decision: str,
    note: str | None = None,
    author: str | None = None,
) -> None:
    """Record a manual decision (``accept``, ``reject``, or ``clear`` to remove it) for
    tiles. History is kept; the latest row per tile wins."""
    if decision not in ("accept", "reject", "clear"):
        raise QCError(f"decision must be accept, reject or clear, not {decision!r}")
    if author is None:
        try:
            author = getpass.getuser()
        except (KeyError, OSError):
            author = None
    now = utc_now()
    rows = [(int(t), decision, note, author, now) for t in tile_ids]
    catalog.qc.add_decisions(rows)


def decision_history(catalog: Catalog, tile_id: int) -> list[dict[str, Any]]:
    return catalog.qc.decision_history(tile_id)


def accepted_tile_ids(catalog: Catalog, rules: Sequence[Rule] | None = None) -> list[int]:
    """Tiles to keep: accepted by the rules or manually accepted (flagged and pending tiles
    are not kept until a person decides or metrics exist). ``rules`` default: the project's
    working rules (:func:`current_rules`, what the QC panel shows)."""
    table = load_table(catalog)
    states, _ = evaluate(table, current_rules(catalog) if rules is None else rules)
    keep = (states == ACCEPTED) | (states == MANUAL_ACCEPT)
    return [int(t) for t in table.tile_ids[keep]]


def kept_tile_ids(catalog: Catalog) -> set[int] | None:
    """Training's kept tiles under the project's working rules (what the QC panel shows as
    "kept"), or None when the project holds no QC information at all (QC never run: every
    tile counts)."""
    if not catalog.qc.has_results():
        return None
    return set(accepted_tile_ids(catalog))


# --------------------------------------------------------------------------- report
def write_report(catalog: Catalog, out: str | Path, rules: Sequence[Rule] | None = None) -> int:
    """One CSV row per tile (metrics, state, failed rules, manual note); written to a temp
    file beside ``out`` and renamed, so a reader never sees half a report. Returns rows."""
    rules = current_rules(catalog) if rules is None else list(rules)
    table = load_table(catalog)
    states, failed = evaluate(table, rules)
    out = Path(out)
    if not out.parent.is_dir():
        raise OutputError("the folder does not exist", out.parent, "create it first")
    names = list(METRICS)
    subs, sensors = table.subdatasets, table.sensors
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["tile_id", "subdataset", "name", "sensor", *names, "state", "failed_rules", "note"])
            for i in range(len(table)):
                tid = int(table.tile_ids[i])
                w.writerow(
                    [
                        tid,
                        subs[i],
                        table.names[i],
                        sensors[i],
                        *("" if math.isnan(table.metrics[m][i]) else f"{table.metrics[m][i]:.6g}" for m in names),
                        STATE_NAMES[int(states[i])],
                        "; ".join(failed_rule_names(failed[i], rules)),
                        table.notes.get(tid, ""),
                    ]
                )
        os.replace(tmp, out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write the report ({exc.strerror or exc})", out, "check the folder") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(table)
