"""Predictions on a project's tiles, stored for the tile browser and the label-error finder.

Each tile is predicted whole (a tile is the model's input unit; it is reflect padded to a
multiple of 32 px), and two GeoTIFFs with the tile's CRS and transform are written to
``<project>.casdesk.d/predictions/<model>/<subdataset>/``:

* ``<tile>_mask.tif``: uint8 0/1 (pixels outside the footprint are 0, as in tile masks),
  so the browser can overlay prediction vs label (TP/FP/FN) like any mask;
* ``<tile>_prob.tif``: uint8 probability x 254, nodata 255 (see
  :mod:`casdesk.core.raster.outputs`).

The ``predictions`` table gets one row per (tile, model) with ``confidence``, the mean
certainty ``|2p - 1|`` over valid pixels (0: the model hesitates everywhere, 1: it is sure
everywhere), and ``iou``, the landslide IoU of the prediction against the tile's label
(NULL when the tile has no label; 1.0 when both are empty, as in
:mod:`casdesk.core.evaluation.metrics`).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch

from casdesk.core.errors import CasdeskError
from casdesk.core.evaluation.metrics import confusion_matrix, per_class
from casdesk.core.jobs import CancelToken, Progress
from casdesk.core.project.catalog import Catalog, Tile, utc_now
from casdesk.core.raster.io import open_raster
from casdesk.core.raster.outputs import PROB_NODATA, encode_probability
from casdesk.ml.inference.predictor import PredictionError, Predictor, infer_windows, load_predictor
from casdesk.ml.training.data import SIZE_MULTIPLE, read_tile

log = logging.getLogger(__name__)

@dataclass
class TilePredictionSummary:
    """What :func:`predict_tiles` did."""

    model: str
    tiles: int
    skipped: int
    labelled: int
    mean_iou: float | None
    mean_confidence: float | None
    out_dir: Path
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


def _atomic_tif(path: Path, data: np.ndarray, profile: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data[None])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pad_to_multiple(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[1:]
    ph = math.ceil(h / SIZE_MULTIPLE) * SIZE_MULTIPLE - h
    pw = math.ceil(w / SIZE_MULTIPLE) * SIZE_MULTIPLE - w
    if not (ph or pw):
        return image
    return np.pad(image, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > 1 else "edge")


def prepare_tile(predictor: Predictor, image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A tile's bands (bands, rows, cols), normalized as the model was trained, zero outside
    ``valid``, padded to the model's size multiple: the model input :func:`predict_tiles` uses."""
    if image.shape[0] != predictor.bands:
        raise PredictionError(
            f"the tile has {image.shape[0]} band(s) but the model {predictor.name} takes {predictor.bands}",
            None, "use a model trained on this project's band layout",
        )
    x = predictor.normalization.apply(image)
    x[:, ~valid] = 0.0
    return _pad_to_multiple(x).astype(np.float32, copy=False)


def predict_tile(predictor: Predictor, image: np.ndarray, valid: np.ndarray, tta: bool = False) -> np.ndarray:
    """Probability (rows, cols) float32 of one tile, exactly as :func:`predict_tiles` computes it
    (the editor's "Predict this tile" and the training preview use it)."""
    h, w = valid.shape
    return infer_windows(predictor, prepare_tile(predictor, image, valid)[None], tta)[0, :h, :w]


def tile_iou(pred: np.ndarray, label: np.ndarray, valid: np.ndarray) -> float:
    """Landslide IoU over valid pixels (1.0 when both are empty)."""
    cm = confusion_matrix(label.astype(np.int64), pred.astype(np.int64), 2, valid=valid, ignore_index=None)
    return float(per_class(cm)["iou"][1])


def _tiles_to_predict(catalog: Catalog, split: str | None, part: str | None) -> list[Tile]:
    tiles = catalog.tiles()
    if split is None:
        return tiles
    from casdesk.core.dataset.splits import load_split

    parts = load_split(catalog, split)
    if part is None:
        return [t for t in tiles if t.id in parts]
    return [t for t in tiles if parts.get(t.id) == part]


