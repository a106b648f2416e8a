"""Crop scenes into tiles in the CAS layout: ``<root>/<subdataset>/img|mask|label/<name>.tif``.

Tiles keep the scene's CRS and the window's transform (the released CAS tiles have none;
ours do, so predictions and QC can be mapped back). Masks are uint8 0/1; labels are the
CAS convention (RGB, landslide black on white). The crop streams window by window with a
bounded number of windows in flight, so peak memory does not grow with scene size.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import socket
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

from casdesk.core.dataset.limits import MAX_INFLIGHT_BYTES, MAX_TILE_SIZE, MAX_WORKERS
from casdesk.core.errors import OutputError, TilingError
from casdesk.core.jobs import CancelToken, Job, Progress
from casdesk.core.labels.io import mask_to_cas_label
from casdesk.core.labels.masks import MaskLabel, render_mask
from casdesk.core.project.catalog import Catalog, Scene
from casdesk.core.raster.io import open_raster, read_window

log = logging.getLogger(__name__)

EDGE_POLICIES = ("shift", "pad", "drop")


STAGE_BATCH = 256


@dataclass(frozen=True)
class CropParams:
    size: int = 512
    stride: int = 512
    edge: str = "shift"

    def __post_init__(self) -> None:
        if not 8 <= self.size <= MAX_TILE_SIZE:
            raise TilingError(f"tile size {self.size} is out of range: a tile is 8 to {MAX_TILE_SIZE} pixels")
        if not 1 <= self.stride <= MAX_TILE_SIZE:
            raise TilingError(f"stride {self.stride} is out of range: the step between tiles is 1 to "
                              f"{MAX_TILE_SIZE} pixels (equal to the size for no overlap)")
        if self.edge not in EDGE_POLICIES:
            raise TilingError(f"edge policy must be one of {EDGE_POLICIES}, not {self.edge!r}")

    @property
    def gaps(self) -> bool:
        """A stride larger than the size leaves strips of the scene in no tile."""
        return self.stride > self.size

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "stride": self.stride, "edge": self.edge}


def check_workers(workers: int | None) -> int:
    """Writer threads: 1 to :data:`MAX_WORKERS` (default up to 4)."""
    if workers is None:
        return min(4, os.cpu_count() or 1)
    if not 1 <= workers <= MAX_WORKERS:
        raise TilingError(f"--workers {workers} is out of range: 1 to {MAX_WORKERS} writer threads")
    return workers


def check_memory(scene: Scene, params: CropParams, workers: int) -> None:
    """Refuse, before any work, a tile size whose tiles in flight would not fit in memory."""
    per_pixel = scene.bands * np.dtype(scene.dtype).itemsize + 4  # image + mask + label
    need = params.size * params.size * per_pixel * 2 * workers
    if need > MAX_INFLIGHT_BYTES:
        largest = int((MAX_INFLIGHT_BYTES / (per_pixel * 2 * workers)) ** 0.5)
        raise TilingError(
            f"{params.size}-pixel tiles of this scene need {need / 2**30:.1f} GiB of memory in flight "
            f"({workers} worker(s)); tiles up to {largest} pixels fit in {MAX_INFLIGHT_BYTES >> 30} GiB",
            scene.path,
            "use a smaller --size (the CAS dataset uses 512) or fewer --workers",
        )


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
    """The scene's (unique) name, the tile size and the offsets, never a global counter.

    Equal names mean equal windows of one scene: a re-crop on the same grid keeps a
    tile's id (and its QC decisions), a re-crop at another size makes new tiles whose
    files never overwrite the old ones while the catalog still lists them.
    """
    return f"{scene_name}_{int(window.width)}px_r{int(window.row_off):06d}_c{int(window.col_off):06d}"


def _tile_file_pattern(scene_name: str) -> re.Pattern[str]:
    return re.compile(re.escape(scene_name) + r"_\d+px_r\d{6}_c\d{6}\.tif")


def _tmp_path(path: Path) -> Path:
    """``.NAME.PID-THREAD.tmp`` beside ``path``: the pid lets a later run tell a dead
    writer's leftover from a live one's (:func:`casdesk.core.project.cleanup`)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")


