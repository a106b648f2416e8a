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
from shapely.geometry.base import BaseGeometry

from casdesk.core.errors import CatalogError, OutputError
from casdesk.core.jobs import CancelToken, Job, Progress
from casdesk.core.labels.io import mask_to_cas_label, rasterize_polygons
from casdesk.core.project.catalog import Catalog, Label, Tile
from casdesk.core.raster.io import open_raster

NOT_LANDSLIDE = frozenset({"background", "_background_", "__ignore__", "nodata"})


def is_landslide_name(name: str | None) -> bool:
    """Labels burnt into masks: every name except background/ignore/nodata markers."""
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
    own = catalog.execute("SELECT COUNT(*) FROM labels WHERE tile_id = ?", (tile_id,)).fetchone()[0]
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
        row = self._row(view_geom, name, attributes)
        return self.catalog.add_labels([row], source=source, author=self.author, **self.target.owner)[0]

    def update(self, label_id: int, view_geom: BaseGeometry | None = None, name: str | None = None) -> None:
        if view_geom is None:
            self.catalog.update_label(label_id, name=name, author=self.author)
            return
        row = self._row(view_geom, name or "", None)
        self.catalog.update_label(
            label_id,
            geometry_px=row["geometry_px"],
            geometry_crs=row["geometry_crs"],
            name=name,
            author=self.author,
        )

    def delete(self, label_id: int) -> None:
        self.catalog.delete_label(label_id, author=self.author)

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
        rows = self.catalog.query(
            "SELECT id FROM tiles WHERE scene_id = ? AND row_off IS NOT NULL"
            " AND col_off < ? AND col_off + width > ? AND row_off < ? AND row_off + height > ?",
            (t.scene_id, x1 + dx, x0 + dx, y1 + dy, y0 + dy),
        )
        return [int(r[0]) for r in rows]


# --------------------------------------------------------------------------- masks
def tile_mask(catalog: Catalog, tile: Tile) -> np.ndarray:
    """The tile's uint8 0/1 mask rasterized from the polygons that own it (pixel centres)."""
    shape = (tile.height, tile.width)
    own = [lab for lab in catalog.labels(tile_id=tile.id)]
    if own or tile.scene_id is None or tile.row_off is None or tile.col_off is None:
        geoms = [shapely.from_wkt(lab.geometry_px) for lab in own if is_landslide_name(lab.name)]
        return rasterize_polygons(geoms, shape)
    box = shapely.box(tile.col_off, tile.row_off, tile.col_off + tile.width, tile.row_off + tile.height)
    geoms = []
    for lab in catalog.labels(scene_id=tile.scene_id):
        if not is_landslide_name(lab.name):
            continue
        g = shapely.from_wkt(lab.geometry_px)
        if g.intersects(box):
            geoms.append(g)
    return rasterize_polygons(geoms, shape, Affine.translation(tile.col_off, tile.row_off))


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


def regenerate_tile(catalog: Catalog, tile_id: int) -> int:
    """Rewrite one tile's mask (and CAS label raster, if it has one) from its polygons;
    record it in the catalog. Returns the landslide pixel count."""
    tile = catalog.tile(tile_id)
    shape = (tile.height, tile.width)
    mask = tile_mask(catalog, tile)
    mask_path = tile.mask_path or catalog.data_dir / "masks" / tile.subdataset / f"{tile.name}.tif"
    georef = _profile_from(tile.mask_path, tile.image_path, shape)
    write_tif_atomic(mask_path, mask[None], georef)
    if tile.label_path is not None:
        write_tif_atomic(tile.label_path, mask_to_cas_label(mask), georef, photometric="RGB")
    pixels = int(mask.sum())
    fields: dict[str, Any] = {"label_pixels": pixels}
    if tile.mask_path is None:
        fields["mask_path"] = mask_path
    catalog.touch_tile(tile_id, **fields)
    return pixels


def regenerate_masks(
    project: str | Path | Catalog,
    tile_ids: Sequence[int],
    cancel: CancelToken | None = None,
) -> Job:
    """Job: regenerate the masks of ``tile_ids``; returns {tile_id: label_pixels}.

    Pass a project path from a worker thread (it opens its own catalog there)."""
    own = not isinstance(project, Catalog)
    catalog = Catalog.open(project) if own else project
    done: dict[int, int] = {}
    try:
        ids = list(dict.fromkeys(tile_ids))
        for i, tid in enumerate(ids):
            if cancel is not None:
                cancel.raise_if_cancelled()
            try:
                done[tid] = regenerate_tile(catalog, tid)
            except CatalogError:
                continue  # the tile was deleted meanwhile
            yield Progress(i + 1, len(ids), f"mask of tile {tid}")
    finally:
        if own:
            catalog.close()
    return done