def predict_tiles(
    model_file: str | Path | Predictor,
    project: Catalog | str | Path,
    *,
    split: str | None = None,
    part: str | None = "val",
    device: str | torch.device = "auto",
    batch_size: int = 8,
    tta: bool = False,
    threshold: float | None = None,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, TilePredictionSummary]:
    """Predict the project's tiles and store them in the ``predictions`` table.

    ``split``: only that split's ``part`` (``"val"`` by default; ``part=None``: every
    tile of the split); None: every tile. Pass a path instead of a Catalog when running
    in a worker thread (the job opens its own connection). Rows are committed as tiles
    finish, so a cancelled run keeps what it did. Progress ``data["tile_ids"]`` lists the
    tiles stored since the previous event (the browser refreshes them).
    """
    token = cancel or CancelToken()
    own = not isinstance(project, Catalog)
    catalog = project if isinstance(project, Catalog) else Catalog.open(project)
    started = time.perf_counter()
    try:
        predictor = load_predictor(model_file, device)
        name = predictor.name
        thr = predictor.threshold if threshold is None else float(threshold)
        tiles = _tiles_to_predict(catalog, split, part)
        out_root = catalog.data_dir / "predictions" / name
        total = len(tiles)
        yield Progress(0, total, f"{total} tiles to predict with {name}")
        done = skipped = 0
        ious: list[float] = []
        confs: list[float] = []
        batch: list[tuple[Tile, np.ndarray, np.ndarray, np.ndarray | None]] = []

        def flush() -> list[int]:
            nonlocal batch
            if not batch:
                return []
            groups: dict[tuple[int, ...], list[int]] = {}
            for i, (_, img, _, _) in enumerate(batch):
                groups.setdefault(img.shape, []).append(i)
            probs: dict[int, np.ndarray] = {}
            for idx in groups.values():
                out = infer_windows(predictor, np.stack([batch[i][1] for i in idx]), tta)
                for i, p in zip(idx, out):
                    probs[i] = p
            rows = []
            for i, (tile, _, valid, label) in enumerate(batch):
                h, w = valid.shape
                p = probs[i][:h, :w]
                rows.append(_store_tile(tile, p, valid, label, thr, out_root, catalog, name))
                confs.append(rows[-1][4])
                if rows[-1][5] is not None:
                    ious.append(rows[-1][5])
            catalog.predictions.upsert(rows)
            ids = [t.id for t, *_ in batch]
            batch = []
            return ids

        for tile in tiles:
            token.raise_if_cancelled()
            try:
                image, valid, mask = read_tile(tile.image_path, tile.mask_path)
            except CasdeskError as exc:  # an unreadable tile is skipped and counted
                log.warning("predict-tiles: %s", exc)
                skipped += 1
                done += 1
                continue
            if image.shape[0] != predictor.bands:
                raise PredictionError(
                    f"the tile has {image.shape[0]} band(s) but the model {name} takes {predictor.bands}",
                    tile.image_path, "use a model trained on this project's band layout",
                )
            if not valid.any():
                skipped += 1
                done += 1
                continue
            batch.append((tile, prepare_tile(predictor, image, valid), valid,
                          mask if tile.mask_path is not None else None))
            if len(batch) >= batch_size:
                ids = flush()
                done += len(ids)
                yield Progress(done, total, f"{done}/{total} tiles", {"tile_ids": ids})
        ids = flush()
        done += len(ids)
        yield Progress(done, total, f"{done}/{total} tiles", {"tile_ids": ids})
        return TilePredictionSummary(
            model=name, tiles=total - skipped, skipped=skipped, labelled=len(ious),
            mean_iou=float(np.mean(ious)) if ious else None,
            mean_confidence=float(np.mean(confs)) if confs else None,
            out_dir=out_root, seconds=time.perf_counter() - started,
        )
    finally:
        if own:
            catalog.close()


def _store_tile(
    tile: Tile, prob: np.ndarray, valid: np.ndarray, label: np.ndarray | None, threshold: float,
    out_root: Path, catalog: Catalog, model: str,
) -> tuple[Any, ...]:
    """Write a tile's mask and probability GeoTIFFs; return its predictions row."""
    folder = out_root / tile.subdataset
    folder.mkdir(parents=True, exist_ok=True)
    with open_raster(tile.image_path) as ds:
        crs, transform = ds.crs, ds.transform
    h, w = valid.shape
    base = {"driver": "GTiff", "width": w, "height": h, "count": 1, "dtype": "uint8",
            "crs": crs, "transform": transform, "compress": "deflate"}
    pred = ((prob > threshold) & valid).astype(np.uint8)
    mask_path = folder / f"{tile.name}_mask.tif"
    prob_path = folder / f"{tile.name}_prob.tif"
    _atomic_tif(mask_path, pred, base)
    _atomic_tif(prob_path, encode_probability(prob, valid), {**base, "nodata": PROB_NODATA})
    confidence = float(np.abs(2.0 * prob[valid] - 1.0).mean())
    iou = tile_iou(pred, label, valid) if label is not None else None
    return (tile.id, model, catalog.store_path(mask_path), catalog.store_path(prob_path),
            confidence, iou, utc_now())
