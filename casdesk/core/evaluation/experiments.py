"""The paper's experiments as queues of planned runs (Qt-free; the training panel runs them).

- Table 5: each of the four models on UAV, SAT and UAV+SAT tiles, random 7:3 split per
  subdataset.
- Table 6: DeepLabV3+ on QC-filtered vs unfiltered SAT tiles.
- Table 7: train on every region but one, validate on the held-out region (the paper held
  out Moxitaidi, UAV and SAT).

A planned run names its tiles by filter; :func:`prepare_split` turns the filter into a
stored split over exactly those tiles, so every run of a table is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from casdesk.core.errors import CasdeskError
from casdesk.core.project.catalog import Catalog

PAPER_MODELS = ("fcn", "unet", "deeplabv3plus", "mffenet")
SENSOR_SETS: dict[str, tuple[str, ...]] = {"UAV": ("UAV",), "SAT": ("SAT",), "UAV+SAT": ("UAV", "SAT")}


@dataclass(frozen=True)
class PlannedRun:
    name: str
    model: str
    sensors: tuple[str, ...] = ("UAV", "SAT")
    qc_accepted_only: bool = True
    split_kind: str = "random"
    holdout: tuple[str, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def split_name(self) -> str:
        sensors = "+".join(self.sensors)
        qc = "qc" if self.qc_accepted_only else "all"
        if self.split_kind == "holdout":
            return f"holdout-{'+'.join(self.holdout)}-{sensors}-{qc}"
        return f"{self.split_kind}-70-30-{sensors}-{qc}"


def table5(models: Sequence[str] = PAPER_MODELS) -> list[PlannedRun]:
    return [
        PlannedRun(f"T5 {model} {label}", model, sensors)
        for label, sensors in SENSOR_SETS.items()
        for model in models
    ]


def table6() -> list[PlannedRun]:
    return [
        PlannedRun("T6 deeplabv3plus SAT QC-filtered", "deeplabv3plus", ("SAT",), qc_accepted_only=True),
        PlannedRun("T6 deeplabv3plus SAT unfiltered", "deeplabv3plus", ("SAT",), qc_accepted_only=False),
    ]


def table7(catalog: Catalog, region: str = "moxitaidi", model: str = "deeplabv3plus") -> list[PlannedRun]:
    """Hold out every subdataset whose name contains ``region`` (case-insensitive)."""
    held = tuple(s["name"] for s in catalog.subdatasets() if region.lower() in s["name"].lower())
    if not held:
        raise CasdeskError(
            f"no subdataset matches the held-out region {region!r}",
            catalog.path,
            "pick a region present in the project",
        )
    return [PlannedRun(f"T7 {model} hold out {region}", model, ("UAV", "SAT"), split_kind="holdout", holdout=held)]


EXPERIMENTS = {
    "Table 5: four models x UAV / SAT / UAV+SAT": lambda catalog: table5(),
    "Table 6: QC-filtered vs unfiltered SAT": lambda catalog: table6(),
    "Table 7: hold out a region (Moxitaidi)": lambda catalog: table7(catalog),
}


def select_tiles(catalog: Catalog, sensors: Sequence[str], qc_accepted_only: bool) -> list[int]:
    """Tile ids of the given sensors (tiles of subdatasets without a sensor count as any)."""
    rows = catalog.query(
        "SELECT t.id, COALESCE(s.sensor, d.sensor) AS sensor FROM tiles t"
        " JOIN subdatasets d ON d.id = t.subdataset_id LEFT JOIN scenes s ON s.id = t.scene_id"
    )
    wanted = set(sensors)
    ids = [r["id"] for r in rows if r["sensor"] is None or r["sensor"] in wanted]
    if qc_accepted_only:
        try:
            from casdesk.core.qc.rules import accepted_tile_ids
        except ImportError:  # QC not available: every tile counts as accepted
            return ids
        accepted = set(accepted_tile_ids(catalog))
        ids = [i for i in ids if i in accepted]
    return ids


def prepare_split(catalog: Catalog, run: PlannedRun, seed: int = 0) -> str:
    """Create (or reuse) the split a planned run trains on; return its name."""
    from casdesk.core.dataset.splits import list_splits, make_split

    name = run.split_name
    if any(s["name"] == name for s in list_splits(catalog)):
        return name
    ids = select_tiles(catalog, run.sensors, run.qc_accepted_only)
    if not ids:
        raise CasdeskError(
            f"no {'+'.join(run.sensors)} tiles{' accepted by QC' if run.qc_accepted_only else ''} for {run.name}",
            catalog.path,
            "set the subdatasets' sensor in the Project panel, or run QC",
        )
    make_split(catalog, run.split_kind, name=name, val_fraction=0.3, seed=seed, holdout=run.holdout, tile_ids=ids)
    return name
