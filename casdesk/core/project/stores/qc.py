"""QC results other modules read, and the label-error finder's ranking (``suspects``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from casdesk.core.project.stores._base import Store


class SuspectRow(NamedTuple):
    tile_id: int
    tile_name: str
    subdataset: str
    model: str
    score: float
    kind: str
    attributes: dict[str, Any]


class QcRecords(Store):
    def has_results(self) -> bool:
        """Whether QC ever ran on the project (a metric or a decision is stored)."""
        row = self._catalog.execute(
            "SELECT EXISTS(SELECT 1 FROM qc_metrics) OR EXISTS(SELECT 1 FROM qc_decisions)").fetchone()
        return bool(row[0])

    def ranked(self, metric: str, version: int) -> list[int]:
        """Tiles with ``metric`` at ``version``, highest value first."""
        rows = self._catalog.query(
            "SELECT tile_id FROM qc_metrics WHERE metric = ? AND version = ? ORDER BY value DESC, tile_id",
            (metric, version),
        )
        return [int(r[0]) for r in rows]


class SuspectsStore(Store):
    def replace(self, model: str, records: Sequence[tuple[int, str, float, str, dict[str, Any], str]],
                metric: str, version: int, queue: Sequence[tuple[int, float]], computed: str) -> None:
        """Replace ``model``'s ranking (tile, model, score, kind, attributes, created) and the
        review queue kept as QC metric ``metric`` ((tile, score) pairs), in one transaction."""
        with self._catalog.transaction() as db:
            db.execute("DELETE FROM suspects WHERE model = ?", (model,))
            db.executemany(
                "INSERT INTO suspects(tile_id, model, score, kind, attributes, created) VALUES (?, ?, ?, ?, ?, ?)",
                [(t, m, s, k, json.dumps(a), c) for t, m, s, k, a, c in records],
            )
            db.execute("DELETE FROM qc_metrics WHERE metric = ?", (metric,))
            db.executemany(
                "INSERT INTO qc_metrics(tile_id, metric, version, value, computed) VALUES (?, ?, ?, ?, ?)",
                [(t, metric, version, score, computed) for t, score in queue],
            )

    def ranking(self, model: str | None = None, top: int | None = None) -> list[SuspectRow]:
        """The stored ranking of ``model`` (default: every model), best first."""
        sql = ("SELECT s.tile_id, t.name, d.name, s.model, s.score, s.kind, s.attributes FROM suspects s"
               " JOIN tiles t ON t.id = s.tile_id JOIN subdatasets d ON d.id = t.subdataset_id")
        params: list[Any] = []
        if model is not None:
            sql += " WHERE s.model = ?"
            params.append(model)
        sql += " ORDER BY s.score DESC, s.tile_id"
        if top is not None:
            sql += " LIMIT ?"
            params.append(int(top))
        return [SuspectRow(int(r[0]), r[1], r[2], r[3], float(r[4]), r[5], json.loads(r[6]))
                for r in self._catalog.query(sql, params)]