def _atomic_write(path: Path, data: np.ndarray, profile: dict[str, Any], mask: np.ndarray | None = None) -> None:
    tmp = _tmp_path(path)
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


class CropResult(list[int]):
    """The tile ids of a crop (a list, as before) with what the crop replaced.

    ``dropped_tiles``: old tiles whose window no longer exists (removed with their files);
    ``dropped_decisions`` / ``dropped_split_tiles``: their QC decisions and split
    memberships, gone with them; ``resumed``: tiles an interrupted crop had written and
    this one kept; ``warnings``: sentences for the user.
    """

    dropped_tiles: int = 0
    dropped_decisions: int = 0
    dropped_split_tiles: int = 0
    resumed: int = 0
    warnings: list[str]


# Scenes this process is cropping now: the catalog's lock row carries our pid, which alone
# cannot tell a live crop in another thread from a dead one in this process.
_cropping: set[tuple[str, int]] = set()
_cropping_guard = threading.Lock()


def _owner_alive(pid: int | None, host: str | None, key: tuple[str, int]) -> bool:
    from casdesk.core.project.lock import pid_alive

    if pid is None:
        return False
    if host and host != socket.gethostname():
        return True  # another machine's process cannot be checked
    if pid == os.getpid():
        with _cropping_guard:
            return key in _cropping
    return pid_alive(pid)


def _begin(catalog: Catalog, scene: Scene, params: CropParams, root: Path) -> dict[str, dict[str, Any]]:
    """Take the scene-level crop lock; return the staged rows a resumed crop keeps.

    Refuses when another live crop holds the scene. A crop left ``running`` by a dead
    process or ``interrupted`` with the same parameters and folder is resumed (its whole
    tiles are kept); otherwise its staged files are removed.
    """
    key = (str(catalog.path), scene.id)
    stale_files: list[Path] = []
    with catalog.transaction():
        row = catalog.crops.lock(scene.id)
        if row is not None and row.state == "running" and _owner_alive(row.pid, row.host, key):
            raise TilingError(
                f"scene {scene.id} ({scene.name}) is being cropped by process {row.pid} on "
                f"{row.host} since {row.started[:19]}",
                catalog.path,
                "wait for that crop to finish; one crop per scene at a time",
            )
        staged = catalog.crops.staged(scene.id)
        same = (
            row is not None
            and row.state in ("running", "interrupted")
            and row.params == params.to_dict()
            and row.out_root == str(root)
        )
        if not same and staged:
            current = {str(p) for t in catalog.tiles(scene_id=scene.id)
                       for p in (t.image_path, t.mask_path, t.label_path) if p is not None}
            stale_files = [Path(r[k]) for r in staged.values() for k in ("image_path", "mask_path", "label_path")
                           if r.get(k) and r[k] not in current]
            catalog.crops.clear_staged(scene.id)
            staged = {}
        catalog.crops.start(scene.id, params.to_dict(), str(root))
    with _cropping_guard:
        _cropping.add(key)
    for f in stale_files:
        f.unlink(missing_ok=True)
    return {name: r for name, r in staged.items()
            if all(Path(r[k]).exists() for k in ("image_path", "mask_path", "label_path"))}


def _stage(catalog: Catalog, scene_id: int, rows: Sequence[dict[str, Any]]) -> None:
    catalog.crops.stage(scene_id, rows)


def _release(catalog: Catalog, scene_id: int, state: str) -> None:
    with _cropping_guard:
        _cropping.discard((str(catalog.path), scene_id))
    if state == "interrupted":
        with contextlib.suppress(Exception):  # best effort: the pid check covers it
            catalog.crops.mark_interrupted(scene_id)


