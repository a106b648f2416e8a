"""Tile queries the catalog's ``tiles()`` does not answer (overlaps, names, samples)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from casdesk.core.project.stores._base import Store


class TileName(NamedTuple):
    id: int
    name: str
    subdataset: str


class TileLabelled(NamedTuple):
    id: int
    label_pixels: int | None


class TileRows(Store):
    def overlapping(self, scene_id: int | None, x0: float, y0: float, x1: float, y1: float) -> list[int]:
        """Tiles cut from the scene whose window overlaps the box (scene pixels, open bounds)."""
        rows = self._catalog.query(
            "SELECT id FROM tiles WHERE scene_id = ? AND row_off IS NOT NULL"
            " AND col_off < ? AND col_off + width > ? AND row_off < ? AND row_off + height > ?",
            (scene_id, x1, x0, y1, y0),
        )
        return [int(r[0]) for r in rows]

    def names(self, name: str | None = None) -> list[TileName]:
        """(id, name, subdataset) of every tile (or of those named ``name``), in id order."""
        sql = "SELECT t.id, t.name, d.name AS sub FROM tiles t JOIN subdatasets d ON d.id = t.subdataset_id"
        rows = self._catalog.query(sql + (" WHERE t.name = ?" if name is not None else "") + " ORDER BY t.id",
                                   (name,) if name is not None else ())
        return [TileName(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def labelled_of_scene(self, scene_id: int) -> list[TileLabelled]:
        rows = self._catalog.query("SELECT id, label_pixels FROM tiles WHERE scene_id = ? ORDER BY id", (scene_id,))
        return [TileLabelled(int(r[0]), r[1]) for r in rows]

    def labelled_of_subdataset_of(self, tile_id: int) -> tuple[str, list[TileLabelled]]:
        """The subdataset of ``tile_id`` and (id, label pixels) of its tiles."""
        rows = self._catalog.query(
            "SELECT t.id, t.label_pixels, d.name AS sub FROM tiles t JOIN subdatasets d ON d.id = t.subdataset_id"
            " WHERE t.subdataset_id = (SELECT subdataset_id FROM tiles WHERE id = ?) ORDER BY t.id",
            (tile_id,),
        )
        return (str(rows[0]["sub"]) if rows else ""), [TileLabelled(int(r[0]), r[1]) for r in rows]

    _TABLE_SQL = (
        "SELECT t.id, t.name, t.subdataset_id, COALESCE(s.sensor, d.sensor), t.scene_id, t.row_off,"
        " t.col_off, t.width, t.height, t.image_path, t.mask_path, t.modified, t.label_pixels,"
        " t.valid_pixels FROM tiles t JOIN subdatasets d ON d.id = t.subdataset_id"
        " LEFT JOIN scenes s ON s.id = t.scene_id ORDER BY t.id"
    )

    def table_rows(self) -> list[Sequence[Any]]:
        """Every tile as (id, name, subdataset id, sensor, scene id, row_off, col_off, width,
        height, image_path, mask_path, modified, label_pixels, valid_pixels), in id order:
        the bulk read behind the browser's tile table (one query, no per-row objects)."""
        return self._catalog.connection.execute(self._TABLE_SQL).fetchall()

    def subdataset_names(self) -> dict[int, str]:
        """Subdataset id -> name."""
        return {int(r[0]): str(r[1]) for r in self._catalog.query("SELECT id, name FROM subdatasets")}

    def qc_rows(self) -> list[tuple[int, str, str, str]]:
        """(id, name, subdataset, sensor or "") of every tile, in id order (the QC table's rows)."""
        rows = self._catalog.query(
            "SELECT t.id, t.name, d.name, COALESCE(s.sensor, d.sensor, '') FROM tiles t"
            " JOIN subdatasets d ON d.id = t.subdataset_id LEFT JOIN scenes s ON s.id = t.scene_id"
            " ORDER BY t.id"
        )
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3] or "")) for r in rows]

    def sensor_rows(self) -> list[tuple[int, str | None, str]]:
        """(tile id, sensor of its scene else of its subdataset, subdataset name) of every tile."""
        rows = self._catalog.query(
            "SELECT t.id, COALESCE(s.sensor, d.sensor) AS sensor, d.name AS subdataset FROM tiles t"
            " JOIN subdatasets d ON d.id = t.subdataset_id LEFT JOIN scenes s ON s.id = t.scene_id"
        )
        return [(int(r[0]), r[1], str(r[2])) for r in rows]

    def sensors(self) -> set[str | None]:
        """The sensors the tiles come from (the scene's, else the subdataset's)."""
        rows = self._catalog.query(
            "SELECT DISTINCT COALESCE(s.sensor, d.sensor) AS sensor FROM tiles t"
            " JOIN subdatasets d ON d.id = t.subdataset_id LEFT JOIN scenes s ON s.id = t.scene_id"
        )
        return {r[0] for r in rows}
