"""Export tiles in the released CAS layout: ``<out>/<subdataset>/img|label|mask/<name>.tif``.

The export is written into a hidden sibling folder (``.OUT.partial-<pid>``) and renamed
into place at the end, so an interrupted or failed export (disk full, cancel) leaves no
partial dataset behind; a leftover of a killed export is removed by the next export into
the same folder (and by any command on a project in that folder).

Tile files are **hard-linked** by default: an export of 6,000 tiles takes no extra disk
space and seconds instead of minutes. Where the file system cannot link (another disk,
FAT/exFAT, some network shares) the export copies and says so. ``symlink`` makes symbolic
links (the export then depends on the project folder), ``copy`` always copies. A tile
file in the project is never modified in place (a re-crop writes a new file and renames
it), so a linked export keeps the content it had when it was made.

``manifest.csv`` in the export lists every tile: its files in the export, where they came
from and how (hard link, symlink, copy, or written when converted).
"""

from __future__ import annotations

import csv
import errno
import io
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from casdesk.core.errors import OutputError
from casdesk.core.jobs import CancelToken, Job, Progress
from casdesk.core.labels.io import binarize_label_array, mask_to_cas_label
from casdesk.core.project.catalog import Catalog, Tile
from casdesk.core.raster.io import open_raster

TIFF = {".tif", ".tiff"}
LINK_MODES = ("hard", "symlink", "copy")
MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = (
    "tile_id", "subdataset", "name", "image", "mask", "label", "how", "source_image", "source_mask",
    "source_label", "scene_id", "row_off", "col_off", "width", "height", "label_pixels", "valid_pixels",
    "sensor",
)
# errors after which a hard link can never work for this export: copy instead
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}


class ExportResult(int):
    """The number of tiles exported (an int, as before), with how the files got there.

    ``how``: counts of files per method (``hard``, ``symlink``, ``copy``, ``written``);
    ``fallback``: why hard links were replaced by copies (None when they were not);
    ``manifest``: the manifest's path in the export.
    """

    how: dict[str, int]
    fallback: str | None
    manifest: Path


class _Linker:
    """Puts a file at ``dst`` as asked (hard link / symlink / copy), falling back to a
    copy once hard links turn out impossible on this file system."""

    def __init__(self, mode: str):
        if mode not in LINK_MODES:
            raise OutputError(f"unknown link mode {mode!r}: one of {', '.join(LINK_MODES)}")
        self.mode = mode
        self.fallback: str | None = None
        self.how: dict[str, int] = {}

    def _count(self, how: str) -> str:
        self.how[how] = self.how.get(how, 0) + 1
        return how

    def place(self, src: Path, dst: Path) -> str:
        if self.mode == "hard" and self.fallback is None:
            try:
                os.link(src, dst)
                return self._count("hard")
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise
                reason = "the export is on another disk" if exc.errno == errno.EXDEV else (
                    f"the file system does not allow hard links ({exc.strerror})")
                self.fallback = f"{reason}: files were copied"
        if self.mode == "symlink":
            os.symlink(Path(src).absolute(), dst)
            return self._count("symlink")
        shutil.copyfile(src, dst)
        return self._count("copy")

    def written(self) -> str:
        return self._count("written")


def _safe_name(name: str) -> str:
    return name.replace("/", "_").replace("\\", "_")


def remove_stale_exports(parent: Path) -> list[Path]:
    """``.NAME.partial-<pid>`` folders in ``parent`` whose export process is gone."""
    from casdesk.core.project.cleanup import remove_stale_files

    return [p for p in remove_stale_files(parent) if ".partial-" in p.name]


def export_dataset(
    catalog: Catalog,
    out_dir: str | Path,
    tile_ids: Sequence[int] | None = None,
    cancel: CancelToken | None = None,
    link: str = "hard",
) -> Job:
    """Write tiles (all, or ``tile_ids``) in the CAS layout with a manifest; returns an
    :class:`ExportResult` (the number of tiles)."""
    out = Path(out_dir).absolute()
    linker = _Linker(link)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError("the output folder exists and is not empty", out, "pick a new folder")
    parent = out.parent
    if not parent.is_dir():
        raise OutputError("the parent folder does not exist", parent)
    if not os.access(parent, os.W_OK):
        raise OutputError("the output folder is not writable", parent, "pick a writable folder")
    remove_stale_exports(parent)
    tiles = catalog.tiles(ids=tile_ids) if tile_ids is not None else catalog.tiles()
    token = cancel or CancelToken()
    partial = parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    rows: list[dict[str, object]] = []
    try:
        partial.mkdir()
        for i, tile in enumerate(tiles):
            token.raise_if_cancelled()
            rows.append(_export_tile(tile, partial, linker, catalog.data_dir))
            if i % 20 == 0 or i == len(tiles) - 1:
                yield Progress(i + 1, len(tiles), tile.name)
        _write_manifest(partial / MANIFEST, rows)
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
    result = ExportResult(len(tiles))
    result.how = dict(linker.how)
    result.fallback = linker.fallback
    result.manifest = out / MANIFEST
    return result


