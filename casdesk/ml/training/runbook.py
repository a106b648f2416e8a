"""The run's catalog rows (``runs``, ``run_epochs``) and its folder (``config.json``,
``log.csv``); every write happens on rank 0 only."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from casdesk.core.dataset.splits import split_id
from casdesk.core.project.catalog import Catalog
from casdesk.ml.training import distributed
from casdesk.ml.training.config import TrainConfig


class RunBook:
    """The run's catalog rows and folder; every write happens on rank 0 only."""

    def __init__(self, catalog: Catalog, ctx: distributed.DistContext):
        self.catalog = catalog
        self.ctx = ctx
        self.run_id: int | None = None
        self.run_dir = Path(".")

    def start(self, cfg: TrainConfig, model_name: str, split: str, device_text: str, resumed: bool) -> None:
        if not self.ctx.is_main:
            return
        if resumed and self.run_id is not None:
            with self.catalog.transaction():
                self.catalog.runs.resume(self.run_id, device_text)
                self.catalog.claim_run(self.run_id)  # its process: a killed run is marked interrupted later
            return
        name = cfg.name or f"{model_name}-{split}"
        with self.catalog.transaction():
            self.run_id = self.catalog.runs.start_training(
                name, cfg.to_dict(), split_id(self.catalog, split), device_text)
            self.catalog.claim_run(self.run_id)
        if cfg.out_dir:
            self.run_dir = Path(cfg.out_dir).expanduser().absolute()
        else:
            slug = model_name.replace(":", "-")
            self.run_dir = self.catalog.data_dir / "runs" / f"run{self.run_id:04d}-{slug}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.catalog.runs.set_out_dir(self.run_id, str(self.run_dir))
        (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2), encoding="utf-8")

    def finish(self, status: str, elapsed: float, best_metrics: dict[str, Any]) -> None:
        if not self.ctx.is_main or self.run_id is None:
            return
        model_path = self.run_dir / "model.pt"
        self.catalog.runs.finish(self.run_id, status, elapsed,
                                 str(model_path) if model_path.exists() else None, best_metrics)

    def record_epoch(self, record: dict[str, Any], history: list[dict[str, Any]],
                     best_metrics: dict[str, Any], elapsed: float) -> None:
        if not self.ctx.is_main:
            return
        self.write_csv(history)
        if self.run_id is not None:
            self.catalog.runs.add_epoch(self.run_id, int(record["epoch"]), record, elapsed, best_metrics)

    def write_csv(self, history: list[dict[str, Any]]) -> None:
        rows = [_flatten(r) for r in history]
        columns: list[str] = []
        for r in rows:
            columns += [k for k in r if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        path = self.run_dir / "log.csv"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(buf.getvalue(), encoding="utf-8")
        os.replace(tmp, path)

    def resolutions(self, split: str) -> list[float]:
        return self.catalog.splits.train_resolutions(split_id(self.catalog, split))


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}_"))
        else:
            out[f"{prefix}{k}"] = v
    return out
