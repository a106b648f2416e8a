"""Filtering and sorting a :class:`~casdesk.core.dataset.tile_index.TileIndex` in numpy
(a few milliseconds on 100k tiles, so a filter slider can follow the mouse), and a
synthetic index for benchmarks of the filters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from casdesk.core.dataset.tile_index import LABEL_FRACTION, PART_NAMES, SENSOR_NAMES, TileIndex


@dataclass
class TileFilter:
    """What the user asked to see. None / empty means "no restriction" for each field.

    ``ranges`` maps a metric name to inclusive (low, high); tiles whose value is missing
    (NaN) are hidden by an active range. ``has_label``: True only tiles with landslide
    pixels, False only tiles without.
    """

    subdatasets: frozenset[str] | None = None
    sensors: frozenset[str] | None = None
    qc_states: frozenset[int] | None = None
    split_parts: frozenset[str] | None = None  # "" = not in the split
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    has_label: bool | None = None
    text: str = ""


def _codes(names: Iterable[str], table: Sequence[str]) -> np.ndarray:
    return np.array([table.index(n) for n in names if n in table], dtype=np.int64)


def filter_mask(index: TileIndex, flt: TileFilter) -> np.ndarray:
    """Boolean per tile: shown by ``flt``. Vectorised: a few ms per 100k tiles."""
    keep = np.ones(len(index), bool)
    if flt.subdatasets is not None:
        keep &= np.isin(index.subdataset_code, _codes(flt.subdatasets, index.subdataset_names))
    if flt.sensors is not None:
        keep &= np.isin(index.sensor_code, _codes(flt.sensors, SENSOR_NAMES))
    if flt.qc_states is not None:
        keep &= np.isin(index.qc_state, np.array(sorted(flt.qc_states), dtype=np.int64))
    if flt.split_parts is not None:
        keep &= np.isin(index.split_part, _codes(flt.split_parts, PART_NAMES))
    for metric, (lo, hi) in flt.ranges.items():
        values = index.metrics.get(metric)
        if values is not None:
            with np.errstate(invalid="ignore"):
                keep &= (values >= lo) & (values <= hi)
    if flt.has_label is not None:
        keep &= index.has_label == flt.has_label
    text = flt.text.strip().lower()
    if text:
        keep &= np.strings.find(index.names_lower(), text) >= 0
    return keep


def filter_rows(index: TileIndex, flt: TileFilter) -> np.ndarray:
    """Row positions (int64, in id order) of the tiles ``flt`` shows."""
    return np.flatnonzero(filter_mask(index, flt))


SORT_KEYS = ("name", "id", "subdataset", "qc_state", "split")
"""Sort keys besides the metric names."""


def sort_keys(index: TileIndex) -> list[str]:
    return [*SORT_KEYS, *index.metrics]


def sort_rows(index: TileIndex, rows: np.ndarray, key: str, descending: bool = False) -> np.ndarray:
    """``rows`` reordered by ``key`` (a :data:`SORT_KEYS` entry or a metric name).

    Stable, ties keep id order; missing metric values (NaN) go last in both directions.
    """
    if rows.size == 0 or key == "id":
        return rows[::-1].copy() if descending else rows
    if key == "name":
        values = index.name_rank()[rows].astype(np.float64)
    elif key == "subdataset":
        values = index.subdataset_code[rows].astype(np.float64)
    elif key == "qc_state":
        values = index.qc_state[rows].astype(np.float64)
    elif key == "split":
        values = index.split_part[rows].astype(np.float64)
    elif key in index.metrics:
        values = index.metrics[key][rows]
    else:
        raise KeyError(f"unknown sort key {key!r}")
    missing = np.isnan(values)
    sortable = np.where(missing, 0.0, -values if descending else values)
    order = np.lexsort((sortable, missing))
    return rows[order]


def metric_bounds(index: TileIndex, metric: str) -> tuple[float, float]:
    """(min, max) of a metric over tiles that have it; (0, 1) when none does."""
    values = index.metrics.get(metric)
    if values is None or not np.isfinite(values).any():
        return 0.0, 1.0
    return float(np.nanmin(values)), float(np.nanmax(values))


def synthetic_index(n: int, seed: int = 0) -> TileIndex:
    """An index of ``n`` random tiles built from arrays, no catalog: for speed tests and
    benchmarks of the filters (five subdatasets, both sensors, metrics, QC states, split)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1, dtype=np.int64)
    metrics = {name: rng.random(n) for name in ("fill_fraction", "cloud_fraction")}
    metrics["seam_score"] = rng.random(n) * 40
    metrics[LABEL_FRACTION] = rng.random(n) * 0.1
    return TileIndex(
        root=Path("."),
        ids=ids,
        names=np.array([f"scene{i % 40:02d}_r{i // 200 * 256:06d}_c{i % 200 * 256:06d}" for i in range(n)]),
        subdataset_code=(ids % 5).astype(np.int32),
        subdataset_names=["UAV set", "SAT set", "mixed", "sub3", "sub4"],
        sensor_code=(1 + ids % 2).astype(np.int8),
        scene_id=ids % 40,
        row_off=np.zeros(n, np.int64),
        col_off=np.zeros(n, np.int64),
        width=np.full(n, 512, np.int32),
        height=np.full(n, 512, np.int32),
        image_path=np.full(n, "missing.tif", dtype=object),
        mask_path=np.full(n, None, dtype=object),
        modified=np.full(n, "2024-01-01T00:00:00+00:00", dtype=object),
        label_pixels=rng.integers(0, 500, n),
        metrics=metrics,
        manual=np.zeros(n, np.int8),
        auto_state=rng.integers(0, 4, n).astype(np.int8),
        qc_state=rng.integers(0, 6, n).astype(np.int8),
        split_name="synthetic",
        split_part=rng.integers(0, 4, n).astype(np.int8),
    )
