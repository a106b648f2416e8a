"""Label rows beyond the catalog's basic add/update/delete (``labels``, ``label_edits``,
``label_documents``) and the mask bookkeeping (``mask_pending``, ``mask_bases``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from casdesk.core.project.stores._base import Store


def _now() -> str:
    from casdesk.core.project.catalog import utc_now  # the catalog imports this package

    return utc_now()


class LabelRecords(Store):
    """Label rows and the LabelMe document headers kept for a loss-free export."""

    def count_on_tile(self, tile_id: int) -> int:
        """Labels owned by the tile itself (not by its scene)."""
        return int(self._catalog.execute("SELECT COUNT(*) FROM labels WHERE tile_id = ?", (tile_id,)).fetchone()[0])

    def ids_on_tile(self, tile_id: int) -> list[int]:
        return [int(r[0]) for r in self._catalog.query("SELECT id FROM labels WHERE tile_id = ? ORDER BY id", (tile_id,))]

    def geometry(self, label_id: int) -> str | None:
        """The label's pixel geometry (WKT), None if there is no such label."""
        row = self._catalog.execute("SELECT geometry_px FROM labels WHERE id = ?", (label_id,)).fetchone()
        return None if row is None else str(row[0])

    def geometry_and_attributes(self, label_id: int) -> tuple[str, dict[str, Any]] | None:
        row = self._catalog.execute("SELECT geometry_px, attributes FROM labels WHERE id = ?", (label_id,)).fetchone()
        return None if row is None else (str(row[0]), json.loads(row[1] or "{}"))

    def set_attributes(self, label_id: int, attributes: dict[str, Any]) -> None:
        with self._catalog.transaction() as db:
            db.execute("UPDATE labels SET attributes = ? WHERE id = ?", (json.dumps(attributes), label_id))

    def discard(self, label_id: int) -> None:
        """Delete a label without an edit record (a re-import replaces what it imported)."""
        with self._catalog.transaction() as db:
            db.execute("DELETE FROM labels WHERE id = ?", (label_id,))

    def discard_on_tile(self, tile_id: int) -> None:
        """Delete the tile's own labels without edit records (its LabelMe file is imported again)."""
        with self._catalog.transaction() as db:
            db.execute("DELETE FROM labels WHERE tile_id = ?", (tile_id,))

    def clip(self, label_id: int, before_px: str, geometry_px: str, geometry_crs: str | None,
             author: str | None) -> None:
        """Reshape a label keeping its source (a predicted polygon cut by a tile border),
        with an ``update`` edit record."""
        now = _now()
        with self._catalog.transaction() as db:
            db.execute("UPDATE labels SET geometry_px = ?, geometry_crs = ?, modified = ? WHERE id = ?",
                       (geometry_px, geometry_crs, now, label_id))
            db.execute(
                "INSERT INTO label_edits(label_id, action, geometry_before, geometry_after, author, at)"
                " VALUES (?, 'update', ?, ?, ?, ?)",
                (label_id, before_px, geometry_px, author, now),
            )

    def move_to_top(self, label_id: int) -> int:
        """Give a label a new, highest id (labels paint in id order); returns the new id."""
        with self._catalog.transaction() as db:
            new = int(db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM labels").fetchone()[0])
            db.execute("UPDATE labels SET id = ? WHERE id = ?", (new, label_id))
            db.execute("UPDATE label_edits SET label_id = ? WHERE label_id = ?", (new, label_id))
        return new

    def of_source(self, *, scene_id: int | None = None, tile_id: int | None = None,
                  source: str) -> list[tuple[int, str]]:
        """(id, pixel WKT) of the scene's or tile's labels of ``source`` (imported, edited, predicted)."""
        owner, owner_id = ("scene_id", scene_id) if scene_id is not None else ("tile_id", tile_id)
        rows = self._catalog.query(
            f"SELECT id, geometry_px FROM labels WHERE {owner} = ? AND source = ? ORDER BY id",
            (owner_id, source),
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    def from_file(self, scene_id: int, source_file: str) -> list[tuple[int, str]]:
        """(id, pixel WKT) of the scene's labels imported from ``source_file``."""
        rows = self._catalog.query(
            "SELECT id, geometry_px FROM labels WHERE scene_id = ?"
            " AND json_extract(attributes, '$.source_file') = ?",
            (scene_id, source_file),
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    def source_files(self) -> set[str]:
        """Files labels were imported from (label documents and per-label ``source_file``)."""
        out = {str(r[0]) for r in self._catalog.query(
            "SELECT source FROM label_documents WHERE source IS NOT NULL")}
        out |= {str(r[0]) for r in self._catalog.query(
            "SELECT DISTINCT json_extract(attributes, '$.source_file') FROM labels"
            " WHERE json_extract(attributes, '$.source_file') IS NOT NULL")}
        return out

    def put_document(self, tile_id: int, source: str, header: dict[str, Any]) -> None:
        """Keep an imported LabelMe document's top-level fields for the tile."""
        with self._catalog.transaction() as db:
            db.execute(
                "INSERT INTO label_documents(tile_id, source, header) VALUES (?, ?, ?)"
                " ON CONFLICT(tile_id) DO UPDATE SET source = excluded.source, header = excluded.header",
                (tile_id, source, json.dumps(header)),
            )

    def document(self, tile_id: int) -> tuple[dict[str, Any], str | None] | None:
        """(header, source file) kept for the tile, None if none."""
        row = self._catalog.execute(
            "SELECT header, source FROM label_documents WHERE tile_id = ?", (tile_id,)).fetchone()
        return None if row is None else (json.loads(row[0]), row[1])


class MaskRecords(Store):
    """Which masks are stale (``mask_pending``) and which imported rasters are base layers."""

    def mark_pending(self, tile_ids: Iterable[int]) -> None:
        now = _now()
        with self._catalog.transaction() as db:
            db.executemany(
                "INSERT INTO mask_pending(tile_id, since) VALUES (?, ?)"
                " ON CONFLICT(tile_id) DO UPDATE SET since = excluded.since",
                [(int(i), now) for i in tile_ids],
            )

    def pending(self) -> list[int]:
        """Tiles marked stale; none for a project not yet migrated (opened read-only)."""
        try:
            return [int(r[0]) for r in self._catalog.query("SELECT tile_id FROM mask_pending ORDER BY tile_id")]
        except sqlite3.OperationalError:
            return []

    def pending_since(self, tile_id: int) -> str | None:
        row = self._catalog.execute("SELECT since FROM mask_pending WHERE tile_id = ?", (tile_id,)).fetchone()
        return None if row is None else str(row[0])

    def clear_pending(self, tile_id: int, since: str) -> None:
        """Clear the marker unless the tile was marked again after ``since``."""
        with self._catalog.transaction() as db:
            db.execute("DELETE FROM mask_pending WHERE tile_id = ? AND since = ?", (tile_id, since))

    def unmark(self, tile_id: int) -> None:
        """Clear the tile's marker whenever it was set (its mask was just imported as is)."""
        with self._catalog.transaction() as db:
            db.execute("DELETE FROM mask_pending WHERE tile_id = ?", (tile_id,))

    def base(self, tile_id: int) -> tuple[str, str] | None:
        """(stored path, state) of the tile's base layer, None if it has none."""
        row = self._catalog.execute("SELECT path, added FROM mask_bases WHERE tile_id = ?", (tile_id,)).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def set_bases(self, pairs: Iterable[tuple[int, str]]) -> None:
        """(tile id, stored path) base layers, replacing earlier ones."""
        now = _now()
        with self._catalog.transaction() as db:
            db.executemany(
                "INSERT INTO mask_bases(tile_id, path, added) VALUES (?, ?, ?)"
                " ON CONFLICT(tile_id) DO UPDATE SET path = excluded.path, added = excluded.added",
                [(int(t), p, now) for t, p in pairs],
            )

    def set_base_state(self, tile_id: int, state: str) -> None:
        with self._catalog.transaction() as db:
            db.execute("UPDATE mask_bases SET added = ? WHERE tile_id = ?", (state, tile_id))
