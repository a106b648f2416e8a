"""The project catalog: one SQLite file (``NAME.casdesk``) plus a data folder beside it.

The catalog is the single source of truth shared by the GUI and the CLI. Tile pixels live in
GeoTIFF files; the catalog stores their paths, relative to the project folder when they are
inside it. The package is split by responsibility:

* :mod:`casdesk.core.project.schema`: the tables, timestamps and migrations;
* :mod:`casdesk.core.project.connection`: opening and probing the file, the connection,
  lock and transactions (WAL mode, every write in ``with catalog.transaction():``);
* :mod:`casdesk.core.project.records`: the :class:`Scene`, :class:`Tile` and :class:`Label`
  records;
* :mod:`casdesk.core.project.stores`: one store per concept (runs, splits, QC, ...);
* this module: :class:`Catalog`, the facade the rest of casdesk uses: subdatasets, scenes,
  tiles and label polygons, and the stores as attributes.

Every name that used to live here (``utc_now``, ``project_paths``, ``SCHEMA_VERSION``, ...)
is still importable from this module.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casdesk.core.errors import CatalogError
from casdesk.core.project.connection import (
    DATA_SUFFIX,
    PROJECT_SIDECARS,
    PROJECT_SUFFIX,
    DatabaseOperationalError,
    ProjectConnection,
    is_project_file,
    project_paths,
)
from casdesk.core.project.records import (
    Label,
    Scene,
    Tile,
    label_from_row,
    scene_from_row,
    tile_from_row,
)
from casdesk.core.project.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, SENSORS, utc_now

if TYPE_CHECKING:
    from casdesk.core.project.stores import (
        CropsStore,
        LabelRecords,
        MaskRecords,
        PredictionsStore,
        QcRecords,
        RunsStore,
        SplitsStore,
        SuspectsStore,
        TileRows,
    )

__all__ = [  # the names importers use from here; they live in the modules above
    "APPLICATION_ID", "DATA_SUFFIX", "MIGRATIONS", "PROJECT_SIDECARS", "PROJECT_SUFFIX",
    "SCHEMA_VERSION", "SENSORS", "Catalog", "DatabaseOperationalError", "Label", "Scene",
    "Tile", "is_project_file", "project_paths", "utc_now",
]


class Catalog(ProjectConnection):
    """An open project. Use :meth:`create` or :meth:`open`; close with :meth:`close` or ``with``.

    One connection per Catalog object; open one Catalog per thread (the GUI thread and each
    worker), as SQLite connections are not shared between threads. The connection, the
    transactions and the paths come from
    :class:`~casdesk.core.project.connection.ProjectConnection`.
    """

    # ---- stores: one per concept (casdesk.core.project.stores)
    @functools.cached_property
    def runs(self) -> RunsStore:
        from casdesk.core.project.stores import RunsStore

        return RunsStore(self)

    @functools.cached_property
    def predictions(self) -> PredictionsStore:
        from casdesk.core.project.stores import PredictionsStore

        return PredictionsStore(self)

    @functools.cached_property
    def splits(self) -> SplitsStore:
        from casdesk.core.project.stores import SplitsStore

        return SplitsStore(self)

    @functools.cached_property
    def label_records(self) -> LabelRecords:
        from casdesk.core.project.stores import LabelRecords

        return LabelRecords(self)

    @functools.cached_property
    def mask_records(self) -> MaskRecords:
        from casdesk.core.project.stores import MaskRecords

        return MaskRecords(self)

    @functools.cached_property
    def tile_rows(self) -> TileRows:
        from casdesk.core.project.stores import TileRows

        return TileRows(self)

    @functools.cached_property
    def qc(self) -> QcRecords:
        from casdesk.core.project.stores import QcRecords

        return QcRecords(self)

    @functools.cached_property
    def suspects(self) -> SuspectsStore:
        from casdesk.core.project.stores import SuspectsStore

        return SuspectsStore(self)

    @functools.cached_property
    def crops(self) -> CropsStore:
        from casdesk.core.project.stores import CropsStore

        return CropsStore(self)

    # ---- runs
    def claim_run(self, run_id: int) -> None:
        """Record that this process runs ``run_id`` (pid and host), so that a run whose
        process was killed can be told from a live one and marked ``interrupted``
        (:func:`casdesk.core.project.cleanup.mark_dead_runs`)."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET pid = ?, host = ? WHERE id = ?", (os.getpid(), socket.gethostname(), run_id))

    # ---- subdatasets
    def ensure_subdataset(self, name: str, **fields: Any) -> int:
        """Return the id of subdataset ``name``, creating it with ``fields`` if new.

        Fields of an existing subdataset that are NULL are filled from ``fields``.
        """
        allowed = {"sensor", "resolution_m", "region", "trigger", "source", "licence", "notes"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown subdataset fields: {sorted(unknown)}")
        if fields.get("sensor") not in (None, *SENSORS):
            raise CatalogError(f"sensor must be SAT or UAV, not {fields['sensor']!r}")
        with self.transaction() as db:
            row = db.execute("SELECT id FROM subdatasets WHERE name = ?", (name,)).fetchone()
            if row is None:
                cols = ["name", *fields]
                cur = db.execute(
                    f"INSERT INTO subdatasets({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    (name, *fields.values()),
                )
                return int(cur.lastrowid or 0)
            sid = int(row[0])
            for key, value in fields.items():
                if value is not None:
                    db.execute(
                        f"UPDATE subdatasets SET {key} = ? WHERE id = ? AND {key} IS NULL",
                        (value, sid),
                    )
            return sid

    def update_subdataset(self, name: str, **fields: Any) -> None:
        """Overwrite metadata of an existing subdataset (the user edited it)."""
        if not fields:
            return
        with self.transaction() as db:
            sets = ", ".join(f"{k} = ?" for k in fields)
            cur = db.execute(f"UPDATE subdatasets SET {sets} WHERE name = ?", (*fields.values(), name))
            if cur.rowcount == 0:
                raise CatalogError(f"no subdataset named {name!r}", self.path)

    def subdatasets(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query("SELECT * FROM subdatasets ORDER BY name")]

    # ---- scenes
    def add_scene(
        self,
        path: str | Path,
        *,
        crs: str | None,
        transform: Sequence[float],
        width: int,
        height: int,
        bands: int,
        dtype: str,
        nodata: float | None,
        sensor: str | None = None,
        resolution_m: float | None = None,
        subdataset: str | None = None,
        acquired: str | None = None,
        source: str | None = None,
        licence: str | None = None,
        name: str | None = None,
    ) -> int:
        if sensor not in (None, *SENSORS):
            raise CatalogError(f"sensor must be SAT or UAV, not {sensor!r}")
        p = Path(path)
        with self.transaction() as db:
            if name is None:
                name = self.unique_scene_name(p.stem)
            elif db.execute("SELECT 1 FROM scenes WHERE name = ?", (name,)).fetchone():
                raise CatalogError(f"a scene named {name!r} already exists", self.path,
                                   "pick another name")
            sid = (
                self.ensure_subdataset(subdataset, sensor=sensor, resolution_m=resolution_m)
                if subdataset
                else None
            )
            nodata_text = None if nodata is None else repr(float(nodata))
            cur = db.execute(
                "INSERT INTO scenes(path, name, crs, transform, width, height, bands, dtype, nodata,"
                " nodata_text, sensor, resolution_m, subdataset_id, acquired, source, licence, added)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.store_path(p),
                    name,
                    crs,
                    json.dumps([float(v) for v in transform]),
                    width,
                    height,
                    bands,
                    dtype,
                    None if nodata is None or nodata != nodata else float(nodata),
                    nodata_text,
                    sensor,
                    resolution_m,
                    sid,
                    acquired,
                    source,
                    licence,
                    utc_now(),
                ),
            )
            return int(cur.lastrowid or 0)

    def unique_scene_name(self, base: str) -> str:
        """``base``, or ``base-2``, ``base-3``, ... when a scene already has that name (tile
        names carry the scene name, so two scenes must never share one)."""
        taken = {r[0] for r in self.query("SELECT name FROM scenes WHERE name = ? OR name LIKE ?",
                                          (base, base.replace("%", "_") + "-%"))}
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        return name

    _SCENE_SQL = (
        "SELECT s.*, d.name AS subdataset FROM scenes s "
        "LEFT JOIN subdatasets d ON d.id = s.subdataset_id"
    )

    def scene(self, scene_id: int) -> Scene:
        row = self.execute(self._SCENE_SQL + " WHERE s.id = ?", (scene_id,)).fetchone()
        if row is None:
            raise CatalogError(f"no scene with id {scene_id}", self.path, "see `casdesk info`")
        return scene_from_row(self.resolve, row)

    def crop_state(self, scene_id: int) -> str | None:
        """``complete``, ``running`` or ``interrupted`` (resumable), None if never cropped
        (or the schema predates crop records)."""
        try:
            row = self.execute("SELECT state, pid, host FROM scene_crops WHERE scene_id = ?",
                               (scene_id,)).fetchone()
        except sqlite3.OperationalError:  # an older project opened read-only
            return None
        if row is None:
            return None
        if row[0] == "running" and row[1] is not None and row[2] == socket.gethostname():
            from casdesk.core.project.lock import pid_alive  # lock imports this module

            if row[1] != os.getpid() and not pid_alive(int(row[1])):
                return "interrupted"  # its process is gone (a reader cannot mark it)
        return str(row[0])

    def scenes(self) -> list[Scene]:
        return [scene_from_row(self.resolve, r) for r in self.query(self._SCENE_SQL + " ORDER BY s.id")]

    # ---- tiles
    def add_tiles(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert or replace tiles (keyed by subdataset + name); return their ids.

        Each row: name, subdataset, image_path, and optionally scene_id, row_off, col_off,
        width, height, label_path, mask_path, label_pixels, valid_pixels.
        """
        ids: list[int] = []
        now = utc_now()
        with self.transaction() as db:
            sub_ids: dict[str, int] = {}
            for r in rows:
                sub = r["subdataset"]
                if sub not in sub_ids:
                    sub_ids[sub] = self.ensure_subdataset(sub)
                values = (
                    r.get("scene_id"),
                    sub_ids[sub],
                    r["name"],
                    r.get("row_off"),
                    r.get("col_off"),
                    int(r["width"]),
                    int(r["height"]),
                    self.store_path(r["image_path"]),
                    None if r.get("label_path") is None else self.store_path(r["label_path"]),
                    None if r.get("mask_path") is None else self.store_path(r["mask_path"]),
                    r.get("label_pixels"),
                    r.get("valid_pixels"),
                    now,
                    now,
                )
                cur = db.execute(
                    "INSERT INTO tiles(scene_id, subdataset_id, name, row_off, col_off, width, height,"
                    " image_path, label_path, mask_path, label_pixels, valid_pixels, created, modified)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(subdataset_id, name) DO UPDATE SET"
                    " scene_id=excluded.scene_id, row_off=excluded.row_off, col_off=excluded.col_off,"
                    " width=excluded.width, height=excluded.height, image_path=excluded.image_path,"
                    " label_path=excluded.label_path, mask_path=excluded.mask_path,"
                    " label_pixels=excluded.label_pixels, valid_pixels=excluded.valid_pixels,"
                    " modified=excluded.modified"
                    " RETURNING id",
                    values,
                )
                ids.append(int(cur.fetchone()[0]))
        return ids

    def touch_tile(self, tile_id: int, **fields: Any) -> None:
        """Record that a tile's files changed (mask regenerated, ...); updates ``modified``."""
        allowed = {"label_path", "mask_path", "label_pixels", "valid_pixels"}
        if set(fields) - allowed:
            raise ValueError(f"unknown tile fields: {sorted(set(fields) - allowed)}")
        values = {
            k: (self.store_path(v) if k.endswith("_path") and v is not None else v)
            for k, v in fields.items()
        }
        sets = "".join(f", {k} = ?" for k in values)
        with self.transaction() as db:
            db.execute(
                f"UPDATE tiles SET modified = ?{sets} WHERE id = ?",
                (utc_now(), *values.values(), tile_id),
            )

    _TILE_SQL = (
        "SELECT t.*, d.name AS subdataset, COALESCE(s.sensor, d.sensor) AS sensor FROM tiles t"
        " JOIN subdatasets d ON d.id = t.subdataset_id"
        " LEFT JOIN scenes s ON s.id = t.scene_id"
    )

    def tile(self, tile_id: int) -> Tile:
        row = self.execute(self._TILE_SQL + " WHERE t.id = ?", (tile_id,)).fetchone()
        if row is None:
            raise CatalogError(f"no tile with id {tile_id}", self.path)
        return tile_from_row(self.resolve, row)

    def tiles(
        self,
        *,
        subdataset: str | None = None,
        scene_id: int | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[Tile]:
        where: list[str] = []
        params: list[Any] = []
        if subdataset is not None:
            where.append("d.name = ?")
            params.append(subdataset)
        if scene_id is not None:
            where.append("t.scene_id = ?")
            params.append(scene_id)
        if ids is not None:
            where.append(f"t.id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        sql = self._TILE_SQL + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY t.id"
        return [tile_from_row(self.resolve, r) for r in self.query(sql, params)]

    def tile_count(self) -> int:
        return int(self.execute("SELECT COUNT(*) FROM tiles").fetchone()[0])

    def delete_tiles(self, *, scene_id: int | None = None) -> int:
        with self.transaction() as db:
            if scene_id is None:
                return db.execute("DELETE FROM tiles").rowcount
            return db.execute("DELETE FROM tiles WHERE scene_id = ?", (scene_id,)).rowcount

    # ---- labels
    def add_labels(
        self,
        labels: Sequence[dict[str, Any]],
        *,
        scene_id: int | None = None,
        tile_id: int | None = None,
        source: str = "imported",
        author: str | None = None,
    ) -> list[int]:
        """Insert label polygons. Each dict: geometry_px (WKT), optional geometry_crs, name,
        attributes (dict)."""
        now = utc_now()
        ids = []
        with self.transaction() as db:
            for lab in labels:
                cur = db.execute(
                    "INSERT INTO labels(scene_id, tile_id, name, geometry_px, geometry_crs, source,"
                    " attributes, created, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        scene_id,
                        tile_id,
                        lab.get("name") or "landslide",
                        lab["geometry_px"],
                        lab.get("geometry_crs"),
                        source,
                        json.dumps(lab.get("attributes") or {}),
                        now,
                        now,
                    ),
                )
                lid = int(cur.lastrowid or 0)
                ids.append(lid)
                db.execute(
                    "INSERT INTO label_edits(label_id, action, geometry_after, author, at)"
                    " VALUES (?, 'create', ?, ?, ?)",
                    (lid, lab["geometry_px"], author, now),
                )
        return ids

    def update_label(
        self,
        label_id: int,
        *,
        geometry_px: str | None = None,
        geometry_crs: str | None = None,
        name: str | None = None,
        author: str | None = None,
    ) -> None:
        now = utc_now()
        with self.transaction() as db:
            row = db.execute("SELECT geometry_px FROM labels WHERE id = ?", (label_id,)).fetchone()
            if row is None:
                raise CatalogError(f"no label with id {label_id}", self.path)
            db.execute(
                "UPDATE labels SET geometry_px = COALESCE(?, geometry_px),"
                " geometry_crs = COALESCE(?, geometry_crs), name = COALESCE(?, name),"
                " source = 'edited', modified = ? WHERE id = ?",
                (geometry_px, geometry_crs, name, now, label_id),
            )
            db.execute(
                "INSERT INTO label_edits(label_id, action, geometry_before, geometry_after, author, at)"
                " VALUES (?, 'update', ?, ?, ?, ?)",
                (label_id, row[0], geometry_px, author, now),
            )

    def delete_label(self, label_id: int, author: str | None = None) -> None:
        with self.transaction() as db:
            row = db.execute("SELECT geometry_px FROM labels WHERE id = ?", (label_id,)).fetchone()
            if row is None:
                return
            db.execute("DELETE FROM labels WHERE id = ?", (label_id,))
            db.execute(
                "INSERT INTO label_edits(label_id, action, geometry_before, author, at)"
                " VALUES (?, 'delete', ?, ?, ?)",
                (label_id, row[0], author, utc_now()),
            )

    def labels(self, *, scene_id: int | None = None, tile_id: int | None = None) -> list[Label]:
        where: list[str] = []
        params: list[Any] = []
        if scene_id is not None:
            where.append("scene_id = ?")
            params.append(scene_id)
        if tile_id is not None:
            where.append("tile_id = ?")
            params.append(tile_id)
        sql = "SELECT * FROM labels" + (" WHERE " + " AND ".join(where) if where else "")
        return [label_from_row(r) for r in self.query(sql + " ORDER BY id", params)]

    # ---- summary
    def summary(self) -> dict[str, Any]:
        """Scenes, subdatasets with tile counts and labelled fraction, for `casdesk info`."""
        from casdesk.core.project.summary import project_summary

        return project_summary(self)
