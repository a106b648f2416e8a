"""Stored tile predictions: ``predictions`` (one row per tile and model)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from casdesk.core.project.stores._base import Store


class PredictionRow(NamedTuple):
    """A row as written: paths already in their stored form (``catalog.store_path``)."""

    tile_id: int
    model: str
    mask_path: str
    prob_path: str | None
    confidence: float | None
    iou: float | None
    created: str


class TilePrediction(NamedTuple):
    tile_id: int
    model: str
    mask_path: Path | None
    prob_path: Path | None
    iou: float | None


class PredictionsStore(Store):
    def upsert(self, rows: Sequence[PredictionRow | tuple[object, ...]]) -> None:
        """Insert or replace (per tile and model) predictions, in one transaction."""
        with self._catalog.transaction() as db:
            db.executemany(
                "INSERT INTO predictions(tile_id, model, mask_path, prob_path, confidence, iou, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(tile_id, model) DO UPDATE SET"
                " mask_path=excluded.mask_path, prob_path=excluded.prob_path,"
                " confidence=excluded.confidence, iou=excluded.iou, created=excluded.created",
                rows,
            )

    def _rows(self, sql: str, params: Sequence[object]) -> list[TilePrediction]:
        c = self._catalog
        return [
            TilePrediction(int(r["tile_id"]), str(r["model"]), c.resolve(r["mask_path"]),
                           c.resolve(r["prob_path"]), r["iou"])
            for r in c.query(sql, params)
        ]

    def for_tile(self, tile_id: int) -> list[TilePrediction]:
        """The tile's predictions, newest first."""
        return self._rows(
            "SELECT tile_id, model, mask_path, prob_path, iou FROM predictions WHERE tile_id = ?"
            " ORDER BY created DESC", (tile_id,))

    def of_model(self, model: str) -> list[TilePrediction]:
        """Every tile prediction of ``model``, in tile order."""
        return self._rows(
            "SELECT tile_id, model, mask_path, prob_path, iou FROM predictions WHERE model = ?"
            " ORDER BY tile_id", (model,))

    def models(self) -> list[str]:
        """Names of the models with stored predictions, sorted."""
        return [str(r[0]) for r in self._catalog.query("SELECT DISTINCT model FROM predictions ORDER BY model")]

    def models_newest_first(self) -> list[str]:
        """Names of the models with stored predictions, the most recently predicted first."""
        rows = self._catalog.query(
            "SELECT model, MAX(created) AS c FROM predictions GROUP BY model ORDER BY c DESC, model")
        return [str(r[0]) for r in rows]

    def predicted_tile_ids(self) -> list[int]:
        """Tiles with at least one stored prediction."""
        return [int(r[0]) for r in self._catalog.query(
            "SELECT DISTINCT tile_id FROM predictions WHERE tile_id IS NOT NULL")]
