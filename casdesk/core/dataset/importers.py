"""Importing existing datasets: the released CAS layout, image/mask pairs, LabelMe folders.

Tiles are registered where they lie (nothing is copied); masks that must be derived (CAS
``label/`` only, colour masks, LabelMe shapes) are written as 0/1 GeoTIFFs into the
project's data folder. Each importer is a generator yielding Progress and returning the
number of tiles imported; ``IMPORTERS`` is the registry the CLI and GUI use.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from casdesk.core.dataset import cas_metadata
from casdesk.core.errors import ImportDatasetError, RasterError
from casdesk.core.jobs import CancelToken, Job, Progress
from casdesk.core.labels.io import binarize_label_array
from casdesk.core.project.catalog import Catalog
from casdesk.core.raster.io import is_lossy, open_raster

IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg"}
BATCH = 500

# Metadata prefilled for the CAS Landslide Dataset's subdatasets (Xu et al. 2024), matched
# on the region name in the folder name; the sensor comes from the folder name when it
# says SAT or UAV. Prefills only: the user edits them in the project (`update_subdataset`).
CAS_REGIONS: dict[str, dict[str, str]] = {
    "moxitaidi": {"region": "Moxitaidi, Luding, Sichuan, China", "trigger": "earthquake (2022)"},
    "longxihe": {"region": "Longxihe, Sichuan, China", "trigger": "rainfall"},
    "luding": {"region": "Luding, Sichuan, China", "trigger": "earthquake (2022)"},
    "jiuzhaigou": {"region": "Jiuzhaigou, Sichuan, China", "trigger": "earthquake (2017)"},
    "jiuzzhaigou": {"region": "Jiuzhaigou, Sichuan, China", "trigger": "earthquake (2017)"},
    "mengdong": {"region": "Mengdong, Yunnan, China", "trigger": "rainfall"},
    "wenchuan": {"region": "Wenchuan, Sichuan, China", "trigger": "earthquake (2008)"},
    "palu": {"region": "Palu, Sulawesi, Indonesia", "trigger": "earthquake (2018)"},
    "haiti": {"region": "Tiburon Peninsula, Haiti", "trigger": "earthquake (2021)"},
    "hokkaido": {"region": "Iburi, Hokkaido, Japan", "trigger": "earthquake (2018)"},
}


def normalise_name(name: str) -> str:
    """Fold full-width characters (e.g. '（SAT）'), case and separators for matching."""
    folded = unicodedata.normalize("NFKC", name).lower()
    return re.sub(r"[\s_\-()\[\]]+", "", folded)


def subdataset_metadata(folder_name: str, stems: Iterable[str] = ()) -> dict[str, Any]:
    """Prefill sensor / resolution / region / trigger from a subdataset folder name.

    A released CAS subdataset (recognised by folder name or tile prefix, see
    :mod:`casdesk.core.dataset.cas_metadata`) gets the paper's metadata; any other folder
    gets guesses from its name."""
    released = cas_metadata.lookup(folder_name, stems)
    if released is not None:
        return released.fields()
    norm = normalise_name(folder_name)
    meta: dict[str, Any] = {}
    if "uav" in norm or "uva" in norm or "drone" in norm:
        meta["sensor"] = "UAV"
    elif "sat" in norm or "planet" in norm or "gf" in norm:
        meta["sensor"] = "SAT"
    res = re.search(r"(\d+(?:\.\d+)?)\s*m(?![a-z])", unicodedata.normalize("NFKC", folder_name).lower())
    if res:
        meta["resolution_m"] = float(res.group(1))
    for key, info in CAS_REGIONS.items():
        if key in norm:
            meta.update(info)
            meta.setdefault("source", "CAS Landslide Dataset (Xu et al., Scientific Data 2024)")
            meta.setdefault("licence", "CC BY 4.0")
            break
    return meta


def _images(folder: Path) -> dict[str, Path]:
    """Files by stem (``.tif`` and ``.tiff`` alike), ignoring hidden and temporary files."""
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."):
            out.setdefault(p.stem, p)
    return out


def _sub_folder(folder: Path, name: str) -> Path:
    for child in folder.iterdir() if folder.is_dir() else []:
        if child.is_dir() and child.name.lower() == name:
            return child
    return folder / name


def find_cas_subdatasets(folder: Path) -> list[Path]:
    """Subfolders holding ``img/`` (or the folder itself when it holds ``img/``)."""
    if _sub_folder(folder, "img").is_dir():
        return [folder]
    return sorted(p for p in folder.iterdir() if p.is_dir() and _sub_folder(p, "img").is_dir())


def _read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    with open_raster(path) as ds:
        if (ds.height, ds.width) != shape:
            raise ImportDatasetError(
                f"mask is {ds.width}x{ds.height} but its image is {shape[1]}x{shape[0]}", path
            )
        data = ds.read()
        nodata = ds.nodata
        lossy = is_lossy(ds)
    return binarize_label_array(data, path, nodata, lossy)  # nodata -> 255 (ignore)


def _write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with rasterio.open(
        tmp, "w", driver="GTiff", width=mask.shape[1], height=mask.shape[0], count=1, dtype="uint8",
        nodata=255,
    ) as dst:
        dst.write(mask[None])
    os.replace(tmp, path)


def _image_shape(path: Path) -> tuple[int, int]:
    with open_raster(path) as ds:
        return ds.height, ds.width


def import_cas(
    catalog: Catalog, folder: str | Path, cancel: CancelToken | None = None
) -> Job:
    """Import a folder in the released CAS layout (``<sub>/img|label|mask``).

    Masks are binarised with ``> 0``; when a subdataset has only ``label/``, masks are
    derived from the CAS colour convention (landslide black on white) into the project.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ImportDatasetError("not a folder", root, "pass the dataset's top folder")
    subs = find_cas_subdatasets(root)
    if not subs:
        raise ImportDatasetError(
            "no subdataset found: no subfolder holds an img/ folder",
            root,
            "the CAS layout is <dataset>/<subdataset>/img|label|mask/*.tif",
        )
    work: list[tuple[Path, str, str, Path]] = []
    for sub in subs:
        imgs = _images(_sub_folder(sub, "img"))
        if not imgs:
            raise ImportDatasetError("the img/ folder holds no image", _sub_folder(sub, "img"))
        for stem, path in imgs.items():
            work.append((sub, sub.name, stem, path))
    listings = {
        sub: (_images(_sub_folder(sub, "mask")), _images(_sub_folder(sub, "label"))) for sub in subs
    }
    for sub in subs:  # released subdatasets: the paper's metadata, by folder name or tile prefix
        stems = [stem for s, _n, stem, _p in work if s == sub]
        catalog.ensure_subdataset(sub.name, **subdataset_metadata(sub.name, stems))

    def row(catalog: Catalog, sub: Path, subdataset: str, stem: str, img: Path) -> dict[str, Any]:
        masks, labels = listings[sub]
        return _cas_row(catalog, subdataset, stem, img, masks.get(stem), labels.get(stem))

    return _import_rows(catalog, work, row, cancel, after=_keep_bases)


