"""The paper's experiments (Tables 5, 6 and 7) as plans of training runs, Qt- and torch-free.

One planning code for the CLI (``casdesk experiment``) and the GUI's experiment presets:

- **Table 5**: each of the four paper models on UAV, SAT and UAV+SAT tiles, a seeded random
  7:3 split per subdataset (12 runs). With the same seed, the UAV+SAT split is exactly the
  union of the UAV and SAT splits (each subdataset is shuffled on its own stream).
- **Table 6**: DeepLabV3+ on the SAT tiles QC keeps vs all SAT tiles, each with its own
  seeded 7:3 split per subdataset (2 runs). The released CAS data are already filtered,
  so on them this measures casdesk's QC rules on top of the authors'.
- **Table 7**: DeepLabV3+ trained on the UAV, SAT and UAV+SAT tiles outside the three
  Moxitaidi subdatasets, validated on all Moxitaidi tiles (652 SAT + 984 + 483 UAV =
  2,119 in the release) (3 runs).

A :class:`PlannedRun` names its tiles by rule (sensors, QC, held-out subdatasets);
:func:`plan_tiles` turns the rule into train/validation tile ids in memory (dry runs),
:func:`prepare_split` stores them as a named split, reused when identical, so a run is
reproducible and every run of a table says exactly which tiles it saw.
:func:`experiment_report` writes casdesk's numbers next to the paper's.

Sensors: a tile's sensor is its scene's, else its subdataset's, else the CAS release's
for a subdataset recognised by name (:func:`~casdesk.core.evaluation.paper.match_cas_subdataset`).
"UAV+SAT" also takes tiles whose sensor is unknown; "UAV" or "SAT" alone do not.
QC: "QC-kept" tiles are those QC accepts (rules or a manual accept); a project where QC
never ran keeps every tile, as training does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from casdesk.core.errors import CasdeskError
from casdesk.core.evaluation import paper
from casdesk.core.evaluation.runs import PAPER_COLUMNS
from casdesk.core.project.catalog import Catalog, Tile, utc_now

PAPER_MODELS = ("fcn", "unet", "deeplabv3plus", "mffenet")
SENSOR_SETS: dict[str, tuple[str, ...]] = {"UAV": ("UAV",), "SAT": ("SAT",), "UAV+SAT": ("UAV", "SAT")}
TABLES = ("table5", "table6", "table7")
ALL_SENSORS = ("UAV", "SAT")


class ExperimentError(CasdeskError):
    """An experiment cannot be planned or run on this project."""


@dataclass(frozen=True)
class PlannedRun:
    """One training run of an experiment, its tiles given by rule.

    ``sensors``: training tiles' sensors (and the validation tiles' for random and spatial
    splits). ``holdout``: subdatasets whose tiles are the validation set (``split_kind``
    "holdout"), of any sensor unless ``val_sensors`` says otherwise. ``table``/``paper_key``
    locate the paper's numbers for this run.
    """

    name: str
    model: str
    sensors: tuple[str, ...] = ALL_SENSORS
    qc_accepted_only: bool = True
    split_kind: str = "random"
    holdout: tuple[str, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)
    table: str | None = None
    paper_key: Any = None
    val_sensors: tuple[str, ...] | None = None
    training_set: str = ""

    @property
    def split_name(self) -> str:
        return self.split_name_for(0)

    def split_name_for(self, seed: int) -> str:
        sensors = "+".join(self.sensors)
        qc = "qc" if self.qc_accepted_only else "all"
        if self.split_kind == "holdout":
            held = "moxitaidi" if self.table == "table7" else "+".join(self.holdout)
            return f"holdout-{held}-{sensors}-{qc}"
        return f"{self.split_kind}-70-30-{sensors}-{qc}" + (f"-s{seed}" if seed else "")

    def paper_metrics(self) -> dict[str, float] | None:
        tables: dict[str, dict[Any, dict[str, float]]] = {
            "table5": paper.TABLE5, "table6": paper.TABLE6, "table7": paper.TABLE7}
        source = tables.get(self.table or "")
        return None if source is None else source.get(self.paper_key)


# --------------------------------------------------------------------------- plans
def table5(models: Sequence[str] = PAPER_MODELS) -> list[PlannedRun]:
    return [
        PlannedRun(f"T5 {model} {label}", model, sensors, table="table5", paper_key=(model, label),
                   training_set=label)
        for label, sensors in SENSOR_SETS.items()
        for model in models
    ]


def table6() -> list[PlannedRun]:
    return [
        PlannedRun("T6 deeplabv3plus SAT QC-kept", "deeplabv3plus", ("SAT",), qc_accepted_only=True,
                   table="table6", paper_key="qc", training_set="SAT, QC-kept"),
        PlannedRun("T6 deeplabv3plus SAT all", "deeplabv3plus", ("SAT",), qc_accepted_only=False,
                   table="table6", paper_key="all", training_set="SAT, all tiles"),
    ]


def moxitaidi_subdatasets(catalog: Catalog) -> tuple[str, ...]:
    """The project's subdatasets that are the Moxitaidi ones of Table 7."""
    return tuple(s["name"] for s in catalog.subdatasets() if paper.is_moxitaidi(s["name"]))


