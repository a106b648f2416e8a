"""Train/val/test splits: ``splits`` and ``split_tiles``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from casdesk.core.project.stores._base import Store


class SplitRow(NamedTuple):
    id: int
    name: str
    kind: str
    params: dict[str, Any]
    created: str
    counts: dict[str, int]  # tiles per part


class SplitsStore(Store):
    def find(self, name: str) -> int | None:
        """The id of the split ``name``, None if there is none."""
        row = self._catalog.execute("SELECT id FROM splits WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def create(self, name: str, kind: str, params: dict[str, Any], parts: Mapping[int, str]) -> int:
        """A new split (``parts``: tile id -> train/val/test); returns its id."""
        from casdesk.core.project.catalog import utc_now  # the catalog imports this package

        with self._catalog.transaction() as db:
            cur = db.execute(
                "INSERT INTO splits(name, kind, params, created) VALUES (?, ?, ?, ?)",
                (name, kind, json.dumps(params, sort_keys=True), utc_now()),
            )
            split_id = int(cur.lastrowid or 0)
            db.executemany(
                "INSERT INTO split_tiles(split_id, tile_id, part) VALUES (?, ?, ?)",
                [(split_id, tid, part) for tid, part in sorted(parts.items())],
            )
        return split_id

    def delete(self, split_id: int) -> None:
        with self._catalog.transaction() as db:
            db.execute("DELETE FROM splits WHERE id = ?", (split_id,))

    def parts(self, split_id: int) -> dict[int, str]:
        """tile id -> part of the split."""
        rows = self._catalog.query(
            "SELECT tile_id, part FROM split_tiles WHERE split_id = ? ORDER BY tile_id", (split_id,))
        return {int(r[0]): str(r[1]) for r in rows}

    def list_all(self) -> list[SplitRow]:
        """Every split, oldest first, with its tile count per part."""
        out = []
        for r in self._catalog.query("SELECT id, name, kind, params, created FROM splits ORDER BY id"):
            counts = {
                str(c[0]): int(c[1])
                for c in self._catalog.query(
                    "SELECT part, COUNT(*) FROM split_tiles WHERE split_id = ? GROUP BY part", (r[0],))
            }
            out.append(SplitRow(int(r[0]), r[1], r[2], json.loads(r[3]), r[4], counts))
        return out

    def latest_name(self) -> str | None:
        """Name of the newest split."""
        row = self._catalog.execute("SELECT name FROM splits ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def names(self) -> list[str]:
        """Split names, oldest first."""
        return [str(r[0]) for r in self._catalog.query("SELECT name FROM splits ORDER BY id")]

    def names_and_kinds(self) -> list[tuple[str, str]]:
        """(name, kind) of every split, oldest first: what a split chooser lists, without
        :meth:`list_all`'s tile counts (a scan of the split's tiles: ~10 ms at 20k)."""
        return [(str(r[0]), str(r[1])) for r in self._catalog.query("SELECT name, kind FROM splits ORDER BY id")]

    def parts_by_name(self, name: str) -> list[tuple[int, str]]:
        """(tile id, part) of the split ``name`` (none if there is no such split)."""
        rows = self._catalog.query(
            "SELECT st.tile_id, st.part FROM split_tiles st JOIN splits s ON s.id = st.split_id"
            " WHERE s.name = ?",
            (name,),
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    def assign(self, name: str, tile_ids: Sequence[int], part: str) -> int:
        """Put tiles in ``part`` of split ``name`` (created with kind 'manual' if new); its id."""
        from casdesk.core.project.catalog import utc_now  # the catalog imports this package

        with self._catalog.transaction() as db:
            row = db.execute("SELECT id FROM splits WHERE name = ?", (name,)).fetchone()
            if row is None:
                cur = db.execute(
                    "INSERT INTO splits(name, kind, params, created) VALUES (?, 'manual', ?, ?)",
                    (name, json.dumps({}), utc_now()),
                )
                sid = int(cur.lastrowid or 0)
            else:
                sid = int(row[0])
            db.executemany(
                "INSERT INTO split_tiles(split_id, tile_id, part) VALUES (?, ?, ?)"
                " ON CONFLICT(split_id, tile_id) DO UPDATE SET part = excluded.part",
                [(sid, int(t), part) for t in tile_ids],
            )
        return sid

    def train_resolutions(self, split_id: int) -> list[float]:
        """The distinct ground resolutions (m) of the split's training tiles, sorted."""
        rows = self._catalog.query(
            "SELECT DISTINCT COALESCE(s.resolution_m, d.resolution_m) FROM split_tiles st"
            " JOIN tiles t ON t.id = st.tile_id JOIN subdatasets d ON d.id = t.subdataset_id"
            " LEFT JOIN scenes s ON s.id = t.scene_id"
            " WHERE st.split_id = ? AND st.part = 'train'",
            (split_id,),
        )
        return sorted(float(r[0]) for r in rows if r[0] is not None)
