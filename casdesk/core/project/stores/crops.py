"""Crops as transactions (issue 13): the scene-level crop lock (``scene_crops``) and the
tiles a running crop has written (``crop_staging``)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from casdesk.core.project.stores._base import Store


def _now() -> str:
    from casdesk.core.project.catalog import utc_now  # the catalog imports this package

    return utc_now()


class CropLock(NamedTuple):
    state: str  # running, interrupted or complete
    params: dict[str, Any]
    out_root: str | None
    pid: int | None
    host: str | None
    started: str


class DroppedTiles(NamedTuple):
    decided: int  # tiles that had a QC decision
    split_rows: int  # split memberships removed
    derived: list[Path]  # their stored prediction files (to delete after the commit)


class CropsStore(Store):
    def lock(self, scene_id: int) -> CropLock | None:
        row = self._catalog.execute("SELECT * FROM scene_crops WHERE scene_id = ?", (scene_id,)).fetchone()
        if row is None:
            return None
        return CropLock(row["state"], json.loads(row["params"]), row["out_root"], row["pid"], row["host"],
                        row["started"])

    def start(self, scene_id: int, params: dict[str, Any], out_root: str) -> None:
        """Take (or retake) the scene's crop lock for this process."""
        with self._catalog.transaction() as db:
            db.execute(
                "INSERT INTO scene_crops(scene_id, state, params, out_root, pid, host, started, finished)"
                " VALUES (?, 'running', ?, ?, ?, ?, ?, NULL) ON CONFLICT(scene_id) DO UPDATE SET"
                " state = 'running', params = excluded.params, out_root = excluded.out_root,"
                " pid = excluded.pid, host = excluded.host, started = excluded.started, finished = NULL",
                (scene_id, json.dumps(params), out_root, os.getpid(), socket.gethostname(), _now()),
            )

    def mark_interrupted(self, scene_id: int) -> None:
        """This process's running crop of the scene stopped (resumable)."""
        with self._catalog.transaction() as db:
            db.execute("UPDATE scene_crops SET state = 'interrupted', pid = NULL WHERE scene_id = ?"
                       " AND pid = ?", (scene_id, os.getpid()))

    def complete(self, scene_id: int) -> None:
        """The crop replaced the scene's tiles: drop its staging, release the lock as complete."""
        with self._catalog.transaction() as db:
            db.execute("DELETE FROM crop_staging WHERE scene_id = ?", (scene_id,))
            db.execute("UPDATE scene_crops SET state = 'complete', pid = NULL, finished = ? WHERE scene_id = ?",
                       (_now(), scene_id))

    def staged(self, scene_id: int) -> dict[str, dict[str, Any]]:
        """tile name -> the tile row staged by the scene's crop, in name order."""
        rows = self._catalog.query("SELECT name, row FROM crop_staging WHERE scene_id = ? ORDER BY name",
                                   (scene_id,))
        return {str(r[0]): json.loads(r[1]) for r in rows}

    def stage(self, scene_id: int, rows: Sequence[dict[str, Any]]) -> None:
        """Record tiles the crop has written (paths as strings)."""
        with self._catalog.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO crop_staging(scene_id, name, row) VALUES (?, ?, ?)",
                [(scene_id, r["name"], json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in r.items()}))
                 for r in rows],
            )

    def clear_staged(self, scene_id: int) -> None:
        with self._catalog.transaction() as db:
            db.execute("DELETE FROM crop_staging WHERE scene_id = ?", (scene_id,))

    def drop_tiles(self, tile_ids: Sequence[int]) -> DroppedTiles:
        """Delete tiles a re-crop replaced, counting what went with them."""
        ids = list(tile_ids)
        if not ids:
            return DroppedTiles(0, 0, [])
        marks = ",".join("?" * len(ids))
        c = self._catalog
        with c.transaction() as db:
            decided = int(db.execute(
                f"SELECT COUNT(DISTINCT tile_id) FROM qc_decisions WHERE tile_id IN ({marks})", ids).fetchone()[0])
            split_rows = int(db.execute(
                f"SELECT COUNT(*) FROM split_tiles WHERE tile_id IN ({marks})", ids).fetchone()[0])
            derived = [c.root / p for r in db.execute(
                f"SELECT mask_path, prob_path FROM predictions WHERE tile_id IN ({marks})", ids) for p in r if p]
            db.executemany("DELETE FROM tiles WHERE id = ?", [(i,) for i in ids])
        return DroppedTiles(decided, split_rows, derived)
