"""Label interchange: the catalog's polygons to and from LabelMe JSON (per tile or image)
and vector files (GeoPackage, Shapefile, GeoJSON in WGS-84) for whole scenes.

LabelMe details a polygon cannot hold (group_id, flags, description, unknown keys) are kept
in the label's ``attributes['labelme']`` on import and written back on export. Holes, which
LabelMe polygons cannot have, are written as later ``_background_`` polygons: by LabelMe's
own mask rule they paint 0 over the landslide, so the exported file gives the same mask,
and importing it restores the holes.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from casdesk.core.errors import LabelError
from casdesk.core.labels.io import read_vector_labels, write_vector_labels
from casdesk.core.labels.labelme import (
    RESERVED_LABELS,
    LabelMeDocument,
    LabelMeShape,
    iter_area_shapes,
    polygon_shape,
    read_labelme,
    write_labelme,
)
from casdesk.core.labels.store import EditTarget, LabelStore, scene_target, tile_target
from casdesk.core.project.catalog import Catalog
from casdesk.core.raster.io import raster_info

HOLE_LABEL = "_background_"


@dataclass
class ExchangeReport:
    written: list[Path] = field(default_factory=list)
    labels: int = 0
    tiles: list[int] = field(default_factory=list)  # tiles whose masks must be regenerated
    messages: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- LabelMe
def _polygons(geom: BaseGeometry) -> list[Polygon]:
    return [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, Polygon) and not g.is_empty]


def target_document(catalog: Catalog, target: EditTarget, json_path: Path) -> LabelMeDocument:
    """The target's polygons as a LabelMe document for an image beside ``json_path``.

    An existing file at ``json_path`` keeps its top-level fields (flags, version, extra keys).
    """
    doc = read_labelme(json_path) if json_path.exists() else LabelMeDocument()
    try:
        doc.imagePath = os.path.relpath(target.image_path, json_path.parent)
    except ValueError:  # another drive on Windows
        doc.imagePath = str(target.image_path)
    doc.imageData = None
    doc.imageHeight, doc.imageWidth = target.height, target.width
    shapes: list[LabelMeShape] = []
    holes: list[LabelMeShape] = []
    for s in LabelStore(catalog, target).load():
        meta = s.attributes.get("labelme") if isinstance(s.attributes.get("labelme"), dict) else {}
        for poly in _polygons(s.geometry):
            shape = polygon_shape(
                s.name,
                list(poly.exterior.coords),
                group_id=meta.get("group_id"),
                flags=meta.get("flags"),
                description=meta.get("description") or "",
            )
            shape.extra = dict(meta.get("extra") or {})
            shapes.append(shape)
            holes += [polygon_shape(HOLE_LABEL, list(h.coords)) for h in poly.interiors]
    doc.shapes = shapes + holes
    return doc


def export_labelme(catalog: Catalog, target: EditTarget, json_path: str | Path) -> Path:
    p = Path(json_path)
    write_labelme(target_document(catalog, target, p), p)
    return p


def labelme_geometries(
    doc: LabelMeDocument, label_names: Collection[str] | None = None
) -> list[tuple[LabelMeShape, BaseGeometry]]:
    """Area shapes as polygons in file order; a later non-landslide shape (e.g. a
    ``_background_`` hole) is cut out of the earlier ones, as LabelMe's mask rule does."""
    out: list[tuple[LabelMeShape, BaseGeometry]] = []
    for shape, ring in iter_area_shapes(doc):
        poly = shapely.make_valid(Polygon(ring)) if len(ring) >= 3 else Polygon()
        if poly.is_empty or poly.area <= 0:
            continue
        landslide = shape.label not in RESERVED_LABELS if label_names is None else shape.label in label_names
        if landslide:
            out.append((shape, poly))
            continue
        out = [(s, _keep_outline(g.difference(poly), s)) if g.intersects(poly) else (s, g) for s, g in out]
    return [(s, _area(g)) for s, g in out if not _area(g).is_empty]


def _keep_outline(geom: BaseGeometry, shape: LabelMeShape) -> BaseGeometry:
    """Boolean operations reorder vertices; keep the drawn outline when it is unchanged, so
    a file exported again lists the same points."""
    ring = [tuple(p) for p in shape.points]
    if len(ring) < 3:
        return geom
    drawn = Polygon(ring)
    polys = list(_polygons_deep(geom))
    if len(polys) == 1 and Polygon(polys[0].exterior).equals(drawn):
        return Polygon(ring, [list(h.coords) for h in polys[0].interiors])
    return geom


def _area(geom: BaseGeometry) -> BaseGeometry:
    polys = [p for p in _polygons_deep(geom) if p.area > 0]
    if not polys:
        return Polygon()
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def _polygons_deep(geom: BaseGeometry) -> Iterator[Polygon]:
    if isinstance(geom, Polygon):
        if not geom.is_empty:
            yield geom
    else:
        for g in getattr(geom, "geoms", []):
            yield from _polygons_deep(g)


def import_labelme_file(
    catalog: Catalog,
    target: EditTarget,
    json_path: str | Path,
    label_names: Collection[str] | None = None,
    replace: bool = True,
) -> list[int]:
    """Store a LabelMe file's polygons on ``target`` (replacing the target's labels unless
    ``replace`` is False); returns the new label ids. One transaction."""
    p = Path(json_path)
    doc = read_labelme(p)
    if doc.image_shape is not None and doc.image_shape != (target.height, target.width):
        raise LabelError(
            f"the LabelMe image is {doc.imageWidth}x{doc.imageHeight} but the target is "
            f"{target.width}x{target.height}",
            p,
            "import it onto the image it was drawn on",
        )
    store = LabelStore(catalog, target)
    ids: list[int] = []
    with catalog.transaction():
        if replace:
            for s in store.load():
                store.delete(s.label_id)
        for shape, geom in labelme_geometries(doc, label_names):
            meta = {
                "group_id": shape.group_id,
                "flags": shape.flags,
                "description": shape.description,
                "extra": shape.extra,
                "source_file": p.name,
            }
            ids.append(store.create(geom, shape.label, {"labelme": meta}, source="imported"))
    return ids


