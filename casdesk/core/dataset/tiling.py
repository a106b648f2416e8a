"""Crop scenes into tiles in the CAS layout: ``<root>/<subdataset>/img|mask|label/<name>.tif``.

Tiles keep the scene's CRS and the window's transform (the released CAS tiles have none;
ours do, so predictions and QC can be mapped back). Masks are uint8 0/1; labels are the
CAS convention (RGB, landslide black on white). The crop streams window by window with a
bounded number of windows in flight, so peak memory does not grow with scene size.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.windows import Window
from shapely.strtree import STRtree

from casdesk.core.errors import OutputError, TilingError
from casdesk.core.jobs import CancelToken, Job, Progress
from casdesk.core.labels.io import mask_to_cas_label, rasterize_polygons
from casdesk.core.project.catalog import Catalog, Scene
from casdesk.core.raster.io import open_raster, read_window

EDGE_POLICIES = ("shift", "pad", "drop")


@dataclass(frozen=True)
class CropParams:
    size: int = 512
    stride: int = 512
    edge: str = "shift"

    def __post_init__(self) -> None:
        if self.size < 8:
            raise TilingError(f"tile size {self.size} is too small (at least 8 pixels)")
        if not self.stride > 0:
            raise TilingError(f"stride must be positive, not {self.stride}")
        if self.edge not in EDGE_POLICIES:
            raise TilingError(f"edge policy must be one of {EDGE_POLICIES}, not {self.edge!r}")


def _offsets(length: int, size: int, stride: int, edge: str) -> list[int]:
    if length < size:
        return [0] if edge == "pad" else []
    offs = list(range(0, length - size + 1, stride))
    last_end = offs[-1] + size
    if last_end < length:
        if edge == "shift":
            offs.append(length - size)
        elif edge == "pad":
            offs.append(offs[-1] + stride)
    return offs


def tile_windows(width: int, height: int, params: CropParams) -> list[Window]:
    """Windows (row-major) covering a ``width`` x ``height`` scene.

    ``shift`` moves the last window back to end at the scene edge (as the CAS production
    code does), ``pad`` lets it run past the edge (filled with nodata), ``drop`` leaves the
    remainder out.
    """
    rows = _offsets(height, params.size, params.stride, params.edge)
    cols = _offsets(width, params.size, params.stride, params.edge)
    return [Window(c, r, params.size, params.size) for r in rows for c in cols]


def tile_name(scene_name: str, window: Window) -> str:
    """Names carry the scene and the offsets, never a global counter."""
    return f"{scene_name}_r{int(window.row_off):06d}_c{int(window.col_off):06d}"


def _atomic_write(path: Path, data: np.ndarray, profile: dict[str, Any], mask: np.ndarray | None = None) -> None:
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            if mask is not None:
                dst.write_mask(mask.astype(np.uint8) * 255)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _SceneReader:
    """One open dataset per thread: rasterio datasets must not be shared across threads."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def get(self) -> Any:
        ds = getattr(self._local, "ds", None)
        if ds is None:
            ds = open_raster(self.path)
            self._local.ds = ds
            with self._lock:
                self._all.append(ds)
        return ds

    def close(self) -> None:
        for ds in self._all:
            ds.close()