def table7(catalog: Catalog, model: str = "deeplabv3plus") -> list[PlannedRun]:
    """Train outside Moxitaidi (UAV, SAT, UAV+SAT), validate on every Moxitaidi tile."""
    held = moxitaidi_subdatasets(catalog)
    if not held:
        raise ExperimentError(
            "no Moxitaidi subdataset in the project: Table 7 validates on Moxitaidi",
            catalog.path,
            "import the CAS subdatasets Moxitaidi (SAT), Moxitaidi (UAV-0.6m) and Moxitaidi (UAV-1m)",
        )
    return [
        PlannedRun(f"T7 {model} {label} -> Moxitaidi", model, sensors, split_kind="holdout", holdout=held,
                   table="table7", paper_key=label, val_sensors=None, training_set=f"{label} outside Moxitaidi")
        for label, sensors in SENSOR_SETS.items()
    ]


def plan_experiment(catalog: Catalog, table: str) -> list[PlannedRun]:
    """The runs of ``table`` ("table5", "table6", "table7", or "5", "T7"...)."""
    key = table.strip().lower().removeprefix("table").removeprefix("t")
    if key == "5":
        return table5()
    if key == "6":
        return table6()
    if key == "7":
        return table7(catalog)
    raise ExperimentError(f"unknown experiment {table!r}", hint="use table5, table6 or table7")


# The GUI's presets: title -> plan (same code as the CLI).
EXPERIMENTS = {
    "Table 5: four models x UAV / SAT / UAV+SAT": lambda catalog: plan_experiment(catalog, "table5"),
    "Table 6: QC-filtered vs unfiltered SAT": lambda catalog: plan_experiment(catalog, "table6"),
    "Table 7: hold out a region (Moxitaidi)": lambda catalog: plan_experiment(catalog, "table7"),
}


# --------------------------------------------------------------------------- tiles
def tile_sensors(catalog: Catalog) -> dict[int, str | None]:
    """tile id -> "UAV" / "SAT" / None: the scene's sensor, else the subdataset's, else the
    CAS release's for a recognised subdataset name."""
    known: dict[str, str | None] = {}
    out: dict[int, str | None] = {}
    for tile_id, sensor, sub in catalog.tile_rows.sensor_rows():
        if sensor is None:
            if sub not in known:
                match = paper.match_cas_subdataset(sub)
                known[sub] = match.sensor if match else None
            sensor = known[sub]
        out[tile_id] = sensor
    return out


def qc_kept_ids(catalog: Catalog) -> set[int] | None:
    """Tiles QC keeps, or None when QC never ran on the project (then every tile counts)."""
    if not catalog.qc.has_results():
        return None
    from casdesk.core.qc.rules import accepted_tile_ids

    return {int(i) for i in accepted_tile_ids(catalog)}


