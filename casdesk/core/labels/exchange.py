"""Label interchange: the catalog's labels to and from LabelMe JSON (per tile or image)
and vector files (GeoPackage, Shapefile, GeoJSON in WGS-84) for whole scenes.

LabelMe import is loss-free: every shape (polygon, rectangle, circle, line, line strip,
point, mask, and types casdesk does not know) becomes one label that keeps the shape itself
(type, points, mask PNG), ``group_id``, flags, description and unknown keys in
``attributes['labelme']``, its file and index (``source_file``, ``feature``: importing the
same file again replaces, never duplicates), the label filter given at import and LabelMe's
mask rule. The file's own fields (version, flags, extra keys, whether the image was
embedded) are kept per tile, so exporting gives back the file LabelMe wrote. The label's
polygon (``geometry_px``) is what the editor shows; the mask is drawn from the shape.

Labels that are not LabelMe shapes (drawn in casdesk, GIS layers) are exported as polygons;
the holes, which LabelMe polygons cannot have, follow each polygon as ``_background_``
polygons (LabelMe's own rule paints them 0).
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine
from shapely.geometry import LineString, MultiPoint, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from casdesk.core.errors import CasdeskError, LabelError
from casdesk.core.labels.io import (
    mask_to_polygons,
    read_label_raster,
    read_vector_labels,
    valid_polygonal,
    write_vector_labels,
)
from casdesk.core.labels.labelme import (
    LINE_WIDTH_PX,
    POINT_RADIUS_PX,
    LabelMeDocument,
    LabelMeShape,
    decode_mask_png,
    polygon_shape,
    read_labelme,
    write_labelme,
)
from casdesk.core.labels.masks import RULE_LABELME, label_rule, labelme_shape_of
from casdesk.core.labels.store import (
    EditTarget,
    LabelStore,
    base_layer,
    mark_pending,
    scene_target,
    tile_target,
)
from casdesk.core.project.catalog import Catalog
from casdesk.core.raster.io import raster_info

HOLE_LABEL = "_background_"


@dataclass
class ExchangeReport:
    written: list[Path] = field(default_factory=list)
    labels: int = 0
    tiles: list[int] = field(default_factory=list)  # tiles whose masks must be regenerated
    messages: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)


# --------------------------------------------------------------------------- shapes <-> labels
def _shift(points: Any, dx: float, dy: float) -> list[list[float]]:
    return [[float(x) + dx, float(y) + dy] for x, y in points]


def shape_display_geometry(meta: Mapping[str, Any]) -> BaseGeometry | None:
    """The polygon the editor shows for a LabelMe shape (``shape_type``, ``points``,
    ``mask`` keys): the outline of areas, the painted footprint of lines (10 px) and
    points (radius 5), the exact pixels of a mask shape."""
    kind = meta.get("shape_type") or "polygon"
    pts = [(float(x), float(y)) for x, y in meta.get("points") or []]
    if not pts:
        return None
    geom: BaseGeometry
    if kind == "rectangle" and len(pts) == 2:
        (x0, y0), (x1, y1) = pts
        geom = shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    elif kind == "circle" and len(pts) == 2:
        (cx, cy), (px, py) = pts
        geom = shapely.Point(cx, cy).buffer(max(math.hypot(cx - px, cy - py), 0.5), 16)
    elif kind in ("line", "linestrip"):
        width = float(meta.get("line_width") or LINE_WIDTH_PX)
        geom = (LineString(pts) if len(pts) > 1 else shapely.Point(pts[0])).buffer(width / 2, cap_style="flat" if len(pts) > 1 else "round")
    elif kind in ("point", "points"):
        geom = MultiPoint(pts).buffer(float(meta.get("point_size") or POINT_RADIUS_PX), 16)
    elif kind == "mask" and meta.get("mask"):
        arr = decode_mask_png(meta["mask"], str(meta.get("label", "")))
        x0, y0 = (int(v) for v in np.asarray(pts[0]).astype(int))
        polys = mask_to_polygons(arr, Affine.translation(x0, y0))
        geom = MultiPolygon(polys) if len(polys) > 1 else (polys[0] if polys else shapely.box(x0, y0, x0 + 1, y0 + 1))
    elif len(pts) >= 3:
        geom = valid_polygonal(Polygon(pts))
        if geom.is_empty:
            geom = LineString(pts).buffer(0.5, cap_style="flat")
    else:
        geom = (LineString(pts) if len(pts) > 1 else shapely.Point(pts[0])).buffer(0.5)
    geom = valid_polygonal(geom)
    return None if geom.is_empty else geom


def labelme_rows(
    doc: LabelMeDocument,
    source: Path,
    label_names: Collection[str] | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
) -> list[dict[str, Any]]:
    """One catalog label row per shape, in file order (nothing dropped). ``offset`` maps
    the file's pixels to stored pixels (a tile of a scene)."""
    dx, dy = offset
    rows = []
    for i, s in enumerate(doc.shapes):
        meta: dict[str, Any] = {
            "shape_type": s.shape_type,
            "points": _shift(s.points, dx, dy),
            "mask": s.mask,
            "group_id": s.group_id,
            "flags": s.flags,
            "description": s.description,
            "extra": s.extra,
            "keys": list(s.keys) if s.keys is not None else None,
        }
        geom = shape_display_geometry(meta)
        if geom is None:
            geom = shapely.box(dx, dy, dx + 1, dy + 1)  # a shape without points: kept, paints nothing
        attrs: dict[str, Any] = {
            "mask_rule": RULE_LABELME,
            "labelme": meta,
            "source_file": str(source.resolve()),
            "feature": i,
        }
        if label_names is not None:
            attrs["label_names"] = sorted(label_names)
        rows.append({"name": s.label, "geometry_px": geom.wkt, "attributes": attrs})
    return rows