def _cas_row(
    catalog: Catalog,
    subdataset: str,
    stem: str,
    img: Path,
    mask_path: Path | None,
    label_path: Path | None,
) -> dict[str, Any]:
    shape = _image_shape(img)
    base = mask_path if mask_path is not None else label_path
    if mask_path is not None:
        mask = _read_mask(mask_path, shape)
    elif label_path is not None:
        mask = _read_mask(label_path, shape)
        mask_path = catalog.data_dir / "masks" / subdataset / f"{stem}.tif"
        _write_mask(mask_path, mask)
    else:
        mask = None
    return {
        "name": stem,
        "subdataset": subdataset,
        "image_path": img,
        "label_path": label_path,
        "mask_path": mask_path,
        "width": shape[1],
        "height": shape[0],
        "label_pixels": None if mask is None else int((mask == 1).sum()),
        "valid_pixels": shape[0] * shape[1],
        "_base": base,  # the imported raster label: the tile's base layer, never written
    }


def import_pairs(
    catalog: Catalog,
    folder: str | Path,
    subdataset: str | None = None,
    cancel: CancelToken | None = None,
) -> Job:
    """Import image/mask pairs: ``images/`` + ``masks/`` folders matched by file stem.

    Masks may be 0/1, 0/255 or a colour on black (landslide = any non-black pixel, e.g. the
    red-on-black masks of some public datasets); they are rewritten as 0/1 GeoTIFFs.
    """
    root = Path(folder)
    img_dir = next((root / n for n in ("images", "image", "img", "imgs") if (root / n).is_dir()), None)
    mask_dir = next((root / n for n in ("masks", "mask", "labels", "label") if (root / n).is_dir()), None)
    if img_dir is None or mask_dir is None:
        raise ImportDatasetError(
            "expected an images/ and a masks/ folder", root, "put images and masks side by side"
        )
    masks = _images(mask_dir)
    name = subdataset or root.name
    work = [(mask_dir, name, stem, path) for stem, path in _images(img_dir).items()]
    missing = [stem for _, _, stem, _ in work if stem not in masks]
    if len(missing) == len(work):
        raise ImportDatasetError("no image has a mask with the same file name", mask_dir)

    def row(catalog: Catalog, mdir: Path, sub: str, stem: str, img: Path) -> dict[str, Any]:
        shape = _image_shape(img)
        out = {"name": stem, "subdataset": sub, "image_path": img, "width": shape[1], "height": shape[0],
               "valid_pixels": shape[0] * shape[1]}
        if stem in masks:
            mask = _read_mask(masks[stem], shape)
            mask_path = catalog.data_dir / "masks" / sub / f"{stem}.tif"
            _write_mask(mask_path, mask)
            out.update(mask_path=mask_path, label_pixels=int((mask == 1).sum()), _base=masks[stem])
        return out

    return _import_rows(catalog, work, row, cancel, after=_keep_bases)