def crop_scene(
    catalog: Catalog,
    scene_id: int,
    params: CropParams = CropParams(),
    out_root: Path | None = None,
    workers: int | None = None,
    cancel: CancelToken | None = None,
    compress: str | None = None,
) -> Job:
    """Crop one scene of the catalog into tiles; yields Progress, returns the tile ids.

    Tiles land in ``out_root`` (default: ``<project>.casdesk.d/tiles``) under the scene's
    subdataset (default: the scene name). Re-cropping a scene replaces its tiles; tiles
    whose names are unchanged keep their ids (and so their QC decisions).
    """
    scene = catalog.scene(scene_id)
    root = Path(out_root) if out_root else catalog.data_dir / "tiles"
    subdataset = scene.subdataset or scene.name
    windows = tile_windows(scene.width, scene.height, params)
    if not windows:
        raise TilingError(
            f"the scene ({scene.width}x{scene.height}) is smaller than one {params.size}-pixel tile",
            scene.path,
            "use --edge pad, or a smaller --size",
        )
    dirs = {k: root / subdataset / k for k in ("img", "mask", "label")}
    try:
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the tile folders ({exc.strerror})", root, "pick a writable folder") from exc
    for d in dirs.values():
        if not os.access(d, os.W_OK):
            raise OutputError("the tile folder is not writable", d, "pick a writable folder")

    landslide = [
        shapely.from_wkt(lab.geometry_px)
        for lab in catalog.labels(scene_id=scene_id)
        if _is_landslide(lab.name)
    ]
    tree = STRtree(landslide) if landslide else None
    reader = _SceneReader(scene.path)
    workers = workers or min(4, os.cpu_count() or 1)
    token = cancel or CancelToken()

    def work(window: Window) -> dict[str, Any]:
        return _write_tile(reader.get(), scene, window, dirs, landslide, tree, compress)

    rows: list[dict[str, Any]] = []
    ids: list[int] = []
    total = len(windows)
    done = 0
    pending: set[Future[dict[str, Any]]] = set()
    it: Iterator[Window] = iter(windows)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="casdesk-crop") as pool:
            exhausted = False
            while pending or not exhausted:
                while not exhausted and len(pending) < 2 * workers and not token.cancelled:
                    try:
                        pending.add(pool.submit(work, next(it)))
                    except StopIteration:
                        exhausted = True
                if token.cancelled and not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    try:
                        row = fut.result()
                    except OSError as exc:  # disk full, folder removed, ...: name the folder
                        token.cancel()
                        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
                        raise OutputError(
                            f"writing tiles failed: {reason}; the {len(ids) + len(rows)} tiles written "
                            "before it are kept",
                            root / subdataset,
                            "free disk space or pick another folder, then crop again",
                        ) from exc
                    row["subdataset"] = subdataset
                    rows.append(row)
                    done += 1
                if len(rows) >= 256:
                    ids += catalog.add_tiles(rows)
                    rows = []
                yield Progress(done, total, f"{scene.name}: {done}/{total} tiles")
                if token.cancelled:
                    exhausted = True
    finally:
        reader.close()
        if rows:
            ids += catalog.add_tiles(rows)
    token.raise_if_cancelled()
    ids.sort()
    keep = set(ids)
    with catalog.transaction() as db:
        stale = [r[0] for r in db.execute("SELECT id FROM tiles WHERE scene_id = ?", (scene_id,)) if r[0] not in keep]
        db.executemany("DELETE FROM tiles WHERE id = ?", [(i,) for i in stale])
    return ids


def _is_landslide(name: str) -> bool:
    return True if not name else name.lower() not in {"background", "_background_", "__ignore__", "nodata"}


def _write_tile(
    ds: Any,
    scene: Scene,
    window: Window,
    dirs: dict[str, Path],
    geoms: Sequence[Any],
    tree: STRtree | None,
    compress: str | None,
) -> dict[str, Any]:
    data, valid = read_window(ds, window)
    size_r, size_c = data.shape[1:]
    r0, c0 = int(window.row_off), int(window.col_off)
    local = []
    if tree is not None:
        box = shapely.box(c0, r0, c0 + size_c, r0 + size_r)
        local = [geoms[i] for i in tree.query(box, predicate="intersects")]
    mask = rasterize_polygons(local, (size_r, size_c), Affine.translation(c0, r0))
    mask[~valid] = 0
    name = tile_name(scene.name, window)
    transform = Affine(*scene.transform[:6]) @ Affine.translation(c0, r0)
    crs = rasterio.crs.CRS.from_wkt(scene.crs) if scene.crs else None
    base = {"driver": "GTiff", "width": size_c, "height": size_r, "crs": crs, "transform": transform}
    if compress:
        base["compress"] = compress
    nodata = scene.nodata
    img_profile = {**base, "count": data.shape[0], "dtype": data.dtype.name}
    write_mask = None
    if nodata is not None:
        img_profile["nodata"] = nodata
    elif not valid.all():
        write_mask = valid  # no nodata value: keep the footprint as an internal mask
    paths = {k: dirs[k] / f"{name}.tif" for k in dirs}
    _atomic_write(paths["img"], data, img_profile, write_mask)
    _atomic_write(paths["mask"], mask[None], {**base, "count": 1, "dtype": "uint8"})
    _atomic_write(paths["label"], mask_to_cas_label(mask), {**base, "count": 3, "dtype": "uint8", "photometric": "RGB"})
    return {
        "name": name,
        "scene_id": scene.id,
        "row_off": r0,
        "col_off": c0,
        "width": size_c,
        "height": size_r,
        "image_path": paths["img"],
        "mask_path": paths["mask"],
        "label_path": paths["label"],
        "label_pixels": int(mask.sum()),
        "valid_pixels": int(valid.sum()),
    }
