"""The tiles' mask files, derived from their labels: which masks are stale, the imported
raster labels kept as base layers, and regeneration.

Masks are derived data. A label edit marks the tiles it reaches as *pending* in its own
transaction (:func:`mark_pending`); :func:`regenerate_masks` re-rasterizes the polygons of
those tiles (over their base layer, if any) into their mask (0/1) and CAS label (black on
white) GeoTIFFs atomically, in a worker, and clears the marker with the mask, so a crash in
between is repaired at the next open (:func:`finish_pending`) or by ``casdesk labels
regenerate``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

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
    MaskLabel,
    render_mask,
    window_box,
)
from casdesk.core.project.catalog import Catalog, Label, Tile
from casdesk.core.raster.io import open_raster


def tile_georef(t: Tile) -> tuple[Affine | None, str | None]:
    try:
        with open_raster(t.image_path) as ds:
            if ds.crs is None:
                return None, None
            return ds.transform, ds.crs.to_wkt()
    except Exception:  # noqa: BLE001 - a tile whose image is gone still has editable labels
        return None, None


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


# labels and their STRtree, per scene id: one read per scene in a batch of tiles
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
    transform, _crs = tile_georef(tile)
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
