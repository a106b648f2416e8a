"""Export tiles in the released CAS layout: ``<out>/<subdataset>/img|label|mask/<name>.tif``.

The export is written into a hidden sibling folder and renamed into place at the end, so an
interrupted or failed export (disk full, cancel) leaves no partial dataset behind.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio

from casdesk.core.errors import OutputError
from casdesk.core.jobs import CancelToken, Job, Progress
from casdesk.core.labels.io import mask_to_cas_label
from casdesk.core.project.catalog import Catalog, Tile
from casdesk.core.raster.io import open_raster

TIFF = {".tif", ".tiff"}


def _safe_name(name: str) -> str:
    return name.replace("/", "_").replace("\\", "_")


def export_dataset(
    catalog: Catalog,
    out_dir: str | Path,
    tile_ids: Sequence[int] | None = None,
    cancel: CancelToken | None = None,
) -> Job:
    """Write tiles (all, or ``tile_ids``) in the CAS layout; returns the number written."""
    out = Path(out_dir).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError("the output folder exists and is not empty", out, "pick a new folder")
    parent = out.parent
    if not parent.is_dir():
        raise OutputError("the parent folder does not exist", parent)
    if not os.access(parent, os.W_OK):
        raise OutputError("the output folder is not writable", parent, "pick a writable folder")
    tiles = catalog.tiles(ids=tile_ids) if tile_ids is not None else catalog.tiles()
    token = cancel or CancelToken()
    partial = parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        for i, tile in enumerate(tiles):
            token.raise_if_cancelled()
            _export_tile(tile, partial)
            if i % 20 == 0 or i == len(tiles) - 1:
                yield Progress(i + 1, len(tiles), tile.name)
        partial.mkdir(exist_ok=True)
        if out.exists():
            out.rmdir()
        os.replace(partial, out)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            reason = "the disk is full"
        else:
            reason = f"the output folder cannot be written ({exc.strerror or exc})"
        raise OutputError(f"export failed: {reason}; no partial output was left", out,
                          "free disk space or pick a writable folder") from exc
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return len(tiles)


def _export_tile(tile: Tile, root: Path) -> None:
    sub = root / _safe_name(tile.subdataset)
    name = _safe_name(tile.name)
    for d in ("img", "label", "mask"):
        (sub / d).mkdir(parents=True, exist_ok=True)
    _copy_as_tiff(tile.image_path, sub / "img" / f"{name}.tif")
    mask = None
    if tile.mask_path is not None:
        with open_raster(tile.mask_path) as ds:
            mask = (ds.read(1) > 0).astype(np.uint8)
            profile = _profile(ds, count=1)
        _write(sub / "mask" / f"{name}.tif", mask[None], profile)
    if tile.label_path is not None and tile.label_path.suffix.lower() in TIFF:
        shutil.copyfile(tile.label_path, sub / "label" / f"{name}.tif")
    elif mask is not None:
        _write(sub / "label" / f"{name}.tif", mask_to_cas_label(mask), {**profile, "count": 3})


def _profile(ds: rasterio.io.DatasetReader, count: int) -> dict:
    return {
        "driver": "GTiff",
        "width": ds.width,
        "height": ds.height,
        "count": count,
        "dtype": "uint8",
        "crs": ds.crs,
        "transform": ds.transform,
    }


def _copy_as_tiff(src: Path, dst: Path) -> None:
    if src.suffix.lower() in TIFF:
        shutil.copyfile(src, dst)
        return
    with open_raster(src) as ds:
        data = ds.read()
        profile = _profile(ds, count=ds.count)
        profile["dtype"] = ds.dtypes[0]
    _write(dst, data, profile)


def _write(path: Path, data: np.ndarray, profile: dict) -> None:
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
