"""Predictions -> editable labels: the one place that turns a model's output into polygons
in the catalog (the editor's "Accept as polygons", the Predict tab's "Polygons to editor"
and ``casdesk labels from-prediction`` all call it).

A prediction (a probability map, a 0/1 mask or ready polygons) is polygonised in the
target's *view* pixels, then stored with source ``predicted`` for the edit target the
editor would use (a tile cut from a scene stores into the scene, a stand-alone tile into
itself). Accepting twice does not double the polygons: earlier *predicted* labels of the
target's area are replaced (clipped at a tile's border); labels a person drew or edited
(source ``edited``/``imported``) are never touched. Everything happens in one catalog
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from casdesk.core.errors import LabelError
from casdesk.core.labels.io import mask_to_polygons
from casdesk.core.labels.store import EditTarget, mark_pending, scene_target, tile_target
from casdesk.core.project.catalog import Catalog

DEFAULT_NAME = "landslide"
DEFAULT_MIN_AREA_PX = 4.0
DEFAULT_SIMPLIFY_PX = 0.0


@dataclass
class AcceptReport:
    """What one acceptance stored."""

    label_ids: list[int] = field(default_factory=list)
    removed: int = 0  # earlier predicted labels replaced
    clipped: int = 0  # earlier predicted labels reaching out of the tile: only their outside part kept
    tiles: list[int] = field(default_factory=list)  # tiles whose masks are now stale
    scene_id: int | None = None
    tile_id: int | None = None

    @property
    def added(self) -> int:
        return len(self.label_ids)


def polygons_from_probability(
    prob: np.ndarray,
    threshold: float = 0.5,
    valid: np.ndarray | None = None,
    min_area_px: float = DEFAULT_MIN_AREA_PX,
    simplify_px: float = DEFAULT_SIMPLIFY_PX,
) -> list[shapely.Polygon]:
    """Polygons (pixel-corner coordinates, holes kept) of ``prob > threshold`` inside ``valid``.

    ``prob`` may also be a 0/1 mask (any threshold in (0, 1) then keeps the 1-pixels).
    """
    p = np.asarray(prob)
    if p.ndim != 2:
        raise LabelError(f"a prediction must be one band (rows, cols), not shape {p.shape}")
    if not 0.0 < float(threshold) < 1.0:
        raise LabelError(f"the threshold must lie between 0 and 1, not {threshold}")
    hit = p > threshold
    if valid is not None:
        hit &= np.asarray(valid, dtype=bool)
    if not hit.any():
        return []
    return mask_to_polygons(hit, min_area=float(min_area_px), simplify=float(simplify_px))


def accept_polygons(
    catalog: Catalog,
    target: EditTarget,
    polygons: Sequence[BaseGeometry],
    name: str = DEFAULT_NAME,
    replace: bool = True,
    author: str | None = None,
) -> AcceptReport:
    """Store ``polygons`` (view pixels of ``target``) as predicted labels, in one transaction.

    With ``replace``, the target's earlier predicted labels are replaced first: all of them
    for a scene or a stand-alone tile; for a tile of a scene, those inside the tile's window
    go and those reaching out of it keep their part outside (so accepting overlapping tiles
    one by one never loses what an earlier tile predicted elsewhere).
    """
    polys = [p for g in polygons for p in getattr(g, "geoms", [g]) if not p.is_empty and p.area > 0]
    rows = []
    for poly in polys:
        stored = target.to_stored(poly)
        crs = target.to_crs(stored) if target.crs else None
        rows.append({"name": name, "geometry_px": stored.wkt, "geometry_crs": None if crs is None else crs.wkt})
    report = AcceptReport(scene_id=target.scene_id, tile_id=target.tile_id)
    window = None
    if target.tile_id is not None and target.kind == "scene":
        dx, dy = target.offset
        window = shapely.box(dx, dy, dx + target.width, dy + target.height)
    touched = [shapely.box(*shapely.from_wkt(r["geometry_px"]).bounds) for r in rows]
    records = catalog.label_records
    with catalog.transaction():
        if replace:
            if target.kind == "scene":
                old = records.of_source(scene_id=target.scene_id, source="predicted")
            else:
                old = records.of_source(tile_id=target.tile_id, source="predicted")
            for lid, wkt in old:
                geom = shapely.from_wkt(wkt)
                if window is not None and geom.intersection(window).area <= 0:
                    continue  # elsewhere in the scene, or only touching the tile's border
                touched.append(shapely.box(*geom.bounds))
                rest = None if window is None else _polygonal(geom.difference(window))
                if rest is not None:  # a polygon reaching out of the tile keeps its outside part
                    crs = target.to_crs(rest) if target.crs else None
                    records.clip(lid, wkt, rest.wkt, None if crs is None else crs.wkt, author)
                    report.clipped += 1
                    continue
                catalog.delete_label(lid, author=author)
                report.removed += 1
        if rows:
            report.label_ids = catalog.add_labels(rows, source="predicted", author=author, **target.owner)
        report.tiles = _stale_tiles(catalog, target, touched)
        mark_pending(catalog, report.tiles)  # with the labels: a crash before the masks is repaired
    return report


def _polygonal(geom: BaseGeometry) -> BaseGeometry | None:
    """The polygonal part of ``geom`` with some area, or None."""
    polys = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type in ("Polygon", "MultiPolygon")]
    parts = [p for g in polys for p in getattr(g, "geoms", [g]) if p.area > 0]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _stale_tiles(catalog: Catalog, target: EditTarget, stored_boxes: list[BaseGeometry]) -> list[int]:
    if target.kind == "tile":
        return [target.tile_id] if target.tile_id is not None else []
    if not stored_boxes:
        return []
    x0, y0, x1, y1 = shapely.union_all(stored_boxes).bounds
    return sorted(catalog.tile_rows.overlapping(target.scene_id, x0, y0, x1, y1))


def accept_probability(
    catalog: Catalog,
    target: EditTarget,
    prob: np.ndarray,
    threshold: float = 0.5,
    valid: np.ndarray | None = None,
    name: str = DEFAULT_NAME,
    min_area_px: float = DEFAULT_MIN_AREA_PX,
    simplify_px: float = DEFAULT_SIMPLIFY_PX,
    replace: bool = True,
    author: str | None = None,
) -> AcceptReport:
    """Polygonise a probability map (or 0/1 mask) of the target's view and store it."""
    if prob.shape != (target.height, target.width):
        raise LabelError(
            f"the prediction is {prob.shape[1]}x{prob.shape[0]} px but {target.title} is "
            f"{target.width}x{target.height} px",
            hint="predict this tile again with the chosen model",
        )
    polys = polygons_from_probability(prob, threshold, valid, min_area_px, simplify_px)
    return accept_polygons(catalog, target, polys, name=name, replace=replace, author=author)