def _commit(catalog: Catalog, scene: Scene, params: CropParams, root: Path, dirs: dict[str, Path]) -> CropResult:
    """Replace the scene's tiles by the staged ones in one transaction; then remove the
    files of tiles that are gone (and any leftover of this scene in its tile folders)."""
    result = CropResult()
    result.warnings = []
    derived: list[Path | None] = []
    with catalog.transaction():
        rows = list(catalog.crops.staged(scene.id).values())
        new_names = {r["name"] for r in rows}
        old = catalog.tiles(scene_id=scene.id)
        gone = [t for t in old if t.name not in new_names or t.subdataset != rows[0]["subdataset"]]
        result.extend(sorted(catalog.add_tiles(rows)))  # before the delete: new tiles never reuse an old id
        if gone:
            dropped = catalog.crops.drop_tiles([t.id for t in gone])
            result.dropped_decisions, result.dropped_split_tiles = dropped.decided, dropped.split_rows
            derived.extend(dropped.derived)
        result.dropped_tiles = len(gone)
        catalog.crops.complete(scene.id)
    keep = {r[k] for r in rows for k in ("image_path", "mask_path", "label_path") if r.get(k)}  # str(Path) form
    for p in derived:  # the old tiles' stored predictions went with their rows
        if p is not None:
            p.unlink(missing_ok=True)
    for t in gone:
        for p in (t.image_path, t.mask_path, t.label_path):
            if p is not None and str(p) not in keep:
                p.unlink(missing_ok=True)
    pattern = _tile_file_pattern(scene.name)
    for d in dirs.values():
        with contextlib.suppress(OSError):
            for entry in os.scandir(d):
                if pattern.fullmatch(entry.name) and str(Path(entry.path)) not in keep:
                    Path(entry.path).unlink(missing_ok=True)
    if result.dropped_tiles:
        result.warnings.append(
            f"{scene.name}: the tile grid changed: {result.dropped_tiles} old tile(s) replaced by new ones "
            f"(new ids); {result.dropped_decisions} QC decision(s) and {result.dropped_split_tiles} split "
            "membership(s) of the old tiles were dropped"
        )
    return result


def crop_scene(
    catalog: Catalog,
    scene_id: int,
    params: CropParams = CropParams(),
    out_root: Path | None = None,
    workers: int | None = None,
    cancel: CancelToken | None = None,
    compress: str | None = None,
) -> Job:
    """Crop one scene of the catalog into tiles; yields Progress, returns a :class:`CropResult`.

    Tiles land in ``out_root`` (default: ``<project>.casdesk.d/tiles``) under the scene's
    subdataset (default: the scene name). A crop is a transaction from the catalog's point
    of view: tiles are staged as they are written and replace the scene's tiles in one
    step at the end. Tiles whose window is unchanged keep their ids (and QC decisions);
    tiles of another grid are new, the old ones and their files are removed (the result
    says how many decisions and split memberships went with them). An interrupted crop
    leaves the old tiles in place and is resumed by the next crop with the same
    parameters. One crop per scene at a time (a lock row in the catalog).
    """
    scene = catalog.scene(scene_id)
    root = (Path(out_root) if out_root else catalog.data_dir / "tiles").absolute()
    subdataset = scene.subdataset or scene.name
    workers = check_workers(workers)
    check_memory(scene, params, workers)
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

    staged = _begin(catalog, scene, params, root)
    from casdesk.core.project.cleanup import remove_stale_files

    for d in dirs.values():
        remove_stale_files(d)
    state = "interrupted"
    try:
        result = yield from _crop(catalog, scene, params, windows, dirs, subdataset, staged, workers,
                                  cancel or CancelToken(), compress, root)
        state = "complete"
    finally:
        _release(catalog, scene_id, state)
    if params.gaps:
        result.warnings.insert(0, f"{scene.name}: the stride ({params.stride}) is larger than the tile size "
                                  f"({params.size}): strips of the scene are in no tile")
    for w in result.warnings:
        log.info("%s", w)  # the caller shows them (the CLI prints them, the GUI in its log)
    return result


