"""The last tile table a project showed, kept beside its thumbnails: the next open shows the
grid from it at once, while the catalog is read (and the grid corrected if it changed).

Reading the tile table of 20,000 tiles from SQLite takes ~0.13 s of a worker (~0.3 s on a
busy machine), most of the warm first screen. The snapshot is the table's own columns
(no QC states, no split parts: those follow from the catalog as before), in an uncompressed
``.npz`` of plain arrays (no pickled objects: a damaged or foreign file is refused, never
executed), read in ~10 ms. It is only ever a head start: the worker reads the catalog right
after the first screen and :func:`same_table` decides whether the grid must change.

Tables are saved by the worker that read them from the catalog; a mask edit deletes the
file (:func:`forget_snapshot`), so the next open reads the catalog.
"""

from __future__ import annotations

import os
import threading
from dataclasses import fields
from pathlib import Path

import numpy as np

from casdesk.core.dataset import tile_table as ti

SNAPSHOT_FILE = "tile-table.npz"
VERSION = 1
_COLUMNS = ("ids", "subdataset_code", "sensor_code", "scene_id", "row_off", "col_off", "width", "height",
            "label_pixels")
_TEXT = ("names", "image_path", "modified")
_NOT_TABLE = {"metrics", "manual", "auto_state", "qc_state", "split_name", "split_part", "failed", "rules", "stale",
              "unmeasured"}
"""TileIndex fields that are not the tile table (QC columns, split parts) or are caches."""


def snapshot_path(folder: Path) -> Path:
    return folder / SNAPSHOT_FILE


def save_snapshot(folder: Path, index: ti.TileIndex) -> None:
    """Keep ``index``'s tile table in ``folder`` (worker thread; nothing when it cannot be
    written)."""
    path = snapshot_path(folder)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    masks = index.mask_path
    arrays: dict[str, np.ndarray] = {
        "version": np.array([VERSION]),
        "subdataset_names": np.array(index.subdataset_names, dtype=str),
        "label_fraction": np.asarray(index.metrics[ti.LABEL_FRACTION], np.float64),
        "mask_path": np.array(["" if m is None else str(m) for m in masks.tolist()], dtype=str),
        "has_mask": np.array([m is not None for m in masks.tolist()], dtype=bool),
    }
    for name in _COLUMNS:
        arrays[name] = np.asarray(getattr(index, name))
    for name in _TEXT:
        arrays[name] = np.array([str(v) for v in getattr(index, name).tolist()], dtype=str)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy types the kwargs as its options
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def load_snapshot(folder: Path, root: Path) -> ti.TileIndex | None:
    """The tile table saved in ``folder`` for the project in ``root``, or None (no file, an
    older format, damaged)."""
    try:
        with np.load(snapshot_path(folder), allow_pickle=False) as data:
            if int(data["version"][0]) != VERSION:
                return None
            a = {name: data[name] for name in data.files}
        n = a["ids"].size
        masks = a["mask_path"].astype(object)
        masks[~a["has_mask"]] = None
        index = ti.TileIndex(
            root=root,
            ids=a["ids"].astype(np.int64),
            names=a["names"],
            subdataset_code=a["subdataset_code"].astype(np.int32),
            subdataset_names=[str(s) for s in a["subdataset_names"].tolist()],
            sensor_code=a["sensor_code"].astype(np.int8),
            scene_id=a["scene_id"].astype(np.int64),
            row_off=a["row_off"].astype(np.int64),
            col_off=a["col_off"].astype(np.int64),
            width=a["width"].astype(np.int32),
            height=a["height"].astype(np.int32),
            image_path=a["image_path"].astype(object),
            mask_path=masks,
            modified=a["modified"].astype(object),
            label_pixels=a["label_pixels"].astype(np.int64),
            metrics={ti.LABEL_FRACTION: a["label_fraction"].astype(np.float64)},
            manual=np.zeros(n, np.int8),
            auto_state=np.full(n, ti.qc_code("PENDING"), np.int8),
            qc_state=np.full(n, ti.qc_code("PENDING"), np.int8),
        )
        if any(getattr(index, name).shape != (n,) for name in (*_COLUMNS, *_TEXT, "mask_path")):
            return None
        return index
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def forget_snapshot(folder: Path) -> None:
    """The tile table changed without a full read: the next open reads the catalog."""
    try:
        snapshot_path(folder).unlink(missing_ok=True)
    except OSError:
        pass


def same_table(a: ti.TileIndex, b: ti.TileIndex) -> bool:
    """The two indexes hold the same tile table (QC columns and split parts aside)."""
    if a.root != b.root or len(a) != len(b):
        return False
    for f in fields(ti.TileIndex):
        if f.name in _NOT_TABLE or f.name.startswith("_") or f.name == "root":
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)) or x.shape != y.shape:
                return False
            if x.dtype == object or y.dtype == object:
                if x.tolist() != y.tolist():
                    return False
            elif not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    fa, fb = a.metrics.get(ti.LABEL_FRACTION), b.metrics.get(ti.LABEL_FRACTION)
    return fa is not None and fb is not None and np.array_equal(fa, fb, equal_nan=True)