def accept_tile_predictions(
    catalog: Catalog,
    model: str,
    tile_ids: Sequence[int] | None = None,
    threshold: float | None = None,
    name: str = DEFAULT_NAME,
    min_area_px: float = DEFAULT_MIN_AREA_PX,
    simplify_px: float = DEFAULT_SIMPLIFY_PX,
) -> list[AcceptReport]:
    """Stored tile predictions of ``model`` (``casdesk predict-tiles``) -> labels of those tiles.

    ``threshold`` None: use the stored 0/1 mask; else threshold the stored probability.
    """
    from casdesk.core.raster.outputs import decode_probability

    rows = catalog.predictions.of_model(model)
    if not rows:
        known = catalog.predictions.models()
        raise LabelError(
            f"no stored tile predictions of model {model!r}",
            catalog.path,
            f"run `casdesk predict-tiles` first; models with predictions: {', '.join(known) or 'none'}",
        )
    wanted = None if tile_ids is None else {int(i) for i in tile_ids}
    if wanted is not None:
        missing = wanted - {r.tile_id for r in rows}
        if missing:
            raise LabelError(f"model {model!r} has no prediction for tile(s) {sorted(missing)[:10]}",
                             hint="predict those tiles first")
    reports = []
    for r in rows:
        if wanted is not None and r.tile_id not in wanted:
            continue
        target = tile_target(catalog, r.tile_id)
        if threshold is None:
            mask = _read_band(r.mask_path)
            valid = mask != 255
            prob, thr = np.where(valid, mask, 0), 0.5
        else:
            path = r.prob_path
            if path is None:
                raise LabelError("the stored prediction has no probability file", hint="omit --threshold")
            prob, valid = decode_probability(_read_band(path))
            thr = threshold
        reports.append(accept_probability(catalog, target, prob, thr, valid, name, min_area_px, simplify_px))
    return reports


def accept_scene_prediction(
    catalog: Catalog,
    scene_id: int,
    mask_path: str | Path,
    name: str = DEFAULT_NAME,
    min_area_px: float = DEFAULT_MIN_AREA_PX,
) -> AcceptReport:
    """A scene prediction's 0/1 mask GeoTIFF (``casdesk predict``) -> the scene's labels."""
    target = scene_target(catalog, scene_id)
    mask = _read_band(Path(mask_path))
    if mask.shape != (target.height, target.width):
        raise LabelError(f"the mask is {mask.shape[1]}x{mask.shape[0]} px but the scene is "
                         f"{target.width}x{target.height} px", mask_path, "pick the prediction of this scene")
    return accept_probability(catalog, target, mask, 0.5, mask != 255, name, min_area_px)


def _read_band(path: Path | None) -> np.ndarray:
    from casdesk.core.raster.io import open_raster

    if path is None or not Path(path).exists():
        raise LabelError("prediction file not found", path, "predict again")
    with open_raster(path) as ds:
        return ds.read(1)