def _header(doc: LabelMeDocument) -> dict[str, Any]:
    return {
        "version": doc.version,
        "flags": doc.flags,
        "extra": doc.extra,
        "keys": list(doc.keys) if doc.keys is not None else None,
        "embedded": bool(doc.imageData),
        "imagePath": doc.imagePath,
    }


def store_document_header(catalog: Catalog, tile_id: int, doc: LabelMeDocument, source: Path) -> None:
    catalog.label_records.put_document(tile_id, str(source.resolve()), _header(doc))


def _stored_header(catalog: Catalog, tile_id: int | None) -> tuple[dict[str, Any], str | None]:
    if tile_id is None:
        return {}, None
    return catalog.label_records.document(tile_id) or ({}, None)


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    return [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, Polygon) and not g.is_empty]


def _shape_from_meta(name: str, meta: Mapping[str, Any], dx: float, dy: float) -> LabelMeShape:
    keys = meta.get("keys")
    return LabelMeShape(
        label=name,
        points=_shift(meta["points"], -dx, -dy),
        shape_type=meta.get("shape_type") or "polygon",
        group_id=meta.get("group_id"),
        flags=meta.get("flags"),
        description=meta.get("description"),
        mask=meta.get("mask"),
        extra=dict(meta.get("extra") or {}),
        keys=tuple(keys) if keys is not None else None,
    )


def target_document(catalog: Catalog, target: EditTarget, json_path: Path) -> LabelMeDocument:
    """The target's labels as a LabelMe document for an image seen from ``json_path``.

    LabelMe shapes come back as they were read; other labels as polygons (holes as
    following ``_background_`` polygons). The file's own fields are those of the imported
    file (if any); an image that was embedded is embedded again."""
    header, _source = _stored_header(catalog, target.tile_id if target.kind == "tile" else None)
    keys = header.get("keys")
    doc = LabelMeDocument(
        version=header.get("version") or LabelMeDocument().version,
        flags=header.get("flags", {}),
        extra=dict(header.get("extra") or {}),
        keys=tuple(keys) if keys is not None else None,
    )
    try:
        doc.imagePath = Path(os.path.relpath(target.image_path, json_path.parent)).as_posix()
    except ValueError:  # another drive on Windows
        doc.imagePath = str(target.image_path)
    if header.get("embedded"):
        import base64

        try:
            doc.imageData = base64.b64encode(Path(target.image_path).read_bytes()).decode("ascii")
        except OSError:
            doc.imageData = None
    doc.imageHeight, doc.imageWidth = target.height, target.width
    dx, dy = target.offset
    shapes: list[LabelMeShape] = []
    kept = base_layer(catalog, target.tile_id) if target.kind == "tile" and target.tile_id is not None else None
    if kept is not None and kept[1]:  # an imported raster not yet turned into labels
        base = read_label_raster(kept[0], expected_shape=(target.height, target.width))
        for poly in mask_to_polygons(base):
            shapes.append(polygon_shape("landslide", list(poly.exterior.coords)))
            shapes += [polygon_shape(HOLE_LABEL, list(h.coords)) for h in poly.interiors]
    for s in LabelStore(catalog, target).load():
        meta = labelme_shape_of(s.attributes)
        if meta is not None:
            shapes.append(_shape_from_meta(s.name, meta, dx, dy))
            continue
        meta = s.attributes.get("labelme")
        lm: dict[str, Any] = meta if isinstance(meta, dict) else {}
        for poly in _polygons(s.geometry):
            shape = polygon_shape(
                s.name,
                list(poly.exterior.coords),
                group_id=lm.get("group_id"),
                flags=lm.get("flags"),
                description=lm.get("description") or "",
            )
            shape.extra = dict(lm.get("extra") or {})
            shapes.append(shape)
            shapes += [polygon_shape(HOLE_LABEL, list(h.coords)) for h in poly.interiors]
    doc.shapes = shapes
    return doc


