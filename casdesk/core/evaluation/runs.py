"""Training runs as the catalog holds them, and the paper-style comparison table.

Qt-free so the CLI and the training panel format runs the same way. The paper's Table 5
layout is Model x Precision, Recall, IoU, F1, mIoU, OA; its "F1 score" column is the
class-averaged F1, so both F1 conventions are written, named.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from casdesk.core.project.catalog import Catalog

# (metric key, column heading) in the paper's order, with both F1s named
PAPER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("precision", "Precision"),
    ("recall", "Recall"),
    ("iou", "IoU"),
    ("f1_mean", "F1 (class mean, paper)"),
    ("f1_landslide", "F1 (landslide)"),
    ("miou", "mIoU"),
    ("accuracy", "OA"),
)


@dataclass
class RunRecord:
    id: int
    name: str
    status: str
    model: str
    encoder: str | None
    split: str | None
    device: str | None
    started: str
    duration_s: float | None
    best: dict[str, float]
    config: dict[str, Any]
    model_path: str | None = None
    out_dir: str | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)


def list_runs(catalog: Catalog, with_epochs: bool = False) -> list[RunRecord]:
    """Every training run of the project, newest first."""
    runs = []
    for r in catalog.runs.list_all("train"):
        config = r.config
        run = RunRecord(
            id=r.id,
            name=r.name,
            status=r.status,
            model=str(config.get("model", "?")),
            encoder=config.get("encoder"),
            split=r.split_name or config.get("split"),
            device=r.device,
            started=r.started,
            duration_s=r.duration_s,
            best=r.best_metrics,
            config=config,
            model_path=r.model_path,
            out_dir=r.out_dir,
        )
        if with_epochs:
            run.epochs = run_epochs(catalog, run.id)
        runs.append(run)
    return runs


def run_epochs(catalog: Catalog, run_id: int) -> list[dict[str, Any]]:
    """Per-epoch records (``{"epoch", "lr", "train": {...}, "val": {...}}``) of a run."""
    return catalog.runs.epochs(run_id)


def comparison_rows(runs: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per run: name, model, split and the best validation metrics in percent."""
    rows = []
    for run in runs:
        row: dict[str, Any] = {"Run": run.name, "Model": run.model, "Split": run.split or ""}
        for key, heading in PAPER_COLUMNS:
            value = run.best.get(key)
            row[heading] = None if value is None else round(100 * float(value), 3)
        rows.append(row)
    return rows


def comparison_csv(runs: list[RunRecord]) -> str:
    rows = comparison_rows(runs)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def comparison_markdown(runs: list[RunRecord]) -> str:
    """The paper's Table 5 layout as a Markdown table (values in %)."""
    rows = comparison_rows(runs)
    if not rows:
        return ""
    heads = list(rows[0])
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    for row in rows:
        cells = ["" if row[h] is None else (f"{row[h]:.3f}" if isinstance(row[h], float) else str(row[h])) for h in heads]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
