"""The label editor's link to the catalog: what is being edited, autosave, derived masks.

An *edit target* is a whole scene (labels stored per scene), a tile cut from a scene (the
scene's labels, seen through the tile's window) or a stand-alone tile (labels stored per
tile). The editor works in *view pixels* (the displayed image's pixel corners); the target
maps them to stored pixel coordinates with an integer offset and to the CRS with the
scene (or tile) transform.

Every edit is one catalog transaction (autosave), so killing the app loses at most the
edit in progress; it marks the tiles it reaches for mask regeneration in that transaction.
Masks are derived data: :mod:`casdesk.core.labels.tile_masks` (whose names are importable
from here too) re-rasterizes the polygons of the affected tiles into their mask (0/1) and
CAS label (black on white) GeoTIFFs atomically, in a worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import shapely
from affine import Affine
from shapely.geometry.base import BaseGeometry

from casdesk.core.labels.masks import RULE_LABELME, labelme_shape_of
from casdesk.core.labels.tile_masks import (
    ADOPTED,
    adopt_base,
    base_layer,
    finish_pending,
    image_valid,
    mark_pending,
    pending_tiles,
    regenerate_masks,
    regenerate_tile,
    set_base_layers,
    tile_georef,
    tile_mask,
    write_tif_atomic,
)
from casdesk.core.project.catalog import Catalog, Label

__all__ = [  # the label side lives here; the mask side in casdesk.core.labels.tile_masks
    "ADOPTED", "NOT_LANDSLIDE", "EditTarget", "LabelStore", "StoredShape", "adopt_base",
    "base_layer", "finish_pending", "image_valid", "is_landslide_name", "mark_pending",
    "pending_tiles", "regenerate_masks", "regenerate_tile", "scene_target", "set_base_layers",
    "tile_mask", "tile_target", "write_tif_atomic",
]

NOT_LANDSLIDE = frozenset({"background", "_background_", "__ignore__", "nodata"})


def is_landslide_name(name: str | None) -> bool:
    """Labels burnt as landslide (1) without a filter: every name except background/ignore/nodata markers."""
    return not name or name.lower() not in NOT_LANDSLIDE


@dataclass(frozen=True)
class EditTarget:
    """What the editor shows and where its polygons are stored."""

    kind: Literal["scene", "tile"]  # where labels are stored
    scene_id: int | None
    tile_id: int | None  # the tile shown (None for a whole scene)
    image_path: Path
    width: int  # view size in pixels
    height: int
    offset: tuple[int, int]  # (col_off, row_off): view pixel -> stored pixel
    transform: Affine | None  # stored pixel -> CRS
    crs: str | None
    title: str

    @property
    def owner(self) -> dict[str, int | None]:
        """Keyword arguments naming the label owner for :meth:`Catalog.add_labels`."""
        if self.kind == "scene":
            return {"scene_id": self.scene_id}
        return {"tile_id": self.tile_id}

    def to_stored(self, geom: BaseGeometry) -> BaseGeometry:
        dx, dy = self.offset
        return shapely.transform(geom, lambda xy: xy + (dx, dy)) if (dx or dy) else geom

    def to_view(self, geom: BaseGeometry) -> BaseGeometry:
        dx, dy = self.offset
        return shapely.transform(geom, lambda xy: xy - (dx, dy)) if (dx or dy) else geom

    def to_crs(self, stored: BaseGeometry) -> BaseGeometry | None:
        if self.transform is None:
            return None
        t = self.transform
        return shapely.affinity.affine_transform(stored, [t.a, t.b, t.d, t.e, t.c, t.f])

    def pixel_area_m2(self) -> float | None:
        """Area of one pixel in square CRS units (m2 for metric CRSs), None without a CRS."""
        if self.transform is None or not self.crs:
            return None
        return abs(self.transform.determinant)


def scene_target(catalog: Catalog, scene_id: int) -> EditTarget:
    s = catalog.scene(scene_id)
    return EditTarget(
        kind="scene",
        scene_id=s.id,
        tile_id=None,
        image_path=s.path,
        width=s.width,
        height=s.height,
        offset=(0, 0),
        transform=Affine(*s.transform[:6]),
        crs=s.crs,
        title=f"scene {s.name}",
    )


def tile_target(catalog: Catalog, tile_id: int) -> EditTarget:
    """A tile cut from a scene edits the scene's polygons (unless it has its own labels);
    a stand-alone tile (CAS dataset, LabelMe image) edits its own."""
    t = catalog.tile(tile_id)
    own = catalog.label_records.count_on_tile(tile_id)
    if t.scene_id is not None and t.row_off is not None and t.col_off is not None and not own:
        s = catalog.scene(t.scene_id)
        return EditTarget(
            kind="scene",
            scene_id=s.id,
            tile_id=t.id,
            image_path=t.image_path,
            width=t.width,
            height=t.height,
            offset=(int(t.col_off), int(t.row_off)),
            transform=Affine(*s.transform[:6]),
            crs=s.crs,
            title=f"tile {t.name} of scene {s.name}",
        )
    transform, crs = tile_georef(t)
    return EditTarget(
        kind="tile",
        scene_id=t.scene_id,
        tile_id=t.id,
        image_path=t.image_path,
        width=t.width,
        height=t.height,
        offset=(0, 0),
        transform=transform,
        crs=crs,
        title=f"tile {t.name} ({t.subdataset})",
    )


@dataclass
class StoredShape:
    """One label as the editor loads it: catalog id, name, geometry in *view* pixels."""

    label_id: int
    name: str
    geometry: BaseGeometry
    attributes: dict[str, Any]
    source: str


class LabelStore:
    """Autosaving label storage for one target: each call is one catalog transaction."""

    def __init__(self, catalog: Catalog, target: EditTarget, author: str | None = None):
        self.catalog = catalog
        self.target = target
        self.author = author or os.environ.get("USER") or os.environ.get("USERNAME")

    def load(self) -> list[StoredShape]:
        """Labels of the target; for a tile of a scene, those that reach into the tile."""
        t = self.target
        labels: list[Label] = self.catalog.labels(**{k: v for k, v in t.owner.items()})
        view_box = shapely.box(0, 0, t.width, t.height)
        out = []
        for lab in labels:
            try:
                geom = t.to_view(shapely.from_wkt(lab.geometry_px))
            except shapely.errors.GEOSException:
                continue
            if t.kind == "scene" and t.tile_id is not None and not geom.intersects(view_box):
                continue
            out.append(StoredShape(lab.id, lab.name, geom, lab.attributes, lab.source))
        return out

    def _row(self, view_geom: BaseGeometry, name: str, attributes: dict[str, Any] | None) -> dict[str, Any]:
        stored = self.target.to_stored(view_geom)
        crs = self.target.to_crs(stored) if self.target.crs else None
        return {
            "name": name,
            "geometry_px": stored.wkt,
            "geometry_crs": None if crs is None else crs.wkt,
            "attributes": attributes or {},
        }

    def create(
        self,
        view_geom: BaseGeometry,
        name: str,
        attributes: dict[str, Any] | None = None,
        source: str = "edited",
    ) -> int:
        """Store a new label and mark the tiles it reaches for mask regeneration, in one
        transaction. A label drawn in the editor gets LabelMe's mask rule."""
        attrs = dict(attributes or {})
        attrs.setdefault("mask_rule", RULE_LABELME)
        if labelme_shape_of(attrs) is not None and not _same_outline(attrs, self.target.to_stored(view_geom)):
            attrs["labelme"] = _as_polygon_meta(attrs["labelme"])
        row = self._row(view_geom, name, attrs)
        with self.catalog.transaction():
            lid = self.catalog.add_labels([row], source=source, author=self.author, **self.target.owner)[0]
            mark_pending(self.catalog, self.affected_tiles([view_geom]))
        return lid

    def update(self, label_id: int, view_geom: BaseGeometry | None = None, name: str | None = None) -> None:
        """Rename and/or reshape a label; its tiles are marked for regeneration in the same
        transaction. A reshaped LabelMe shape becomes a polygon (drawn by the same rule)."""
        with self.catalog.transaction():
            row = self.catalog.label_records.geometry_and_attributes(label_id)
            before = None if row is None else self.target.to_view(shapely.from_wkt(row[0]))
            if view_geom is None:
                self.catalog.update_label(label_id, name=name, author=self.author)
            else:
                new = self._row(view_geom, name or "", None)
                self.catalog.update_label(
                    label_id,
                    geometry_px=new["geometry_px"],
                    geometry_crs=new["geometry_crs"],
                    name=name,
                    author=self.author,
                )
                attrs = row[1] if row is not None else {}
                if labelme_shape_of(attrs) is not None:
                    attrs["labelme"] = _as_polygon_meta(attrs["labelme"])
                    self.catalog.label_records.set_attributes(label_id, attrs)
            mark_pending(self.catalog, self.affected_tiles([before, view_geom]))

    def delete(self, label_id: int) -> None:
        with self.catalog.transaction():
            wkt = self.catalog.label_records.geometry(label_id)
            self.catalog.delete_label(label_id, author=self.author)
            if wkt is not None:
                mark_pending(self.catalog, self.affected_tiles([self.target.to_view(shapely.from_wkt(wkt))]))

    def affected_tiles(self, view_geoms: Iterable[BaseGeometry | None]) -> list[int]:
        """Tiles whose masks an edit of these (before/after) geometries may change."""
        t = self.target
        if t.kind == "tile":
            return [t.tile_id] if t.tile_id is not None else []
        geoms = [g for g in view_geoms if g is not None and not g.is_empty]
        if not geoms:
            return []
        x0, y0, x1, y1 = shapely.union_all([shapely.envelope(g) for g in geoms]).bounds
        dx, dy = t.offset
        return self.catalog.tile_rows.overlapping(t.scene_id, x0 + dx, y0 + dy, x1 + dx, y1 + dy)


def _same_outline(attrs: dict[str, Any], stored: BaseGeometry) -> bool:
    """Whether ``stored`` is still the outline of the LabelMe shape kept in ``attrs``."""
    from casdesk.core.labels.exchange import shape_display_geometry

    try:
        shown = shape_display_geometry(attrs["labelme"])
    except Exception:  # noqa: BLE001 - a shape that cannot be shown is treated as changed
        return False
    if shown is None:
        return False
    return bool(shown.symmetric_difference(stored).area <= 1e-6 * max(1.0, shown.area))


def _as_polygon_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """LabelMe details of a shape whose geometry was edited: the stored polygon is the shape now."""
    out = {k: v for k, v in meta.items() if k not in ("points", "mask")}
    out["shape_type"] = "polygon"
    out["edited"] = True
    return out
