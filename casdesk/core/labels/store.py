"""The label editor's link to the catalog: what is being edited, autosave, derived masks.

An *edit target* is a whole scene (labels stored per scene), a tile cut from a scene (the
scene's labels, seen through the tile's window) or a stand-alone tile (labels stored per
tile). The editor works in *view pixels* (the displayed image's pixel corners); the target
maps them to stored pixel coordinates with an integer offset and to the CRS with the
scene (or tile) transform.

Every edit is one catalog transaction (autosave), so killing the app loses at most the
edit in progress. Masks are derived data: :func:`regenerate_masks` re-rasterizes the
polygons of the affected tiles into their mask (0/1) and CAS label (black on white) GeoTIFFs
atomically, in a worker.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.enums import MaskFlags
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from casdesk.core.errors import CatalogError, OutputError
from casdesk.core.jobs import CancelToken, Job, Progress
from casdesk.core.labels.io import mask_to_cas_label, mask_to_polygons, read_label_raster
from casdesk.core.labels.masks import (
    MASK_IGNORE,
    RULE_GDAL,
    RULE_LABELME,
    MaskLabel,
    labelme_shape_of,
    render_mask,
    window_box,
)
from casdesk.core.project.catalog import Catalog, Label, Tile
from casdesk.core.raster.io import open_raster

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
    transform, crs = _tile_georef(t)
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


def _tile_georef(t: Tile) -> tuple[Affine | None, str | None]:
    try:
        with open_raster(t.image_path) as ds:
            if ds.crs is None:
                return None, None
            return ds.transform, ds.crs.to_wkt()
    except Exception:  # noqa: BLE001 - a tile whose image is gone still has editable labels
        return None, None


# --------------------------------------------------------------------------- autosave
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


# --------------------------------------------------------------------------- masks
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


def mark_pending(catalog: Catalog, tile_ids: Iterable[int | None]) -> None:
    """Record (inside the caller's transaction) that these tiles' masks are stale."""
    ids = sorted({int(t) for t in tile_ids if t is not None})
    if not ids:
        return
    catalog.mask_records.mark_pending(ids)


def pending_tiles(catalog: Catalog) -> list[int]:
    """Tiles whose labels changed after their mask was last written (a crash in between)."""
    return catalog.mask_records.pending()  # none in a project not yet migrated (read-only)


def base_layer(catalog: Catalog, tile_id: int) -> tuple[Path, bool] | None:
    """(path, in use) of the imported raster label kept for a tile, or None.

    ``in use`` is False once the raster was turned into editable labels
    (:func:`adopt_base`); the path is still the user's file, never written."""
    row = catalog.mask_records.base(tile_id)
    if row is None:
        return None
    return catalog.root / row[0], row[1] != ADOPTED  # stored path: relative to the project, or absolute


def set_base_layers(catalog: Catalog, pairs: Iterable[tuple[int, Path]]) -> None:
    """Keep imported raster labels as the base layers of their tiles (replacing earlier ones)."""
    catalog.mask_records.set_bases((int(t), catalog.store_path(p)) for t, p in pairs)


def image_valid(path: Path | None, shape: tuple[int, int]) -> np.ndarray | None:
    """Pixels inside the image footprint (False where the image is nodata), or None when
    every pixel is valid or the image cannot be read."""
    if path is None:
        return None
    try:
        with open_raster(path) as ds:
            if (ds.height, ds.width) != tuple(shape):
                return None
            if all(flags == [MaskFlags.all_valid] for flags in ds.mask_flag_enums):
                return None
            valid = ds.dataset_mask() > 0
    except Exception:  # noqa: BLE001 - a tile whose image is gone keeps its labels' mask
        return None
    return None if valid.all() else valid


SceneCache = dict[int, tuple[list[MaskLabel], Any]]


def _labels_for(catalog: Catalog, tile: Tile, cache: SceneCache | None = None) -> tuple[list[MaskLabel], tuple[int, int]]:
    own = catalog.labels(tile_id=tile.id)
    if own or tile.scene_id is None or tile.row_off is None or tile.col_off is None:
        return [MaskLabel(lab.name, _geom(lab), lab.attributes) for lab in own], (0, 0)
    offset = (int(tile.col_off), int(tile.row_off))
    box = window_box(offset, (tile.height, tile.width), margin=16)
    cache = {} if cache is None else cache
    if tile.scene_id not in cache:  # one read of a scene's labels per job, then a spatial index
        labs = [MaskLabel(lab.name, g, lab.attributes) for lab in catalog.labels(scene_id=tile.scene_id) if (g := _geom(lab)) is not None]
        cache[tile.scene_id] = (labs, STRtree([lab.geometry for lab in labs]) if labs else None)
    labs, tree = cache[tile.scene_id]
    if tree is None:
        return [], offset
    hits = sorted(int(i) for i in tree.query(box, predicate="intersects"))  # keep the paint order
    return [labs[i] for i in hits], offset


def _geom(lab: Label) -> BaseGeometry | None:
    try:
        return shapely.from_wkt(lab.geometry_px)
    except shapely.errors.GEOSException:
        return None


def tile_mask(catalog: Catalog, tile: Tile, cache: SceneCache | None = None) -> np.ndarray:
    """The tile's uint8 mask (0, 1, 255 ignore) by :func:`casdesk.core.labels.masks.render_mask`:
    its base layer (an imported raster label) if any, its labels painted over it in order,
    each by its own rule, and 255 outside the image footprint."""
    shape = (tile.height, tile.width)
    labels, offset = _labels_for(catalog, tile, cache)
    base = None
    kept = base_layer(catalog, tile.id)
    if kept is not None and kept[1]:
        base = read_label_raster(kept[0], expected_shape=shape)
    return render_mask(labels, shape, offset, base=base, valid=image_valid(tile.image_path, shape))


ADOPTED = "adopted"


def adopt_base(catalog: Catalog, tile_id: int) -> int:
    """Turn a tile's imported raster label into editable labels, exactly (one transaction).

    The raster is polygonised with holes (4-connected, valid polygons; 255 ignore areas
    become ``__ignore__`` labels), stored under GDAL's rule, so the mask regenerated from
    them equals the imported one pixel for pixel. Returns the number of labels added (0
    when there is no base in use)."""
    kept = base_layer(catalog, tile_id)
    if kept is None or not kept[1]:
        return 0
    tile = catalog.tile(tile_id)
    base = read_label_raster(kept[0], expected_shape=(tile.height, tile.width))
    rows = []
    for value, name in ((1, "landslide"), (255, "__ignore__")):
        for poly in mask_to_polygons(base, value=value):
            attrs = {"mask_rule": RULE_GDAL, "source_file": str(kept[0])}
            rows.append({"name": name, "geometry_px": poly.wkt, "attributes": attrs})
    transform, _crs = _tile_georef(tile)
    if transform is not None:
        for r in rows:
            g = shapely.from_wkt(r["geometry_px"])
            r["geometry_crs"] = shapely.affinity.affine_transform(
                g, [transform.a, transform.b, transform.d, transform.e, transform.c, transform.f]
            ).wkt
    with catalog.transaction():
        # labels already on the tile were drawn over the base: keep them on top
        later = catalog.label_records.ids_on_tile(tile_id)
        catalog.add_labels(rows, tile_id=tile_id, source="imported")
        for lid in later:
            catalog.label_records.move_to_top(lid)
        catalog.mask_records.set_base_state(tile_id, ADOPTED)
    return len(rows)


def _profile_from(path: Path | None, fallback: Path, shape: tuple[int, int]) -> dict[str, Any]:
    """Georeferencing for a rewritten mask: the old mask's, else the tile image's."""
    for p in (path, fallback):
        if p is not None and p.exists():
            try:
                with open_raster(p) as ds:
                    if (ds.height, ds.width) == shape:
                        return {"crs": ds.crs, "transform": ds.transform}
            except Exception:  # noqa: BLE001 - an unreadable old mask is replaced
                continue
    return {"crs": None, "transform": Affine.identity()}


def write_tif_atomic(path: Path, data: np.ndarray, georef: dict[str, Any], **extra: Any) -> None:
    """Write (bands, rows, cols) uint8 to a temp file beside ``path`` and replace it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": "uint8",
        **georef,
        **extra,
    }
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError | rasterio.errors.RasterioIOError):
            raise OutputError(f"the mask cannot be written ({exc})", path) from exc
        raise


def _read_current(path: Path | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The tile's mask file as 0/1/255 (whatever its encoding: 0/255, CAS colours), or None."""
    if path is None or not path.exists():
        return None
    try:
        return read_label_raster(path, expected_shape=shape)
    except Exception:  # noqa: BLE001 - an unreadable mask is rewritten
        return None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def regenerate_tile(catalog: Catalog, tile_id: int, cache: SceneCache | None = None) -> int:
    """Rewrite one tile's mask (and CAS label raster, if it has one) from its labels, only
    when it changes; clear its pending marker. Returns the landslide pixel count.

    A tile with an imported raster label never has the user's files written: a changed
    mask (or CAS label raster) goes into the project's data folder and the tile points there.
    """
    since = catalog.mask_records.pending_since(tile_id)
    tile = catalog.tile(tile_id)
    shape = (tile.height, tile.width)
    mask = tile_mask(catalog, tile, cache)
    pixels = int((mask == 1).sum())
    fields: dict[str, Any] = {}
    current = _read_current(tile.mask_path, shape)
    written = current is None or not np.array_equal(current, mask)
    if written:
        protected = base_layer(catalog, tile_id) is not None
        data_dir = catalog.data_dir
        mask_path = tile.mask_path
        if mask_path is None or (protected and not _inside(mask_path, data_dir)):
            mask_path = data_dir / "masks" / tile.subdataset / f"{tile.name}.tif"
        georef = _profile_from(tile.mask_path, tile.image_path, shape)
        write_tif_atomic(mask_path, mask[None], georef, nodata=MASK_IGNORE)
        if mask_path != tile.mask_path:
            fields["mask_path"] = mask_path
        if tile.label_path is not None:
            label_path = tile.label_path
            if protected and not _inside(label_path, data_dir):
                label_path = data_dir / "labels" / tile.subdataset / f"{tile.name}.tif"
                fields["label_path"] = label_path
            write_tif_atomic(label_path, mask_to_cas_label(mask), georef, photometric="RGB")
    if tile.label_pixels != pixels:
        fields["label_pixels"] = pixels
    with catalog.transaction():
        if fields or written:
            catalog.touch_tile(tile_id, **fields)
        if since is not None:
            catalog.mask_records.clear_pending(tile_id, since)
    return pixels


def regenerate_masks(
    project: str | Path | Catalog,
    tile_ids: Sequence[int],
    cancel: CancelToken | None = None,
) -> Job:
    """Job: regenerate the masks of ``tile_ids``; returns {tile_id: label_pixels}.

    Pass a project path from a worker thread (it opens its own catalog there)."""
    own = not isinstance(project, Catalog)
    catalog = project if isinstance(project, Catalog) else Catalog.open(project)
    done: dict[int, int] = {}
    cache: SceneCache = {}
    try:
        ids = list(dict.fromkeys(tile_ids))
        for i, tid in enumerate(ids):
            if cancel is not None:
                cancel.raise_if_cancelled()
            try:
                done[tid] = regenerate_tile(catalog, tid, cache)
            except CatalogError:
                continue  # the tile was deleted meanwhile
            yield Progress(i + 1, len(ids), f"mask of tile {tid}")
    finally:
        if own:
            catalog.close()
    return done


def finish_pending(project: str | Path | Catalog, cancel: CancelToken | None = None) -> Job:
    """Job: regenerate the masks a crash left stale (the pending markers); {tile_id: pixels}."""
    own = not isinstance(project, Catalog)
    catalog = project if isinstance(project, Catalog) else Catalog.open(project)
    try:
        ids = pending_tiles(catalog)
        return (yield from regenerate_masks(catalog, ids, cancel))
    finally:
        if own:
            catalog.close()
