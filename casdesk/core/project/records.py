"""The catalog's records: frozen views of a scene, a tile and a label row, and how a row
of the catalog becomes one (paths resolved against the project folder by the catalog's
``resolve``, see :class:`~casdesk.core.project.catalog.Catalog`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# the catalog's stored path -> absolute path (Catalog.resolve)
Resolve = Callable[[str | None], Path | None]


@dataclass(frozen=True)
class Scene:
    id: int
    path: Path
    name: str
    crs: str | None
    transform: tuple[float, ...]
    width: int
    height: int
    bands: int
    dtype: str
    nodata: float | None
    sensor: str | None
    resolution_m: float | None
    subdataset: str | None
    acquired: str | None
    source: str | None
    licence: str | None


@dataclass(frozen=True)
class Tile:
    id: int
    name: str
    subdataset: str
    scene_id: int | None
    row_off: int | None
    col_off: int | None
    width: int
    height: int
    image_path: Path
    label_path: Path | None
    mask_path: Path | None
    label_pixels: int | None
    valid_pixels: int | None
    sensor: str | None
    modified: str


@dataclass(frozen=True)
class Label:
    id: int
    scene_id: int | None
    tile_id: int | None
    name: str
    geometry_px: str
    geometry_crs: str | None
    source: str
    attributes: dict[str, Any]
    modified: str


def scene_from_row(resolve: Resolve, row: sqlite3.Row) -> Scene:
    nodata = float(row["nodata_text"]) if row["nodata_text"] is not None else None
    return Scene(
        id=row["id"],
        path=resolve(row["path"]),  # type: ignore[arg-type]
        name=row["name"],
        crs=row["crs"],
        transform=tuple(json.loads(row["transform"])),
        width=row["width"],
        height=row["height"],
        bands=row["bands"],
        dtype=row["dtype"],
        nodata=nodata,
        sensor=row["sensor"],
        resolution_m=row["resolution_m"],
        subdataset=row["subdataset"],
        acquired=row["acquired"],
        source=row["source"],
        licence=row["licence"],
    )


def tile_from_row(resolve: Resolve, row: sqlite3.Row) -> Tile:
    return Tile(
        id=row["id"],
        name=row["name"],
        subdataset=row["subdataset"],
        scene_id=row["scene_id"],
        row_off=row["row_off"],
        col_off=row["col_off"],
        width=row["width"],
        height=row["height"],
        image_path=resolve(row["image_path"]),  # type: ignore[arg-type]
        label_path=resolve(row["label_path"]),
        mask_path=resolve(row["mask_path"]),
        label_pixels=row["label_pixels"],
        valid_pixels=row["valid_pixels"],
        sensor=row["sensor"],
        modified=row["modified"],
    )


def label_from_row(row: sqlite3.Row) -> Label:
    return Label(
        id=row["id"],
        scene_id=row["scene_id"],
        tile_id=row["tile_id"],
        name=row["name"],
        geometry_px=row["geometry_px"],
        geometry_crs=row["geometry_crs"],
        source=row["source"],
        attributes=json.loads(row["attributes"] or "{}"),
        modified=row["modified"],
    )