def _tile_for_json(catalog: Catalog, json_path: Path) -> int | None:
    rows = catalog.query("SELECT id, image_path FROM tiles WHERE name = ?", (json_path.stem,))
    if len(rows) == 1:
        return int(rows[0]["id"])
    for r in rows:
        if Path(r["image_path"]).parent.parent == json_path.parent.parent:
            return int(r["id"])
    return int(rows[0]["id"]) if rows else None


def import_labelme_folder(
    catalog: Catalog, folder: str | Path, label_names: Collection[str] | None = None
) -> ExchangeReport:
    """Each ``NAME.json`` goes onto the tile named NAME (its polygons replace the tile's)."""
    root = Path(folder)
    files = sorted(root.glob("*.json")) if root.is_dir() else [root]
    rep = ExchangeReport()
    for f in files:
        tid = _tile_for_json(catalog, f)
        if tid is None:
            rep.messages.append(f"{f.name}: no tile named {f.stem!r}; add the image with `casdesk import` first")
            continue
        target = tile_target(catalog, tid)
        rep.labels += len(import_labelme_file(catalog, target, f, label_names))
        rep.tiles += LabelStore(catalog, target).affected_tiles([shapely.box(0, 0, target.width, target.height)])
    return rep


def export_labelme_folder(catalog: Catalog, folder: str | Path) -> ExchangeReport:
    """One LabelMe JSON per tile that has polygons, named after the tile."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rep = ExchangeReport()
    for tile in catalog.tiles():
        target = tile_target(catalog, tile.id)
        doc = target_document(catalog, target, out / f"{tile.name}.json")
        if not doc.shapes:
            continue
        write_labelme(doc, out / f"{tile.name}.json")
        rep.written.append(out / f"{tile.name}.json")
        rep.labels += sum(1 for s in doc.shapes if s.label != HOLE_LABEL)
    return rep


# --------------------------------------------------------------------------- vectors
def export_vector(catalog: Catalog, path: str | Path, scene_ids: Collection[int] | None = None) -> ExchangeReport:
    """Scene polygons to a vector file in the (first) scene's CRS; GeoJSON in WGS-84.

    Attributes: label, area_m2 (None without a metric CRS), source, edited (UTC time),
    scene, label_id. Scenes in other CRSs are reprojected into the first one."""
    from pyproj import CRS, Transformer

    rep = ExchangeReport()
    geoms: list[BaseGeometry] = []
    cols: dict[str, list[Any]] = {k: [] for k in ("label", "area_m2", "source", "edited", "scene", "label_id")}
    out_crs: str | None = None
    for scene in catalog.scenes():
        if scene_ids is not None and scene.id not in scene_ids:
            continue
        if not scene.crs:
            rep.messages.append(f"scene {scene.name} has no CRS: its labels are not exported")
            continue
        target = scene_target(catalog, scene.id)
        out_crs = out_crs or scene.crs
        same = CRS.from_wkt(scene.crs).equals(CRS.from_wkt(out_crs))
        tr = None if same else Transformer.from_crs(CRS.from_wkt(scene.crs), CRS.from_wkt(out_crs), always_xy=True)
        metric = _is_metric(scene.crs)
        for lab in catalog.labels(scene_id=scene.id):
            crs_geom = target.to_crs(shapely.from_wkt(lab.geometry_px))
            if crs_geom is None:
                continue
            if tr is not None:
                crs_geom = shapely.transform(crs_geom, lambda xy, tr=tr: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
            geoms.append(crs_geom)
            cols["label"].append(lab.name)
            cols["area_m2"].append(float(crs_geom.area) if metric and same else None)
            cols["source"].append(lab.source)
            cols["edited"].append(lab.modified)
            cols["scene"].append(scene.name)
            cols["label_id"].append(lab.id)
    if not geoms:
        raise LabelError("there are no scene polygons in a georeferenced scene to export", catalog.path)
    cols["area_m2"] = [np.nan if v is None else v for v in cols["area_m2"]]
    write_vector_labels(geoms, path, out_crs, cols)
    rep.written.append(Path(path))
    rep.labels = len(geoms)
    return rep


def _is_metric(wkt: str) -> bool:
    from pyproj import CRS

    crs = CRS.from_wkt(wkt)
    return bool(crs.is_projected and crs.axis_info and crs.axis_info[0].unit_name in ("metre", "meter"))


def import_vector(
    catalog: Catalog,
    path: str | Path,
    scene_ids: Collection[int] | None = None,
    label_names: Collection[str] | None = None,
    label_field: str | None = None,
) -> ExchangeReport:
    """Add a vector file's polygons to every scene they fall in (reprojected, clipped)."""
    rep = ExchangeReport()
    for scene in catalog.scenes():
        if scene_ids is not None and scene.id not in scene_ids:
            continue
        info = raster_info(scene.path)
        labels = read_vector_labels(path, info, label_names, label_field)
        rep.messages += [f"{scene.name}: {m}" for m in labels.messages if "no label polygon" not in m]
        if not labels.labels:
            continue
        catalog.add_labels(labels.labels, scene_id=scene.id, source="imported")
        rep.labels += len(labels.labels)
        store = LabelStore(catalog, scene_target(catalog, scene.id))
        rep.tiles += store.affected_tiles(labels.geometries)
    if not rep.labels:
        rep.messages.append("no polygon of the file falls inside a scene of the project")
    return rep
