"""Training and evaluation runs: ``runs`` and ``run_epochs``."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from casdesk.core.project.stores._base import Store


class RunRow(NamedTuple):
    """A run as stored (JSON columns decoded)."""

    id: int
    name: str
    kind: str
    status: str
    config: dict[str, Any]
    split_name: str | None
    device: str | None
    started: str
    duration_s: float | None
    best_metrics: dict[str, Any]
    model_path: str | None
    out_dir: str | None


def _now() -> str:
    from casdesk.core.project.catalog import utc_now  # the catalog imports this package

    return utc_now()


class RunsStore(Store):
    def start_training(self, name: str, config: dict[str, Any], split_id: int | None, device: str) -> int:
        """A new ``running`` training run; returns its id."""
        with self._catalog.transaction() as db:
            cur = db.execute(
                "INSERT INTO runs(name, kind, status, config, split_id, device, started)"
                " VALUES (?, 'train', 'running', ?, ?, ?, ?)",
                (name, json.dumps(config), split_id, device, _now()),
            )
            return int(cur.lastrowid or 0)

    def resume(self, run_id: int, device: str) -> None:
        """A resumed run is ``running`` again, on ``device``."""
        with self._catalog.transaction() as db:
            db.execute("UPDATE runs SET status = 'running', device = ?, finished = NULL WHERE id = ?",
                       (device, run_id))

    def set_out_dir(self, run_id: int, out_dir: str) -> None:
        with self._catalog.transaction() as db:
            db.execute("UPDATE runs SET out_dir = ? WHERE id = ?", (out_dir, run_id))

    def finish(self, run_id: int, status: str, duration_s: float, model_path: str | None,
               best_metrics: dict[str, Any]) -> None:
        with self._catalog.transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished = ?, duration_s = ?, model_path = ?,"
                " best_metrics = ? WHERE id = ?",
                (status, _now(), duration_s, model_path, json.dumps(best_metrics), run_id),
            )

    def add_epoch(self, run_id: int, epoch: int, record: dict[str, Any], duration_s: float,
                  best_metrics: dict[str, Any]) -> None:
        """Store one epoch's record (replacing a resumed run's earlier one) and the run's
        elapsed time and best metrics so far, in one transaction."""
        with self._catalog.transaction() as db:
            db.execute("INSERT OR REPLACE INTO run_epochs(run_id, epoch, metrics) VALUES (?, ?, ?)",
                       (run_id, epoch, json.dumps(record)))
            db.execute("UPDATE runs SET duration_s = ?, best_metrics = ? WHERE id = ?",
                       (duration_s, json.dumps(best_metrics), run_id))

    def add_evaluation(self, name: str, config: dict[str, Any], split_id: int | None,
                       device: str | None, duration_s: float, model_path: str,
                       metrics: dict[str, Any]) -> int:
        """A finished ``evaluate`` run; returns its id."""
        now = _now()
        with self._catalog.transaction() as db:
            cur = db.execute(
                "INSERT INTO runs(name, kind, status, config, split_id, device, started, finished,"
                " duration_s, model_path, best_metrics)"
                " VALUES (?, 'evaluate', 'finished', ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, json.dumps(config), split_id, device, now, now, duration_s, model_path,
                 json.dumps(metrics)),
            )
            return int(cur.lastrowid or 0)

    def list_all(self, kind: str | None = "train") -> list[RunRow]:
        """Runs of ``kind`` (every kind when None), newest first."""
        sql = ("SELECT r.*, s.name AS split_name FROM runs r LEFT JOIN splits s ON s.id = r.split_id"
               + (" WHERE r.kind = ?" if kind is not None else "") + " ORDER BY r.id DESC")
        rows = self._catalog.query(sql, (kind,) if kind is not None else ())
        return [
            RunRow(
                id=int(r["id"]),
                name=r["name"],
                kind=r["kind"],
                status=r["status"],
                config=json.loads(r["config"] or "{}"),
                split_name=r["split_name"],
                device=r["device"],
                started=r["started"],
                duration_s=r["duration_s"],
                best_metrics=json.loads(r["best_metrics"] or "{}"),
                model_path=r["model_path"],
                out_dir=r["out_dir"],
            )
            for r in rows
        ]

    def epochs(self, run_id: int) -> list[dict[str, Any]]:
        """The run's per-epoch records, in epoch order."""
        rows = self._catalog.query("SELECT metrics FROM run_epochs WHERE run_id = ? ORDER BY epoch", (run_id,))
        return [json.loads(r[0]) for r in rows]