def export_labelme(catalog: Catalog, target: EditTarget, json_path: str | Path) -> Path:
    p = Path(json_path)
    write_labelme(target_document(catalog, target, p), p)
    return p


def import_labelme_file(
    catalog: Catalog,
    target: EditTarget,
    json_path: str | Path,
    label_names: Collection[str] | None = None,
    replace: bool = True,
) -> list[int]:
    """Store every shape of a LabelMe file on ``target``; returns the new label ids.

    Labels imported earlier from the same file are replaced (never duplicated); with
    ``replace`` every label shown on the target (and a tile's imported raster) is replaced,
    so a file exported per tile imports back without doubling a polygon that spans tiles.
    The labels and the stale-mask markers of the tiles they reach are one transaction."""
    p = Path(json_path)
    doc = read_labelme(p)
    if doc.image_shape is not None and doc.image_shape != (target.height, target.width):
        raise LabelError(
            f"the LabelMe image is {doc.imageWidth}x{doc.imageHeight} but the target is "
            f"{target.width}x{target.height}",
            p,
            "import it onto the image it was drawn on",
        )
    rows = labelme_rows(doc, p, label_names, offset=target.offset)
    store = LabelStore(catalog, target)
    key = str(p.resolve())
    whole = shapely.box(0, 0, target.width, target.height)
    with catalog.transaction():
        for s in store.load():
            if replace or s.attributes.get("source_file") == key:
                catalog.label_records.discard(s.label_id)
        if replace and target.kind == "tile" and target.tile_id is not None:
            catalog.mask_records.set_base_state(target.tile_id, "adopted")
        for r in rows:
            crs = target.to_crs(shapely.from_wkt(r["geometry_px"])) if target.crs else None
            r["geometry_crs"] = None if crs is None else crs.wkt
        ids = catalog.add_labels(rows, source="imported", author=store.author, **target.owner)
        if target.kind == "tile" and target.tile_id is not None:
            store_document_header(catalog, target.tile_id, doc, p)
        mark_pending(catalog, store.affected_tiles([whole]))
    return ids


def _tile_for_json(catalog: Catalog, json_path: Path, root: Path) -> int | None:
    """The tile a LabelMe file belongs to: ``SUB/NAME.json`` -> tile NAME of subdataset SUB
    (the layout export writes), else the only tile named NAME."""
    rows = catalog.tile_rows.names(json_path.stem)
    if json_path.parent != root:
        match = [r for r in rows if r.subdataset == json_path.parent.name]
        if len(match) == 1:
            return match[0].id
    if len(rows) == 1:
        return rows[0].id
    return None


def import_labelme_folder(
    catalog: Catalog, folder: str | Path, label_names: Collection[str] | None = None
) -> ExchangeReport:
    """``NAME.json`` (or ``SUB/NAME.json``) goes onto tile NAME (of subdataset SUB); a file
    that cannot be imported is reported and skipped, the others are imported."""
    root = Path(folder)
    if root.is_dir():
        files = sorted(root.glob("*.json")) + sorted(root.glob("*/*.json"))
    else:
        files, root = [root], root.parent
    rep = ExchangeReport()
    for f in files:
        tid = _tile_for_json(catalog, f, root)
        if tid is None:
            rep.skipped.append((str(f), f"no single tile named {f.stem!r}; add the image with `casdesk import-dataset` first"))
            continue
        try:
            target = tile_target(catalog, tid)
            rep.labels += len(import_labelme_file(catalog, target, f, label_names))
        except CasdeskError as exc:
            rep.skipped.append((str(f), str(exc)))
            continue
        rep.tiles += LabelStore(catalog, target).affected_tiles([shapely.box(0, 0, target.width, target.height)])
    rep.messages += [f"skipped {Path(f).name}: {why}" for f, why in rep.skipped]
    return rep