def import_labelme(
    catalog: Catalog,
    folder: str | Path,
    label_names: list[str] | None = None,
    subdataset: str | None = None,
    cancel: CancelToken | None = None,
) -> Job:
    """Import a folder of LabelMe JSON files (+ their images), loss-free.

    Every shape becomes a label that keeps its LabelMe details and the label filter; the
    mask is drawn by LabelMe's own rule (:mod:`casdesk.core.labels.masks`), the same
    rasteriser every later regeneration uses. ``imagePath`` is resolved as LabelMe does
    (relative, Windows separators); an embedded image (``imageData``) is used when there
    is no image file, saved into the project. A file that cannot be imported is skipped;
    the job's result (an int, the tiles imported) lists them in ``.skipped``."""
    from casdesk.core.labels.labelme import LabelMeError, read_labelme

    root = Path(folder)
    files = sorted(root.glob("*.json"))
    if not files:
        raise ImportDatasetError("no LabelMe .json file in the folder", root)
    sub_name = subdataset or root.name
    work = [(root, sub_name, f.stem, f) for f in files]
    skipped: list[tuple[str, str]] = []

    def row(catalog: Catalog, _root: Path, sub: str, stem: str, json_path: Path) -> dict[str, Any] | None:
        from casdesk.core.labels.exchange import labelme_rows
        from casdesk.core.labels.masks import MaskLabel, render_mask
        from casdesk.core.labels.store import image_valid

        try:
            doc = read_labelme(json_path)
            image = _labelme_image_path(catalog, doc, json_path, sub)
            shape = _image_shape(image)
            if doc.image_shape is not None and doc.image_shape != shape:
                raise ImportDatasetError(
                    f"the file says the image is {doc.imageWidth}x{doc.imageHeight} but it is "
                    f"{shape[1]}x{shape[0]}",
                    json_path,
                )
            labels = labelme_rows(doc, json_path, label_names)
            mask = render_mask(
                [MaskLabel(r["name"], None, r["attributes"]) for r in labels],
                shape,
                valid=image_valid(image, shape),
            )
        except (LabelMeError, ImportDatasetError) as exc:
            skipped.append((str(json_path), str(exc)))
            return None
        mask_path = catalog.data_dir / "masks" / sub / f"{stem}.tif"
        _write_mask(mask_path, mask)
        return {"name": stem, "subdataset": sub, "image_path": image, "mask_path": mask_path,
                "width": shape[1], "height": shape[0], "label_pixels": int((mask == 1).sum()),
                "valid_pixels": shape[0] * shape[1], "_labelme": (doc, json_path, labels)}

    def job() -> Job:
        count = yield from _import_rows(catalog, work, row, cancel, after=_store_labelme_shapes)
        if not count and skipped:
            first, why = skipped[0]
            raise ImportDatasetError(
                f"no LabelMe file could be imported ({len(skipped)} skipped); {Path(first).name}: {why}", root
            )
        return ImportCount(count, skipped + list(getattr(count, "skipped", [])))

    return job()


class ImportCount(int):
    """The number of tiles imported, with the files skipped and why (``.skipped``)."""

    skipped: list[tuple[str, str]]

    def __new__(cls, value: int, skipped: list[tuple[str, str]] | None = None) -> ImportCount:
        obj = super().__new__(cls, value)
        obj.skipped = list(skipped or [])
        return obj