def _write_manifest(path: Path, rows: list[dict[str, object]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _export_tile(tile: Tile, root: Path, linker: _Linker | None = None,
                 own: Path | None = None) -> dict[str, object]:
    """Put one tile's files in the export; returns its manifest row. Masks inside ``own``
    (the project's data folder: casdesk wrote them as CAS masks) are linked without being
    read when the label file is linked too; other masks are read, and linked only when they
    already are CAS masks."""
    linker = linker or _Linker("copy")
    sub_name = _safe_name(tile.subdataset)
    sub = root / sub_name
    name = _safe_name(tile.name)
    for d in ("img", "label", "mask"):
        (sub / d).mkdir(parents=True, exist_ok=True)
    how = set()
    how.add(_place_as_tiff(tile.image_path, sub / "img" / f"{name}.tif", linker))
    mask = None
    has_mask = has_label = False
    label_linked = tile.label_path is not None and tile.label_path.suffix.lower() in TIFF
    if (tile.mask_path is not None and own is not None and label_linked
            and tile.mask_path.suffix.lower() in TIFF and tile.mask_path.is_relative_to(own)):
        how.add(linker.place(tile.mask_path, sub / "mask" / f"{name}.tif"))
        has_mask = True
    elif tile.mask_path is not None:
        with open_raster(tile.mask_path) as ds:
            raw = ds.read(1)
            mask = binarize_label_array(raw[None], None, ds.nodata)  # 0/1, 255 = ignore (nodata)
            profile = _profile(ds, count=1)
            if (mask == 255).any():
                profile = {**profile, "nodata": 255}
            as_is = (tile.mask_path.suffix.lower() in TIFF and ds.count == 1 and ds.dtypes[0] == "uint8"
                     and np.array_equal(raw, mask))
        if as_is:  # already a CAS mask (uint8 0/1): link it
            how.add(linker.place(tile.mask_path, sub / "mask" / f"{name}.tif"))
        else:
            _write(sub / "mask" / f"{name}.tif", mask[None], profile)
            how.add(linker.written())
        has_mask = True
    if label_linked and tile.label_path is not None:  # (label_linked implies it)
        how.add(linker.place(tile.label_path, sub / "label" / f"{name}.tif"))
        has_label = True
    elif mask is not None:
        _write(sub / "label" / f"{name}.tif", mask_to_cas_label(mask), {**profile, "count": 3})
        how.add(linker.written())
        has_label = True
    rel = f"{sub_name}/{{}}/{name}.tif"
    return {
        "tile_id": tile.id,
        "subdataset": tile.subdataset,
        "name": tile.name,
        "image": rel.format("img"),
        "mask": rel.format("mask") if has_mask else "",
        "label": rel.format("label") if has_label else "",
        "how": "+".join(sorted(how)),
        "source_image": str(tile.image_path),
        "source_mask": "" if tile.mask_path is None else str(tile.mask_path),
        "source_label": "" if tile.label_path is None else str(tile.label_path),
        "scene_id": "" if tile.scene_id is None else tile.scene_id,
        "row_off": "" if tile.row_off is None else tile.row_off,
        "col_off": "" if tile.col_off is None else tile.col_off,
        "width": tile.width,
        "height": tile.height,
        "label_pixels": "" if tile.label_pixels is None else tile.label_pixels,
        "valid_pixels": "" if tile.valid_pixels is None else tile.valid_pixels,
        "sensor": tile.sensor or "",
    }


def _profile(ds: rasterio.io.DatasetReader, count: int) -> dict[str, Any]:
    return {
        "driver": "GTiff",
        "width": ds.width,
        "height": ds.height,
        "count": count,
        "dtype": "uint8",
        "crs": ds.crs,
        "transform": ds.transform,
    }


def _place_as_tiff(src: Path, dst: Path, linker: _Linker) -> str:
    if src.suffix.lower() in TIFF:
        return linker.place(src, dst)
    with open_raster(src) as ds:
        data = ds.read()
        profile = _profile(ds, count=ds.count)
        profile["dtype"] = ds.dtypes[0]
    _write(dst, data, profile)
    return linker.written()


def _write(path: Path, data: np.ndarray, profile: dict[str, Any]) -> None:
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
