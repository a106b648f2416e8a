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


_STALE_SQL = (
    "SELECT t.id FROM tiles t JOIN (SELECT tile_id, MIN(computed) AS c FROM qc_metrics GROUP BY tile_id) m"
    " ON m.tile_id = t.id WHERE m.c < t.modified"
)
"""Tiles changed after their oldest metric was computed (ISO UTC strings compare in order)."""


class QcRecords(Store):
    """QC metrics, manual decisions and named rule presets."""

    # ---- metrics
    def metric_stamps(self) -> list[tuple[int, str, int, str]]:
        """(tile id, metric, version, computed) of every stored metric."""
        return [(int(r[0]), str(r[1]), int(r[2]), str(r[3])) for r in self._catalog.query(
            "SELECT tile_id, metric, version, computed FROM qc_metrics")]

    def metric_values(self, tile_ids: Sequence[int] | None = None) -> list[tuple[int, str, int, float | None]]:
        """(tile id, metric, version, value) of every stored metric, or of those tiles'
        (at most 900 ids per call: SQLite's parameter limit)."""
        sql = "SELECT tile_id, metric, version, value FROM qc_metrics"
        params: list[int] = []
        if tile_ids is not None:
            params = [int(t) for t in tile_ids]
            sql += f" WHERE tile_id IN ({','.join('?' * len(params))})"
        return [(int(r[0]), str(r[1]), int(r[2]), r[3]) for r in self._catalog.query(sql, params)]

    def put_metrics(self, rows: Sequence[tuple[int, str, int, float | None, str]]) -> None:
        """Insert or replace (tile id, metric, version, value, computed) rows."""
        with self._catalog.transaction() as db:
            db.executemany(
                "INSERT INTO qc_metrics(tile_id, metric, version, value, computed)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(tile_id, metric) DO UPDATE SET"
                " version = excluded.version, value = excluded.value, computed = excluded.computed",
                rows,
            )

    def stale_tile_ids(self) -> list[int]:
        """Tiles whose image or mask changed after their metrics were computed."""
        return [int(r[0]) for r in self._catalog.query(_STALE_SQL)]

    # ---- decisions
    def add_decisions(self, rows: Sequence[tuple[int, str, str | None, str | None, str]]) -> None:
        """Append (tile id, decision, note, author, decided) rows (the latest one counts)."""
        with self._catalog.transaction() as db:
            db.executemany(
                "INSERT INTO qc_decisions(tile_id, decision, note, author, decided) VALUES (?, ?, ?, ?, ?)", rows
            )

    def latest_decisions(self, tile_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """The latest decision row (tile_id, decision, note, author, decided) per tile, of
        every tile or of those (at most 900 ids per call)."""
        where, params = "", []
        if tile_ids is not None:
            params = [int(t) for t in tile_ids]
            where = f" WHERE tile_id IN ({','.join('?' * len(params))})"
        rows = self._catalog.query(
            "SELECT tile_id, decision, note, author, decided FROM qc_decisions"
            f" WHERE id IN (SELECT MAX(id) FROM qc_decisions{where} GROUP BY tile_id)",
            params,
        )
        return [dict(r) for r in rows]

    _LATEST_PAIRS = (
        "SELECT d.tile_id, d.decision FROM qc_decisions d"
        " JOIN (SELECT tile_id, MAX(id) AS id FROM qc_decisions {where} GROUP BY tile_id) m"
        " ON m.id = d.id"
    )

    def latest_decision_pairs(self, tile_ids: Sequence[int] | None = None) -> list[tuple[int, str]]:
        """(tile id, latest decision) per decided tile, of every tile or of those (at most
        900 ids per call); the fast form the tile table reads for 20,000 tiles."""
        if tile_ids is None:
            rows = self._catalog.query(self._LATEST_PAIRS.format(where=""))
        else:
            ids = [int(t) for t in tile_ids]
            rows = self._catalog.query(
                self._LATEST_PAIRS.format(where=f"WHERE tile_id IN ({','.join('?' * len(ids))})"), ids)
        return [(r[0], r[1]) for r in rows]

    def metric_rows_by_metric(self) -> list[tuple[str, int, float | None]]:
        """(metric, tile id, value) of every stored metric, grouped by metric (bulk read)."""
        rows = self._catalog.connection.execute(
            "SELECT metric, tile_id, value FROM qc_metrics ORDER BY metric").fetchall()
        return rows

    def decision_history(self, tile_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self._catalog.query(
            "SELECT decision, note, author, decided FROM qc_decisions WHERE tile_id = ? ORDER BY id", (tile_id,))]

    # ---- presets
    def preset_names(self) -> list[str]:
        return [str(r[0]) for r in self._catalog.query("SELECT name FROM qc_presets ORDER BY name")]

    def preset_text(self, name: str) -> str | None:
        """The preset's rules as stored (JSON), None if there is no such preset."""
        row = self._catalog.execute("SELECT rules FROM qc_presets WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def put_preset(self, name: str, rules_json: str) -> None:
        from casdesk.core.project.catalog import utc_now  # the catalog imports this package

        with self._catalog.transaction() as db:
            db.execute(
                "INSERT INTO qc_presets(name, rules, modified) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET rules = excluded.rules, modified = excluded.modified",
                (name, rules_json, utc_now()),
            )

    # ---- the project
    def fingerprint(self) -> tuple[Any, ...]:
        """A cheap summary that changes whenever anything the QC table holds changes: its
        metrics (count, newest computation, sum of values and versions), decisions (an
        append-only log: count, newest id), tiles (count, newest id and change time, names,
        subdatasets, scenes) and the subdatasets' and scenes' sensors. Read in one statement
        (one snapshot); about 10 ms per 20,000 tiles. Change times are written as "now", so
        a change raises the newest one."""
        row = self._catalog.query(
            "SELECT (SELECT json_array(count(*), max(computed), total(value), total(version))"
            "  FROM qc_metrics),"
            " (SELECT json_array(count(*), max(id)) FROM qc_decisions),"
            " (SELECT json_array(count(*), max(id), max(modified), total(length(name)),"
            "   total(subdataset_id * (id % 1009)), total(coalesce(scene_id, 0) * (id % 997))) FROM tiles),"
            " (SELECT group_concat(id || ':' || name || ':' || coalesce(sensor, ''), ',') FROM subdatasets),"
            " (SELECT group_concat(id || ':' || coalesce(sensor, ''), ',') FROM scenes)"
        )[0]
        return tuple(row)

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