def _labelme_image_path(catalog: Catalog, doc: Any, json_path: Path, sub: str) -> Path:
    """The image file, resolved as LabelMe resolves ``imagePath``; an image only embedded
    in the file (or an ``imagePath`` naming the JSON itself) is saved into the project."""
    from casdesk.core.labels.labelme import embedded_image_bytes, find_image_file, image_suffix

    raw = embedded_image_bytes(doc, json_path)
    if raw is not None:  # LabelMe shows the embedded image when there is one
        found = find_image_file(doc, json_path)
        if found is not None and found.read_bytes() == raw:
            return found
        out = catalog.data_dir / "images" / sub / f"{json_path.stem}{image_suffix(raw)}"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_bytes(raw)
        os.replace(tmp, out)
        return out
    found = find_image_file(doc, json_path)
    if found is None:
        raise ImportDatasetError(
            f"image {doc.imagePath!r} not found and the file embeds no image (imageData)", json_path
        )
    return found


def _store_labelme_shapes(catalog: Catalog, rows: list[dict[str, Any]], ids: list[int]) -> None:
    """Keep each tile's LabelMe shapes in the catalog (the editor edits them, regeneration
    draws them); a file imported again replaces its tile's labels."""
    from casdesk.core.labels.exchange import store_document_header

    with catalog.transaction():
        for row, tile_id in zip(rows, ids, strict=True):
            doc, json_path, labels = row["_labelme"]
            catalog.label_records.discard_on_tile(tile_id)
            if labels:
                catalog.add_labels(labels, tile_id=tile_id, source="imported")
            store_document_header(catalog, tile_id, doc, json_path)
            catalog.mask_records.unmark(tile_id)


def _keep_bases(catalog: Catalog, rows: list[dict[str, Any]], ids: list[int]) -> None:
    """Keep the imported raster labels as their tiles' base layers (never written)."""
    from casdesk.core.labels.store import set_base_layers

    set_base_layers(catalog, [(tid, r["_base"]) for r, tid in zip(rows, ids, strict=True) if r.get("_base")])


RowBuilder = Callable[[Catalog, Path, str, str, Path], dict[str, Any] | None]


def _import_rows(
    catalog: Catalog,
    work: list[tuple[Path, str, str, Path]],
    build: RowBuilder,
    cancel: CancelToken | None,
    after: Callable[[Catalog, list[dict[str, Any]], list[int]], None] | None = None,
) -> Job:
    """Build and store the tiles of ``work``; returns an :class:`ImportCount`. A file that
    cannot be read (a damaged image, a mask of another size) is skipped and listed in
    ``.skipped``; the import fails only when no file at all could be imported."""
    token = cancel or CancelToken()
    subs_done: set[str] = set()
    rows: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    count = 0

    def flush() -> None:
        nonlocal rows
        clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        ids = catalog.add_tiles(clean)
        if after is not None:
            after(catalog, rows, ids)
        rows = []

    for i, (folder, sub, stem, path) in enumerate(work):
        token.raise_if_cancelled()
        if sub not in subs_done:
            catalog.ensure_subdataset(sub, **subdataset_metadata(sub))
            subs_done.add(sub)
        try:
            built = build(catalog, folder, sub, stem, path)
        except (RasterError, ImportDatasetError) as exc:  # a bad file: keep going, list it at the end
            skipped.append((str(path), str(exc)))
            built = None
        if built is not None:  # None: skipped (the builder recorded why)
            rows.append(built)
            count += 1
        if len(rows) >= BATCH:
            flush()
        if i % 20 == 0 or i == len(work) - 1:
            yield Progress(i + 1, len(work), f"{sub}/{stem}")
    if rows:
        flush()
    if not count and skipped:
        first, why = skipped[0]
        raise ImportDatasetError(f"no file could be imported ({len(skipped)} skipped); {Path(first).name}: {why}",
                                 Path(first).parent)
    return ImportCount(count, skipped)


IMPORTERS: dict[str, Callable[..., Job]] = {
    "cas": import_cas,
    "pairs": import_pairs,
    "labelme": import_labelme,
}


def detect_format(folder: str | Path) -> str:
    """Guess a dataset folder's layout: ``cas``, ``pairs`` or ``labelme``."""
    root = Path(folder)
    if not root.is_dir():
        raise ImportDatasetError("not a folder", root)
    if find_cas_subdatasets(root):
        return "cas"
    if any((root / n).is_dir() for n in ("images", "image", "imgs")):
        return "pairs"
    if any(root.glob("*.json")):
        return "labelme"
    raise ImportDatasetError(
        "cannot tell the dataset layout",
        root,
        "expected <sub>/img|mask folders (CAS), images/ + masks/ (pairs) or LabelMe .json files",
    )