@dataclass
class TileIndex:
    """What planning needs of a project's tiles, read once."""

    tiles: list[Tile]
    sensors: dict[int, str | None]
    kept: set[int] | None

    @classmethod
    def read(cls, catalog: Catalog) -> TileIndex:
        return cls(catalog.tiles(), tile_sensors(catalog), qc_kept_ids(catalog))

    def select(self, sensors: Sequence[str] | None, qc_accepted_only: bool,
               subdatasets: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> list[Tile]:
        """Tiles with a mask, of ``sensors`` (None or both: every tile), QC-kept when asked."""
        every = sensors is None or set(sensors) >= set(ALL_SENSORS)
        wanted = set(sensors or ())
        only = None if subdatasets is None else set(subdatasets)
        out = []
        for t in self.tiles:
            if t.mask_path is None or t.subdataset in exclude:
                continue
            if only is not None and t.subdataset not in only:
                continue
            if not every and self.sensors.get(t.id) not in wanted:
                continue
            if qc_accepted_only and self.kept is not None and t.id not in self.kept:
                continue
            out.append(t)
        return out


def plan_tiles(catalog: Catalog, run: PlannedRun, seed: int = 0,
               index: TileIndex | None = None) -> dict[int, str]:
    """tile id -> "train" / "val" for ``run``, computed in memory (nothing is written)."""
    from casdesk.core.dataset.splits import random_parts, spatial_parts

    index = index or TileIndex.read(catalog)
    if run.split_kind == "holdout":
        train = index.select(run.sensors, run.qc_accepted_only, exclude=run.holdout)
        val = index.select(run.val_sensors, run.qc_accepted_only, subdatasets=run.holdout)
        return {**{t.id: "train" for t in train}, **{t.id: "val" for t in val}}
    tiles = index.select(run.sensors, run.qc_accepted_only)
    if not tiles:
        return {}
    if run.split_kind == "random":
        return random_parts(tiles, 0.3, seed)
    if run.split_kind == "spatial":
        return spatial_parts(tiles, 0.3, seed)
    raise ExperimentError(f"unknown split kind {run.split_kind!r}")


def describe_plan(catalog: Catalog, runs: Sequence[PlannedRun], seed: int = 0) -> dict[str, Any]:
    """The dry run: ``{"runs": [{"name", "model", "train_tiles", "val_tiles", ...}], "notes"}``."""
    index = TileIndex.read(catalog)
    subs = {t.id: t.subdataset for t in index.tiles}
    out, notes = [], []
    for run in runs:
        parts = plan_tiles(catalog, run, seed, index)
        by_sub: dict[str, dict[str, int]] = {}
        for tid, part in parts.items():
            counts = by_sub.setdefault(subs[tid], {"train": 0, "val": 0})
            counts[part] += 1
        paper_metrics = run.paper_metrics()
        out.append({
            "name": run.name,
            "model": run.model,
            "table": run.table,
            "training_set": run.training_set,
            "sensors": list(run.sensors),
            "qc_accepted_only": run.qc_accepted_only,
            "split_kind": run.split_kind,
            "split": run.split_name_for(seed),
            "holdout": list(run.holdout),
            "train_tiles": sum(1 for p in parts.values() if p == "train"),
            "val_tiles": sum(1 for p in parts.values() if p == "val"),
            "subdatasets": dict(sorted(by_sub.items())),
            "paper": paper_metrics,
        })
    unknown = sorted({t.subdataset for t in index.tiles if index.sensors.get(t.id) is None})
    if unknown:
        notes.append(f"tiles without a sensor (only in UAV+SAT runs): subdataset(s) {', '.join(unknown)}")
    if index.kept is None:
        notes.append("QC has not been run on this project: every tile counts as kept")
    if any(r.table == "table7" for r in runs):
        held = runs[0].holdout
        if len(held) < len(paper.MOXITAIDI):
            notes.append(f"the paper validates on three Moxitaidi subdatasets; this project holds {len(held)}: "
                         + ", ".join(held))
    return {"runs": out, "notes": notes}


def check_plan(plan: dict[str, Any], catalog: Catalog) -> None:
    """Raise :class:`ExperimentError` when a run would have no training or validation tile."""
    for run in plan["runs"]:
        for part in ("train", "val"):
            if run[f"{part}_tiles"] == 0:
                raise ExperimentError(
                    f"{run['name']}: no {'training' if part == 'train' else 'validation'} tiles "
                    f"({'+'.join(run['sensors'])}{', QC-kept' if run['qc_accepted_only'] else ''})",
                    catalog.path,
                    "set the subdatasets' sensor (SAT/UAV), check the masks and QC, or import the CAS subdatasets",
                )


def prepare_split(catalog: Catalog, run: PlannedRun, seed: int = 0) -> str:
    """Store the split a planned run trains on (reuse an identical one); return its name."""
    from casdesk.core.dataset.splits import list_splits, load_split, make_split

    parts = plan_tiles(catalog, run, seed)
    if not any(p == "train" for p in parts.values()) or not any(p == "val" for p in parts.values()):
        what = "+".join(run.sensors) + (" QC-kept" if run.qc_accepted_only else "")
        raise ExperimentError(
            f"no {what} tiles to train and validate {run.name} on",
            catalog.path,
            "set the subdatasets' sensor in the Project panel, check the masks, or run QC",
        )
    base = run.split_name_for(seed)
    existing = {s["name"] for s in list_splits(catalog)}
    name, n = base, 1
    while name in existing:
        if load_split(catalog, name) == parts:
            return name
        n += 1
        name = f"{base}-v{n}"
    held: tuple[str, ...] = ()
    if run.split_kind == "holdout":  # the held-out subdatasets that kept validation tiles
        val_subs = {t.subdataset for t in catalog.tiles(ids=[i for i, p in parts.items() if p == "val"])}
        held = tuple(h for h in run.holdout if h in val_subs)
    make_split(catalog, run.split_kind, name=name, val_fraction=0.3, seed=seed, holdout=held,
               tile_ids=sorted(parts))
    if load_split(catalog, name) != parts:  # make_split recomputes: it must agree with the plan
        raise ExperimentError(f"the stored split {name} differs from the plan", catalog.path)
    return name


def run_settings(run: PlannedRun, split: str) -> dict[str, Any]:
    """The per-run training settings (on top of the experiment's recipe and options)."""
    return {"model": run.model, "encoder": None, "split": split, "name": run.name,
            "qc_accepted_only": run.qc_accepted_only, **run.overrides}


# --------------------------------------------------------------------------- report
COLUMNS = PAPER_COLUMNS  # the paper's metric order, both F1s named (one list for every table)
TABLE_TITLES = {
    "table5": "Table 5: the four models on UAV, SAT and UAV+SAT (random 7:3 split per subdataset)",
    "table6": "Table 6: DeepLabV3+ on QC-kept vs all SAT tiles",
    "table7": "Table 7: DeepLabV3+ trained outside Moxitaidi, validated on the Moxitaidi subdatasets",
}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _diff(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None else f"{100 * (a - b):+.2f}"


def experiment_report(table: str, rows: Sequence[dict[str, Any]], settings: dict[str, Any] | None = None) -> str:
    """Markdown: casdesk's numbers next to the paper's, with the difference (points).

    ``rows``: one per run, ``{"name", "model", "training_set", "train_tiles", "val_tiles",
    "metrics": {...} | None, "paper": {...} | None, "run_id", "status"}`` (metrics as
    fractions, casdesk's evaluator: one confusion matrix over the validation set).
    """
    heads = ["Run", "Model", "Training set", "Tiles (train / val)", "Source", *[h for _, h in COLUMNS]]
    lines = [f"# {TABLE_TITLES.get(table, table)}", ""]
    lines.append(f"Written by casdesk on {utc_now()}. Values in percent; difference = casdesk - paper, in points.")
    if settings:
        shown = ", ".join(f"{k} {v}" for k, v in settings.items() if v is not None)
        lines.append(f"Settings: {shown}.")
    lines += ["", "| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    for row in rows:
        ours, ref = row.get("metrics"), row.get("paper")
        status = row.get("status") or ("not run" if ours is None else "")
        label = "casdesk" + (f" (run {row['run_id']})" if row.get("run_id") is not None else "")
        if status and status not in ("finished", "early_stopped"):
            label += f", {status}"
        tiles = f"{row.get('train_tiles', '')} / {row.get('val_tiles', '')}"
        lines.append("| " + " | ".join([row["name"], row["model"], row.get("training_set", ""), tiles, label,
                                         *[_pct((ours or {}).get(k)) for k, _ in COLUMNS]]) + " |")
        if ref is not None:
            number = ref.get("number")
            ref_tiles = "" if number is None else (f"{int(number)} ({'dataset' if table == 'table6' else 'train'})")
            lines.append("| " + " | ".join(["", "", "", ref_tiles, "paper",
                                             *[_pct(ref.get(k)) for k, _ in COLUMNS]]) + " |")
            lines.append("| " + " | ".join(["", "", "", "", "difference",
                                             *[_diff((ours or {}).get(k), ref.get(k)) for k, _ in COLUMNS]]) + " |")
    lines += [
        "",
        "Precision, recall, IoU and F1 (landslide) are the landslide class's; F1 (class mean, paper) is the",
        "mean of both classes' F1, the paper's \"F1 score\" column (the paper does not publish the landslide",
        "F1: –); mIoU is the mean of both classes' IoU; OA is the overall pixel accuracy. The paper's",
        "precision and recall are not exactly consistent with its IoU, so a faithful rerun lands within",
        "about a point, not exactly.",
    ]
    if table == "table6":
        lines.append("The paper's tile numbers for Table 6 are the SAT dataset sizes before the 7:3 split.")
    if table == "table7":
        lines.append("The paper's Table 7 also lists other published datasets (Bijie, HR-GLDD, Landslide4Sense...),"
                     " which are not CAS data.")
    return "\n".join(lines) + "\n"


def latest_results(catalog: Catalog, runs: Sequence[PlannedRun]) -> dict[str, dict[str, Any]]:
    """run name -> the newest finished training run of that name (id, status, metrics)."""
    from casdesk.core.evaluation.runs import list_runs

    out: dict[str, dict[str, Any]] = {}
    wanted = {r.name for r in runs}
    for rec in list_runs(catalog):  # newest first
        if rec.name in wanted and rec.name not in out and rec.status in ("finished", "early_stopped") and rec.best:
            out[rec.name] = {"run_id": rec.id, "status": rec.status, "metrics": rec.best, "split": rec.split}
    return out
