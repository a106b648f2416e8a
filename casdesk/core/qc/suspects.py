"""The label-error finder: tiles where a confident model disagrees with the label.

Works on stored tile predictions (``casdesk predict-tiles``: a probability GeoTIFF per
tile in the ``predictions`` table), so it needs neither torch nor the model. For a tile
with valid pixels ``V``, label ``L`` (0/1), probability ``p`` and confidence
``c = |2p - 1|``:

* **missed landslides**: ``M = V & (p >= high) & ~L``, a confident landslide the label lacks;
* **false labels**: ``F = V & (p <= low) & L``, a labelled landslide the model is sure is
  background; in both, connected regions smaller than ``min_region_px`` are ignored (a
  few noisy pixels are not a label error);
* **disagreement** ``= (sum(c over M) + sum(c over F)) / max(|V & (L | p >= high)|,
  min_region_px)``, in [0, 1]: the confidence-weighted share of the landslide area
  (labelled or confidently predicted) on which label and model disagree;
* **misaligned polygons**: the IoU between the confident prediction and the label shifted
  by up to ``max_shift_px`` (any direction) minus the IoU unshifted; a label drawn off by
  a few metres gains a lot, a wrong label gains nothing;
* **score** ``= max(disagreement, shift gain)`` in [0, 1]; **kind**: ``misaligned`` when
  the shift gain is at least ``misaligned_gain``, else ``missed_landslide`` or
  ``false_label`` by the larger weighted area, ``agree`` when the score is 0.

:func:`find_suspects` scores every predicted tile, stores all scores in the ``suspects``
table (the disagreement region of the top ``N`` as a GeoTIFF: 0 agree, 1 missed
landslide, 2 false label, 255 nodata; its path in the row's JSON ``attributes`` as
``region_path``), and puts the top ``N`` in the QC review queue as ``qc_metrics`` rows
``metric='suspect_score'`` (version 1). :func:`suspect_queue` returns that queue.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rasterio

from casdesk.core.errors import CasdeskError
from casdesk.core.jobs import CancelToken, Progress
from casdesk.core.project.catalog import Catalog, Tile, utc_now
from casdesk.core.raster.io import open_raster, read_window
from casdesk.core.raster.outputs import decode_probability

log = logging.getLogger(__name__)

SUSPECT_METRIC = "suspect_score"
SUSPECT_VERSION = 1
REGION_MISSED = 1
REGION_FALSE = 2
REGION_NODATA = 255


class SuspectsError(CasdeskError):
    """The label-error finder cannot run (no stored predictions, unknown model)."""


@dataclass(frozen=True)
class SuspectParams:
    """Thresholds of the score (module docstring); probabilities in 0..1, sizes in pixels."""

    high: float = 0.8
    low: float = 0.2
    min_region_px: int = 32
    max_shift_px: int = 16
    misaligned_gain: float = 0.15
    work_size: int = 128
    """The shift search runs on a copy subsampled to at most this many pixels a side."""


@dataclass
class TileScore:
    """The score of one tile and the pixel counts behind it."""

    score: float
    kind: str
    disagreement: float
    missed_px: int
    false_px: int
    iou: float
    shifted_iou: float
    shift_px: tuple[int, int]  # (dx, dy): label moved by this many columns, rows
    region: np.ndarray = field(repr=False)  # uint8 0/1/2/255


@dataclass
class Suspect:
    """One ranked tile, as stored and shown in the review queue."""

    tile_id: int
    name: str
    subdataset: str
    model: str
    score: float
    kind: str
    attributes: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- scoring
def _drop_small(region: np.ndarray, min_px: int) -> np.ndarray:
    if min_px <= 1 or not region.any():
        return region
    n, labels, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_px
    return keep[labels]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def _shifted(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``a`` moved by (dy, dx) pixels, zero filled (no wrap-around)."""
    out = np.zeros_like(a)
    h, w = a.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = a[ys, xs]
    return out


def best_shift(pred: np.ndarray, label: np.ndarray, max_shift_px: int, work_size: int = 128) -> tuple[float, tuple[int, int]]:
    """(IoU, (dx, dy)) of the label shift (full-resolution pixels) that best matches the
    prediction, searched on a subsampled copy."""
    f = max(1, math.ceil(max(pred.shape) / work_size))
    p, lab = pred[::f, ::f], label[::f, ::f]
    reach = max(1, math.ceil(max_shift_px / f))
    best, arg = _iou(p, lab), (0, 0)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if dx == 0 and dy == 0:
                continue
            v = _iou(p, _shifted(lab, dy, dx))
            if v > best + 1e-9:
                best, arg = v, (dx * f, dy * f)
    if arg != (0, 0) and f > 1:  # confirm at full resolution
        best = _iou(pred, _shifted(label, arg[1], arg[0]))
    return best, arg


def score_tile(prob: np.ndarray, valid: np.ndarray, label: np.ndarray, params: SuspectParams = SuspectParams()) -> TileScore:
    """Score one tile (module docstring). ``prob`` float 0..1, ``valid`` bool, ``label`` 0/1."""
    lab = (label > 0) & valid
    pos = valid & (prob >= params.high)
    conf = np.abs(2.0 * prob - 1.0)
    missed = _drop_small(pos & ~lab, params.min_region_px)
    false = _drop_small(valid & (prob <= params.low) & lab, params.min_region_px)
    union = np.count_nonzero(lab | pos)
    m_mass = float(conf[missed].sum())
    f_mass = float(conf[false].sum())
    disagreement = min(1.0, (m_mass + f_mass) / max(float(union), float(params.min_region_px), 1.0))
    iou0 = _iou(pos, lab)
    shifted, shift = iou0, (0, 0)
    if lab.any() and pos.any() and params.max_shift_px > 0:
        shifted, shift = best_shift(pos, lab, params.max_shift_px, params.work_size)
    gain = max(0.0, shifted - iou0)
    score = max(disagreement, gain)
    if gain >= params.misaligned_gain:
        kind = "misaligned"
    elif score <= 0:
        kind = "agree"
    else:
        kind = "missed_landslide" if m_mass >= f_mass else "false_label"
    region = np.zeros(prob.shape, dtype=np.uint8)
    region[missed] = REGION_MISSED
    region[false] = REGION_FALSE
    region[~valid] = REGION_NODATA
    return TileScore(float(score), kind, float(disagreement), int(missed.sum()), int(false.sum()),
                     float(iou0), float(shifted), shift, region)