def _source_files(catalog: Catalog) -> set[Path]:
    """LabelMe files labels were imported from: never written unless asked."""
    return {Path(src).resolve() for src in catalog.label_records.source_files()}


def export_labelme_folder(catalog: Catalog, folder: str | Path, overwrite: bool = False) -> ExchangeReport:
    """One LabelMe JSON per tile with labels, in one folder per subdataset
    (``FOLDER/SUB/NAME.json``: equal tile names in two subdatasets never collide). An
    existing file (such as the LabelMe file the labels came from) is only replaced with
    ``overwrite``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rep = ExchangeReport()
    sources = _source_files(catalog)
    for tile in catalog.tiles():
        target = tile_target(catalog, tile.id)
        path = out / _safe(tile.subdataset) / f"{tile.name}.json"
        doc = target_document(catalog, target, path)
        if not doc.shapes:
            continue
        if path.exists() and not overwrite:
            why = "it is the file the labels came from" if path.resolve() in sources else "it exists"
            rep.skipped.append((str(path), f"not written: {why} (use --overwrite to replace it)"))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = target_document(catalog, target, path)
        write_labelme(doc, path)
        rep.written.append(path)
        rep.labels += sum(1 for s in doc.shapes if s.label != HOLE_LABEL)
    rep.messages += [f"skipped {f}: {why}" for f, why in rep.skipped]
    return rep


def _safe(name: str) -> str:
    bad = '<>:"/\\|?*'
    return "".join("_" if c in bad or ord(c) < 32 else c for c in name).strip() or "_"


# --------------------------------------------------------------------------- vectors
def export_vector(catalog: Catalog, path: str | Path, scene_ids: Collection[int] | None = None) -> ExchangeReport:
    """Scene polygons to a vector file in the (first) scene's CRS; GeoJSON in WGS-84.

    Attributes: label, area_m2 (None without a metric CRS), source, edited (UTC time),
    scene, label_id, mask_rule (the rule its masks are drawn with; honoured on import). Scenes in other CRSs are reprojected into the first one."""
    from pyproj import CRS, Transformer

    rep = ExchangeReport()
    geoms: list[BaseGeometry] = []
    cols: dict[str, list[Any]] = {
        k: [] for k in ("label", "area_m2", "source", "edited", "scene", "label_id", "mask_rule")
    }
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
            cols["mask_rule"].append(label_rule(lab.attributes))  # read back on import: same masks
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
    """Add a vector file's polygons to every scene they fall in (reprojected, clipped).

    Importing the same file again replaces the labels it gave before (keyed by source file
    and feature id). Labels and the stale-mask markers of their tiles are one transaction
    per scene, so a crash before the masks are written is repaired by `labels regenerate`."""
    rep = ExchangeReport()
    key = str(Path(path).resolve())
    for scene in catalog.scenes():
        if scene_ids is not None and scene.id not in scene_ids:
            continue
        info = raster_info(scene.path)
        labels = read_vector_labels(path, info, label_names, label_field)
        rep.messages += [f"{scene.name}: {m}" for m in labels.messages if "no label polygon" not in m]
        store = LabelStore(catalog, scene_target(catalog, scene.id))
        with catalog.transaction():
            old = catalog.label_records.from_file(scene.id, key)
            for lid, _g in old:
                catalog.delete_label(int(lid), author=store.author)
            if labels.labels:
                catalog.add_labels(labels.labels, scene_id=scene.id, source="imported")
            touched = store.affected_tiles(labels.geometries + [shapely.from_wkt(g) for _i, g in old])
            mark_pending(catalog, touched)
        rep.labels += len(labels.labels)
        rep.tiles += touched
        if old:
            rep.messages.append(f"{scene.name}: replaced the {len(old)} label(s) imported from this file before")
    if not rep.labels:
        rep.messages.append("no polygon of the file falls inside a scene of the project")
    return rep
