"""The columnar tile table itself: :class:`TileIndex` (every tile of a project as parallel
numpy arrays) with its code tables (sensors, split parts, QC state codes and names).

Loading it from a project is :mod:`casdesk.core.dataset.tile_table`; filtering and sorting
it is :mod:`casdesk.core.dataset.tile_filter`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from casdesk.core.qc import rules as qc

SENSOR_NAMES = ("", "SAT", "UAV")
"""Sensor codes: index into this tuple (0 = unknown)."""
PART_NAMES = ("", "train", "val", "test")
"""Split part codes: index into this tuple (0 = not in the split)."""
NO_SPLIT = 0
LABEL_FRACTION = "label_fraction"
"""Landslide pixels / valid pixels of a tile, from the tiles table (no QC scan needed)."""


@dataclass
class TileIndex:
    """Every tile of a project as parallel numpy arrays, one entry per tile, sorted by id.

    ``qc_state`` holds :mod:`casdesk.core.qc.rules` state codes (rules plus manual decisions);
    ``auto_state`` the same without manual decisions, so a "clear" needs no re-evaluation.
    ``metrics`` maps a metric name to float64 values (NaN = not computed); it always holds
    :data:`LABEL_FRACTION`.
    """

    root: Path
    ids: np.ndarray  # int64
    names: np.ndarray  # str (unicode)
    subdataset_code: np.ndarray  # int32 index into subdataset_names
    subdataset_names: list[str]
    sensor_code: np.ndarray  # int8 index into SENSOR_NAMES
    scene_id: np.ndarray  # int64, -1 when the tile has no scene
    row_off: np.ndarray  # int64, -1 when unknown
    col_off: np.ndarray  # int64, -1 when unknown
    width: np.ndarray  # int32
    height: np.ndarray  # int32
    image_path: np.ndarray  # object (str as stored in the catalog)
    mask_path: np.ndarray  # object (str or None)
    modified: np.ndarray  # object (ISO timestamps): the thumbnail cache key
    label_pixels: np.ndarray  # int64, -1 when unknown
    metrics: dict[str, np.ndarray]
    manual: np.ndarray  # int8: 1 accept, -1 reject, 0 none
    auto_state: np.ndarray  # int8 qc state before manual decisions
    qc_state: np.ndarray  # int8 qc state shown
    split_name: str | None = None
    split_part: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    failed: np.ndarray | None = None
    """uint32 bits per tile: which of :attr:`rules` fail (None until QC is attached)."""
    rules: tuple[qc.Rule, ...] = ()
    """The working rules the states were evaluated with."""
    stale: np.ndarray | None = None
    """True where a tile's image or mask changed after its metrics were computed."""
    unmeasured: np.ndarray | None = None
    """uint32 bits per tile: ``rules[i]`` is enabled but the tile lacks its metric at the
    detector's current version (a scan's seam pass to come, a detector's new version)."""
    _name_rank: np.ndarray | None = field(default=None, repr=False)
    _names_lower: np.ndarray | None = field(default=None, repr=False)
    _name_shared: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def has_label(self) -> np.ndarray:
        """True where the tile holds landslide pixels."""
        return self.label_pixels > 0

    def rows_of(self, tile_ids: Iterable[int]) -> np.ndarray:
        """Row positions of tile ids (ids absent from the index are dropped)."""
        ids = np.asarray(list(tile_ids), dtype=np.int64)
        if ids.size == 0 or self.ids.size == 0:
            return np.zeros(0, np.int64)
        pos = np.clip(np.searchsorted(self.ids, ids), 0, self.ids.size - 1)
        return pos[self.ids[pos] == ids]

    def name_rank(self) -> np.ndarray:
        """Position of each tile in name order (computed once, ~30 ms per 100k)."""
        if self._name_rank is None:
            order = np.argsort(self.names, kind="stable")
            rank = np.empty(order.size, np.int64)
            rank[order] = np.arange(order.size)
            self._name_rank = rank
        return self._name_rank

    def name_shared(self) -> np.ndarray:
        """True for every tile whose name another tile also has (computed once from the name
        order; the browser warms it in its loading worker)."""
        if self._name_shared is None:
            n = len(self)
            shared = np.zeros(n, bool)
            if n >= 2:
                order = np.argsort(self.name_rank())
                ordered = self.names[order]
                same = ordered[1:] == ordered[:-1]
                shared[order[1:][same]] = True
                shared[order[:-1][same]] = True
            self._name_shared = shared
        return self._name_shared

    def names_lower(self) -> np.ndarray:
        if self._names_lower is None:
            self._names_lower = np.strings.lower(self.names)
        return self._names_lower

    def resolve(self, stored: str | None) -> Path | None:
        if stored is None:
            return None
        p = Path(stored)
        return p if p.is_absolute() else self.root / p

    def failed_rules(self, row: int) -> list[str]:
        """Which working rules this tile fails and by how much ("seam_score 31.2 > 25 (by
        6.2)"), in rule order."""
        if self.failed is None or not self.rules:
            return []
        out = []
        for bit, rule in enumerate(self.rules):
            if int(self.failed[row]) >> bit & 1:
                values = self.metrics.get(rule.metric)
                v = float(values[row]) if values is not None else math.nan
                out.append(qc.describe_failure(rule, v, self.subdataset_names[self.subdataset_code[row]]))
        return out

    def state_text(self, row: int) -> str:
        """The tile's QC state in words; a pending tile that has metrics says which it still
        waits for ("pending (seam_score not measured yet)")."""
        code = int(self.qc_state[row])
        text = state_name(code)
        if code == qc.PENDING and self.unmeasured is not None and self.rules:
            bits = int(self.unmeasured[row])
            waiting = list(dict.fromkeys(r.metric for i, r in enumerate(self.rules) if bits >> i & 1))
            if waiting:
                text += f" ({', '.join(waiting)} not measured yet)"
        return text

    def tooltip(self, row: int) -> str:
        """Name, subdataset, QC state, split and key metrics of one tile (plain text)."""
        lines = [
            str(self.names[row]),
            f"{self.subdataset_names[self.subdataset_code[row]]}"
            + (f" ({SENSOR_NAMES[self.sensor_code[row]]})" if self.sensor_code[row] else ""),
            f"QC: {self.state_text(row)}"
            + (" (metrics stale: recomputing)" if self.stale is not None and self.stale[row] else ""),
        ]
        lines += self.failed_rules(row)
        if self.split_name and self.split_part[row]:
            lines.append(f"split {self.split_name}: {PART_NAMES[self.split_part[row]]}")
        for name, values in self.metrics.items():
            v = values[row]
            if not math.isnan(v):
                lines.append(f"{name}: {v:.4g}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- qc
NOT_EVALUATED = -1
"""State of a tile when no QC rules can be evaluated."""


def qc_code(name: str) -> int:
    """The int code of a QC state (``"ACCEPTED"``, ``"MANUAL_REJECT"``, ...)."""
    return int(getattr(qc, name))


def state_name(code: int) -> str:
    if code == NOT_EVALUATED:
        return "not checked"
    return str(qc.STATE_NAMES.get(code, code))
