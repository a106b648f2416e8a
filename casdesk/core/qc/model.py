"""QC's vocabulary: tile states, the :class:`Rule` type and the paper's rules.

The paper (Xu et al. 2024) drops tiles with more than 30 % boundary fill, less than 0.1 %
landslide pixels, more than 80 % cloud (satellite tiles) and severe mosaic seams. A rule is
a threshold on one metric; a tile's state follows from its metrics, the rules and a
person's decision (:mod:`casdesk.core.qc.table`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from casdesk.core.errors import CasdeskError
from casdesk.core.qc.detectors import METRICS


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
score 4-14 except 10026 (19.9) and Palu0117 (19.6, a faint real seam the authors kept),
which are flagged, never rejected. The duplication term (geometric seams, 2000 x the
duplicated share) of every released tile is below 4.5."""


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

    def threshold_for(self, subdataset: str | None) -> float | None:
        """The threshold that applies to a tile of ``subdataset``: its override if it has
        one, None when the rule is switched off there (or everywhere)."""
        if subdataset is not None and subdataset in self.overrides:
            return self.overrides[subdataset]
        return self.threshold if self.enabled else None

    def describe(self, subdataset: str | None = None) -> str:
        sign = ">" if self.op == "max" else "<"
        thr = self.threshold_for(subdataset)
        return f"{self.metric} {sign} {self.threshold if thr is None else thr:g}"

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