def _crop(
    catalog: Catalog,
    scene: Scene,
    params: CropParams,
    windows: list[Window],
    dirs: dict[str, Path],
    subdataset: str,
    staged: dict[str, dict[str, Any]],
    workers: int,
    token: CancelToken,
    compress: str | None,
    root: Path,
) -> Job:
    # every label, in paint order, drawn by its own rule (casdesk.core.labels.masks): the
    # masks a crop writes are those a later regeneration writes
    landslide = [
        MaskLabel(lab.name, shapely.from_wkt(lab.geometry_px), lab.attributes)
        for lab in catalog.labels(scene_id=scene.id)
    ]
    tree = STRtree([lab.geometry for lab in landslide]) if landslide else None
    reader = _SceneReader(scene.path)
    todo = [w for w in windows if tile_name(scene.name, w) not in staged]
    resumed = len(windows) - len(todo)

    def work(window: Window) -> dict[str, Any]:
        return _write_tile(reader.get(), scene, window, dirs, landslide, tree, compress)

    rows: list[dict[str, Any]] = []
    written = 0
    total = len(windows)
    done = resumed
    pending: set[Future[dict[str, Any]]] = set()
    it: Iterator[Window] = iter(todo)
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
                            f"writing tiles failed: {reason}; the scene's tiles are unchanged and the "
                            f"{written + len(rows)} new tiles written are kept for the next crop",
                            root / subdataset,
                            "free disk space or pick another folder, then crop again",
                        ) from exc
                    row["subdataset"] = subdataset
                    rows.append(row)
                    done += 1
                if len(rows) >= STAGE_BATCH:
                    _stage(catalog, scene.id, rows)
                    written += len(rows)
                    rows = []
                yield Progress(done, total, f"{scene.name}: {done}/{total} tiles")
                if token.cancelled:
                    exhausted = True
    finally:
        reader.close()
        if rows:
            _stage(catalog, scene.id, rows)
    token.raise_if_cancelled()
    result = _commit(catalog, scene, params, root, dirs)
    result.resumed = resumed
    if resumed:
        result.warnings.insert(0, f"{scene.name}: resumed an interrupted crop ({resumed} tiles kept)")
    return result


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
        local = [geoms[i] for i in sorted(tree.query(box.buffer(16), predicate="intersects"))]
    mask = render_mask(local, (size_r, size_c), (c0, r0), valid=valid)  # 255 outside the footprint
    name = tile_name(scene.name, window)
    transform = Affine(*scene.transform[:6]) @ Affine.translation(c0, r0)
    crs = rasterio.crs.CRS.from_wkt(scene.crs) if scene.crs else None
    base = {"driver": "GTiff", "width": size_c, "height": size_r, "crs": crs, "transform": transform}
    if compress:
        base["compress"] = compress
    nodata = scene.nodata
    img_profile = {**base, "count": data.shape[0], "dtype": data.dtype.name}
    write_mask = None
    if nodata is None and np.issubdtype(data.dtype, np.floating):
        nodata = math.nan  # float tiles say NaN is nodata (padding is NaN, never 0.0)
    if nodata is not None:
        img_profile["nodata"] = nodata
        if not valid.all() and not math.isnan(nodata):
            # an alpha band or internal mask decided: the footprint stays exact
            if not np.array_equal(valid, np.any(data != np.array(nodata, dtype=data.dtype), axis=0)):
                write_mask = valid
        elif not valid.all():
            data = data.copy()
            data[:, ~valid] = np.nan
    elif not valid.all():
        write_mask = valid  # integer data without a nodata value: the footprint as an internal mask
    paths = {k: dirs[k] / f"{name}.tif" for k in dirs}
    _atomic_write(paths["img"], data, img_profile, write_mask)
    _atomic_write(paths["mask"], mask[None], {**base, "count": 1, "dtype": "uint8", "nodata": 255})
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
        "label_pixels": int((mask == 1).sum()),
        "valid_pixels": int(valid.sum()),
    }