# --------------------------------------------------------------------------- the project
def prediction_models(catalog: Catalog) -> list[str]:
    """Models with stored tile predictions, the most recent first."""
    return catalog.predictions.models_newest_first()


def _write_region(path: Path, region: np.ndarray, image_path: Path) -> None:
    with open_raster(image_path) as ds:
        crs, transform = ds.crs, ds.transform
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    h, w = region.shape
    try:
        with rasterio.open(tmp, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8",
                           crs=crs, transform=transform, nodata=REGION_NODATA, compress="deflate") as dst:
            dst.write(region[None])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_label(tile: Tile) -> np.ndarray | None:
    if tile.mask_path is None or not Path(tile.mask_path).exists():
        return None
    with open_raster(tile.mask_path) as ds:
        band, nodata = ds.read(1), ds.nodata
    return ((band > 0) & (band != nodata if nodata is not None else True)).astype(np.uint8)  # 255 = ignore


def find_suspects(
    project: Catalog | str | Path,
    *,
    model: str | None = None,
    top: int = 100,
    params: SuspectParams = SuspectParams(),
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, list[Suspect]]:
    """Rank the labelled tiles with stored predictions of ``model`` (default: the most
    recent) by suspect score; return the ``top`` suspects (score > 0), best first.

    Replaces this model's earlier ranking and the previous ``suspect_score`` queue.
    """
    token = cancel or CancelToken()
    own = not isinstance(project, Catalog)
    catalog = project if isinstance(project, Catalog) else Catalog.open(project)
    try:
        models = prediction_models(catalog)
        if not models:
            raise SuspectsError("the project has no tile predictions", catalog.path,
                                "run `casdesk predict-tiles MODEL_FILE PROJECT` first")
        name = model or models[0]
        if name not in models:
            raise SuspectsError(f"no predictions of model {name!r}", catalog.path, f"known: {', '.join(models)}")
        rows = [(p.tile_id, p.prob_path) for p in catalog.predictions.of_model(name)]
        tiles = {t.id: t for t in catalog.tiles(ids=[r[0] for r in rows])} if rows else {}
        total = len(rows)
        yield Progress(0, total, f"{total} tile predictions of {name} to compare with their labels")
        scored: list[tuple[Tile, TileScore]] = []
        for i, (tid, prob_path) in enumerate(rows):
            token.raise_if_cancelled()
            tile = tiles.get(tid)
            label = _read_label(tile) if tile is not None else None
            if tile is None or label is None or prob_path is None:
                continue
            try:
                stored, _ = read_window(prob_path)
            except CasdeskError as exc:
                log.warning("suspects: %s", exc)
                continue
            prob, valid = decode_probability(stored[0])
            if prob.shape != label.shape:
                log.warning("suspects: %s: prediction and label differ in size; skipped", tile.name)
                continue
            scored.append((tile, score_tile(prob, valid, label, params)))
            if i % 16 == 15:
                yield Progress(i + 1, total, f"{i + 1}/{total} tiles compared")
        scored.sort(key=lambda ts: (-ts[1].score, ts[0].id))
        chosen = [(t, s) for t, s in scored if s.score > 0][: max(0, top)]
        region_root = catalog.data_dir / "suspects" / name
        now = utc_now()
        out: list[Suspect] = []
        records = []
        for rank, (tile, s) in enumerate(scored):
            attrs: dict[str, Any] = {
                "disagreement": s.disagreement, "missed_px": s.missed_px, "false_px": s.false_px,
                "iou": s.iou, "shifted_iou": s.shifted_iou, "shift_px": list(s.shift_px),
                "rank": rank + 1, "params": asdict(params),
            }
            if rank < len(chosen):
                path = region_root / tile.subdataset / f"{tile.name}_disagreement.tif"
                _write_region(path, s.region, tile.image_path)
                attrs["region_path"] = catalog.store_path(path)
                out.append(Suspect(tile.id, tile.name, tile.subdataset, name, s.score, s.kind, attrs))
            records.append((tile.id, name, s.score, s.kind, attrs, now))
        catalog.suspects.replace(name, records, SUSPECT_METRIC, SUSPECT_VERSION,
                                 [(s.tile_id, s.score) for s in out], now)
        yield Progress(total, total, f"{len(out)} suspect tiles in the review queue")
        return out
    finally:
        if own:
            catalog.close()


def suspect_queue(catalog: Catalog) -> list[int]:
    """Tile ids in the review queue as "suspect label", highest score first."""
    return catalog.qc.ranked(SUSPECT_METRIC, SUSPECT_VERSION)


def stored_suspects(catalog: Catalog, model: str | None = None, top: int | None = None) -> list[Suspect]:
    """The stored ranking (all scored tiles, best first) of ``model`` (default: every model)."""
    return [Suspect(*r) for r in catalog.suspects.ranking(model, top)]
