"""Whole-scene inference: a scene of any size to a probability GeoTIFF, a mask GeoTIFF and
landslide polygons.

The scene is streamed one row of windows (a *strip*) at a time:

* windows of the model's tile size overlap by ``overlap`` pixels; the grid starts
  ``overlap // 2`` before the scene edge and the outside is filled by reflection, so edge
  pixels get context like interior ones;
* each window's probabilities are blended with weights that fall towards its edges
  (:func:`casdesk.core.raster.outputs.blend_ramp`): ``sum(w * p)`` and ``sum(w)`` are
  accumulated per pixel in a buffer one window tall and one scene wide, and the rows no
  later window touches are divided, thresholded (after blending) and written;
* windows whose pixels are all nodata (or outside the AOI) are skipped; nodata stays
  nodata in the outputs.

Peak memory is therefore a strip (input strip, two float32 accumulators, a block row of
output) plus one batch of windows and the model, whatever the scene's height;
:func:`estimate_memory` computes it before a run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window
from torch import nn

from casdesk.core.errors import CasdeskError, OutputError
from casdesk.core.jobs import CancelToken, Progress
from casdesk.core.labels.io import rasterize_polygons, write_vector_labels
from casdesk.core.raster.io import open_raster, raster_info, read_window
from casdesk.core.raster.outputs import (
    MASK_NODATA,
    PROB_NODATA,
    StripWriter,
    blend_weights,
    encode_probability,
    output_profile,
    vectorize_prediction,
    window_starts,
)
from casdesk.ml.device import describe_device, resolve_device
from casdesk.ml.errors import ModelError
from casdesk.ml.training.data import SIZE_MULTIPLE, Normalization

DEFAULT_OVERLAP = 128
VECTOR_FORMATS = {"gpkg": ".gpkg", "shp": ".shp", "geojson": ".geojson"}
SCENE_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
VALUE_CHECK_Z = 8.0
"""A scene whose band means lie more than this many training standard deviations from the
training means (median over bands) was almost surely not what the model was trained on
(uint16 satellite data given to a uint8 UAV model, reflectance 0-1 vs DN...)."""
ACTIVATION_FLOATS_PER_PIXEL = 48
"""Rough peak activation size of a forward pass, in float32 values per input pixel
(measured ~20-40 for U-Net/DeepLabV3+ with ResNet encoders under inference_mode)."""


class PredictionError(CasdeskError):
    """A scene cannot be predicted with this model (bands, values, AOI, tile size)."""


GENERIC_STEMS = {"model", "best", "last", "checkpoint"}


def model_name(path: str | Path) -> str:
    """The name a model's outputs are stored under: the file stem, prefixed with its run
    folder when the stem is generic (every `casdesk train` run writes ``model.pt``)."""
    p = Path(path)
    return f"{p.parent.name}-{p.stem}" if p.stem.lower() in GENERIC_STEMS and p.parent.name else p.stem


# --------------------------------------------------------------------------- the model
@dataclass
class Predictor:
    """A model ready for inference: eval mode on ``device``, with its model-file meta.

    Load once with :func:`load_predictor` and pass it to several scenes (batch runs, the
    GUI's inference panel) instead of a path, to rebuild the network only once.
    """

    model: nn.Module
    meta: dict[str, Any]
    device: torch.device
    name: str
    path: Path | None = None

    @property
    def bands(self) -> int:
        return int(self.meta["in_channels"])

    @property
    def tile_size(self) -> tuple[int, int]:
        """(rows, cols) of the model's input windows, from the model file (default 512)."""
        size = self.meta.get("tile_size") or [512, 512]
        size = [int(size)] * 2 if isinstance(size, int | float) else [int(s) for s in size]
        return _round_up(size[0]), _round_up(size[-1])

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", 0.5))

    @property
    def normalization(self) -> Normalization:
        return Normalization.from_dict(self.meta["normalization"])

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, H, W) landslide probability: sigmoid of one logit, or softmax class 1."""
        logits = self.model(batch)
        if logits.shape[1] == 1:
            return torch.sigmoid(logits[:, 0].float())
        return torch.softmax(logits.float(), dim=1)[:, 1]


def _round_up(n: int) -> int:
    return max(SIZE_MULTIPLE, math.ceil(n / SIZE_MULTIPLE) * SIZE_MULTIPLE)


REQUIRED_META = ("architecture", "in_channels", "classes", "normalization")


def check_meta(meta: dict[str, Any], path: Path | None = None) -> None:
    """The meta inference needs; a model file without it cannot normalise scenes."""
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ModelError(
            f"the model file lacks {', '.join(missing)}", path,
            "use a model.pt written by `casdesk train`",
        )
    norm = meta["normalization"]
    if len(norm.get("mean", [])) != int(meta["in_channels"]) or len(norm.get("std", [])) != int(meta["in_channels"]):
        raise ModelError(
            f"the model file's normalisation has {len(norm.get('mean', []))} bands but the model "
            f"takes {meta['in_channels']}", path, "the model file is inconsistent; retrain or re-export it",
        )


def load_predictor(model_file: str | Path | Predictor, device: str | torch.device = "auto") -> Predictor:
    """Load a model file for inference on ``device`` (``auto``: CUDA > MPS > CPU)."""
    if isinstance(model_file, Predictor):
        return model_file
    from casdesk.ml.modelfile import load_model_file

    dev = resolve_device(device)
    model, meta = load_model_file(model_file, dev)
    check_meta(meta, Path(model_file))
    return Predictor(model, meta, dev, model_name(model_file), Path(model_file))


# --------------------------------------------------------------------------- memory
@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of a scene prediction, in bytes, by part (see module docstring)."""

    strip_bytes: int
    batch_bytes: int
    model_bytes: int
    activation_bytes: int
    scene_bytes: int
    """What holding the scene's probabilities in memory would cost (for comparison)."""

    @property
    def total_bytes(self) -> int:
        return self.strip_bytes + self.batch_bytes + self.model_bytes + self.activation_bytes

    def describe(self) -> str:
        mib = 2**20
        return (
            f"about {self.total_bytes / mib:.0f} MiB (strip {self.strip_bytes / mib:.0f}, batch "
            f"{self.batch_bytes / mib:.0f}, model {self.model_bytes / mib:.0f}, activations "
            f"~{self.activation_bytes / mib:.0f} MiB), independent of the scene height"
        )

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "total_bytes": self.total_bytes}


def strip_memory(width: int, bands: int, tile: tuple[int, int], overlap: int) -> int:
    """Bytes of the per-strip buffers: the normalised, padded input strip (float32), the
    two accumulators (float32), the valid mask, and a block row of each output."""
    th, tw = tile
    padded = len(window_starts(width, tw, overlap)) * (tw - overlap) + overlap
    inputs = bands * th * padded * 4 * 2  # the strip in use + the one prefetched
    accumulators = 2 * th * padded * 4
    valid = th * padded * 2
    outputs = 2 * 256 * width + 2 * th * width * 4  # block rows + the strip being divided
    return int(inputs + accumulators + valid + outputs)


def estimate_memory(
    model_file: str | Path | Predictor,
    scene_path: str | Path,
    *,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = 4,
    tta: bool = False,
    tile_size: int | None = None,
) -> MemoryEstimate:
    """Peak memory of :func:`predict_scene` for this model and scene, before running it.

    Reads only the scene header and the model file (no network is built). The activation
    term is a rough rule (:data:`ACTIVATION_FLOATS_PER_PIXEL`); the rest is exact.
    """
    if isinstance(model_file, Predictor):
        meta, params = model_file.meta, sum(p.numel() for p in model_file.model.parameters())
    else:
        from casdesk.ml.modelfile import read_model_file

        blob = read_model_file(model_file)
        meta = blob["meta"]
        params = sum(int(v.numel()) for v in blob["state_dict"].values())
    info = raster_info(scene_path)
    size = meta.get("tile_size") or [512, 512]
    tile = (_round_up(tile_size), _round_up(tile_size)) if tile_size else (_round_up(size[0]), _round_up(size[-1]))
    overlap = max(0, min(overlap, min(tile) // 2))  # as predict_scene clamps it
    per_window = tile[0] * tile[1]
    copies = 2 if tta else 1
    return MemoryEstimate(
        strip_bytes=strip_memory(info.width, info.count, tile, overlap),
        batch_bytes=int(batch_size * per_window * 4 * (info.count * copies + 2)),
        model_bytes=int(params * 4),
        activation_bytes=int(batch_size * per_window * 4 * ACTIVATION_FLOATS_PER_PIXEL),
        scene_bytes=int(info.width * info.height * 4),
    )


# --------------------------------------------------------------------------- results
@dataclass
class PredictionResult:
    """What one scene prediction wrote, for the CLI's JSON and the GUI's result list."""

    scene: Path
    prob_path: Path
    mask_path: Path
    vector_path: Path | None
    polygons: int
    landslide_pixels: int
    valid_pixels: int
    landslide_area_m2: float
    windows: int
    windows_skipped: int
    seconds: float
    device: str
    model: str
    tile_size: tuple[int, int]
    overlap: int
    threshold: float
    tta: bool
    memory: MemoryEstimate
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("scene", "prob_path", "mask_path", "vector_path"):
            d[k] = None if d[k] is None else str(d[k])
        d["memory"] = self.memory.to_dict()
        d["tile_size"] = list(self.tile_size)
        return d


# --------------------------------------------------------------------------- checks
def check_scene_values(predictor: Predictor, ds: Any, sample: int = 256) -> None:
    """Raise when the scene's values are far from the training data's (wrong sensor, dtype
    or scaling): a decimated read, compared with the model file's normalisation."""
    norm = predictor.normalization
    scale = max(1, max(ds.width, ds.height) // sample)
    shape = (ds.count, max(1, ds.height // scale), max(1, ds.width // scale))
    data = ds.read(out_shape=shape, resampling=Resampling.nearest).astype(np.float64)
    masks = ds.read_masks(out_shape=shape, resampling=Resampling.nearest)
    valid = np.any(masks > 0, axis=0) & np.all(np.isfinite(data), axis=0)
    if not valid.any():
        return
    means = data[:, valid].mean(axis=1)
    z = np.abs(means - np.asarray(norm.mean)) / np.asarray(norm.std)
    if float(np.median(z)) > VALUE_CHECK_Z:
        raise PredictionError(
            f"the scene's band means {np.round(means, 1).tolist()} are far from the training "
            f"data's {np.round(norm.mean, 1).tolist()} (std {np.round(norm.std, 1).tolist()})",
            Path(ds.name),
            "was the model trained on another sensor or data type (uint8 vs uint16, DN vs "
            "reflectance)? Use a matching model, or pass check_values=False / --no-value-check",
        )


def _load_aoi(aoi: str | Path, scene_path: Path) -> list[Any]:
    """AOI polygons in scene pixel coordinates (reprojected to the scene CRS)."""
    from casdesk.core.labels.io import read_vector_labels

    labels = read_vector_labels(aoi, raster_info(scene_path))
    geoms = labels.geometries
    if not geoms:
        raise PredictionError(
            "the AOI does not overlap the scene", Path(aoi), "check the AOI file and its CRS"
        )
    return geoms


# --------------------------------------------------------------------------- inference
def _tta_probabilities(predictor: Predictor, x: torch.Tensor, tta: bool) -> torch.Tensor:
    """Mean probability over identity, horizontal flip, vertical flip and (square windows)
    a 90 degree rotation, each undone before averaging."""
    p = predictor.probabilities(x)
    if not tta:
        return p
    total, n = p, 1
    for dims in ((-1,), (-2,)):
        total = total + predictor.probabilities(x.flip(dims)).flip(dims)  # (N, H, W): same last dims
        n += 1
    if x.shape[-1] == x.shape[-2]:
        total = total + torch.rot90(predictor.probabilities(torch.rot90(x, 1, (-2, -1))), -1, (-2, -1))
        n += 1
    return total / n


def infer_windows(predictor: Predictor, windows: np.ndarray, tta: bool = False) -> np.ndarray:
    """(N, bands, H, W) normalised float32 windows -> (N, H, W) float32 probabilities."""
    x = torch.from_numpy(windows).to(predictor.device, non_blocking=True)
    with torch.inference_mode():
        p = _tta_probabilities(predictor, x, tta)
    return p.float().cpu().numpy()


@dataclass
class _Strip:
    image: np.ndarray  # (bands, th, padded width) float32, normalised, reflect padded
    valid: np.ndarray  # (th, padded width) bool: in scene, valid data, inside the AOI
    rows: tuple[int, int]  # scene rows [a, b) it holds


class _StripReader:
    """Reads, normalises and pads one strip of windows (runs in a prefetch thread)."""

    def __init__(self, ds: Any, norm: Normalization, tile: tuple[int, int], col_lo: int,
                 padded_width: int, aoi: list[Any] | None):
        self.ds = ds
        self.norm = norm
        self.tile = tile
        self.col_lo = col_lo
        self.padded_width = padded_width
        self.aoi = aoi

    def read(self, r0: int) -> _Strip:
        th, _ = self.tile
        height, width = self.ds.height, self.ds.width
        a, b = max(r0, 0), min(r0 + th, height)
        data, valid = read_window(self.ds, Window(0, a, width, b - a))
        if self.aoi is not None:
            valid &= rasterize_polygons(self.aoi, valid.shape, Affine.translation(0, a)).astype(bool)
        image = data.astype(np.float32)  # normalised in place: one strip-sized copy, not three
        image -= np.asarray(self.norm.mean, dtype=np.float32)[:, None, None]
        image /= np.asarray(self.norm.std, dtype=np.float32)[:, None, None]
        image[:, ~valid] = 0.0
        pads = ((a - r0, r0 + th - b), (-self.col_lo, self.col_lo + self.padded_width - width))
        image = np.pad(image, ((0, 0), *pads), mode="reflect")
        valid = np.pad(valid, pads, mode="constant", constant_values=False)
        return _Strip(np.ascontiguousarray(image), valid, (a, b))


def _out_paths(out_dir: Path, scene: Path, vector: str | None) -> tuple[Path, Path, Path | None]:
    stem = scene.stem
    vec = None if vector in (None, "none") else out_dir / f"{stem}_landslides{VECTOR_FORMATS[vector]}"
    return out_dir / f"{stem}_prob.tif", out_dir / f"{stem}_mask.tif", vec


def predict_scene(
    model_file: str | Path | Predictor,
    scene_path: str | Path,
    out_dir: str | Path,
    *,
    overlap: int = DEFAULT_OVERLAP,
    threshold: float | None = None,
    tta: bool = False,
    aoi: str | Path | None = None,
    vector: str | None = "gpkg",
    device: str | torch.device = "auto",
    batch_size: int = 4,
    cancel: CancelToken | None = None,
    tile_size: int | None = None,
    min_area_m2: float = 0.0,
    simplify: float = 0.0,
    prob_dtype: str = "uint8",
    check_values: bool = True,
) -> Generator[Progress, None, PredictionResult]:
    """Predict one scene; yield :class:`Progress` (one step per window); return the result.

    Writes ``<out_dir>/<scene>_prob.tif`` (uint8, probability x 254, nodata 255; or
    float32 with NaN when ``prob_dtype="float32"``), ``<scene>_mask.tif`` (uint8 0/1,
    nodata 255) with the scene's CRS, transform and size, tiled, DEFLATE-compressed, with
    overviews; and ``<scene>_landslides.gpkg|shp|geojson`` (``vector=None``: no polygons)
    with ``area_m2``, ``mean_prob``, ``scene``, ``model``, ``date`` (prediction date,
    UTC). GeoJSON is WGS-84; the other formats keep the scene CRS.

    ``model_file``: a model file path or a :class:`Predictor` (then ``device`` is
    ignored). ``threshold``: None uses the model file's (default 0.5). ``tile_size``:
    None uses the model file's. ``overlap``: pixels shared by neighbouring windows
    (clamped below the tile size). ``aoi``: a polygon file; outside it is nodata.
    ``min_area_m2``: smaller polygons are dropped; ``simplify``: tolerance in map units.
    Outputs appear atomically; a cancelled run leaves none behind.
    """
    token = cancel or CancelToken()
    scene = Path(scene_path)
    out = Path(out_dir)
    if vector is not None and vector not in VECTOR_FORMATS and vector != "none":
        raise PredictionError(f"unknown vector format {vector!r}", hint=f"use one of {', '.join(VECTOR_FORMATS)}")
    if prob_dtype not in ("uint8", "float32"):
        raise PredictionError(f"probability type must be uint8 or float32, not {prob_dtype!r}")
    if batch_size < 1:
        raise PredictionError(f"batch size must be at least 1, not {batch_size}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({exc.strerror})", out, "pick a writable folder") from exc
    predictor = load_predictor(model_file, device)
    started = time.perf_counter()
    tile = (_round_up(tile_size), _round_up(tile_size)) if tile_size else predictor.tile_size
    warnings: list[str] = []
    if overlap < 0:
        raise PredictionError(f"overlap must be >= 0, not {overlap}")
    if overlap > min(tile) // 2:
        warnings.append(f"overlap {overlap} px reduced to half the {min(tile)} px window")
        overlap = min(tile) // 2
    thr = predictor.threshold if threshold is None else float(threshold)
    if not 0.0 < thr < 1.0:
        raise PredictionError(f"threshold must be between 0 and 1, not {thr}")
    memory = estimate_memory(predictor, scene, overlap=overlap, batch_size=batch_size, tta=tta,
                             tile_size=tile_size)
    aoi_geoms = _load_aoi(aoi, scene) if aoi is not None else None
    prob_path, mask_path, vector_path = _out_paths(out, scene, vector)

    with open_raster(scene) as ds:
        if ds.count != predictor.bands:
            raise PredictionError(
                f"the scene has {ds.count} band(s) but the model {predictor.name} was trained on "
                f"{predictor.bands}", scene, "use a model trained on this band layout",
            )
        if check_values:
            check_scene_values(predictor, ds)
        res = predictor.meta.get("resolution_m")
        if res and ds.crs is not None and ds.crs.is_projected:
            scene_res = abs(ds.transform.a)
            trained = [float(r) for r in (res if isinstance(res, list) else [res]) if r]
            if trained and not any(0.5 <= scene_res / r <= 2.0 for r in trained):
                warnings.append(
                    f"scene resolution {scene_res:g} m differs from the training data's {trained} m"
                )
        height, width = ds.height, ds.width
        th, tw = tile
        rows = window_starts(height, th, overlap)
        cols = window_starts(width, tw, overlap)
        col_lo = cols[0]
        padded_width = cols[-1] + tw - col_lo
        weights = blend_weights(th, tw, overlap)
        total = len(rows) * len(cols)
        yield Progress(0, total, f"{scene.name}: {total} windows of {th}x{tw}, "
                       f"memory {memory.describe()}", {"stage": "start", "memory": memory.to_dict()})

        writers = [
            StripWriter(prob_path, output_profile(width, height, ds.crs, ds.transform, prob_dtype,
                                                  float("nan") if prob_dtype == "float32" else PROB_NODATA),
                        Resampling.average),
            StripWriter(mask_path, output_profile(width, height, ds.crs, ds.transform, "uint8", MASK_NODATA),
                        Resampling.nearest),
        ]
        reader = _StripReader(ds, predictor.normalization, tile, col_lo, padded_width, aoi_geoms)
        acc_p = np.zeros((th, padded_width), dtype=np.float32)
        acc_w = np.zeros((th, padded_width), dtype=np.float32)
        done = skipped = landslide = valid_total = 0
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="casdesk-predict-read") as pool:
                nxt: Future[_Strip] = pool.submit(reader.read, rows[0])
                for k, r0 in enumerate(rows):
                    strip = nxt.result()
                    if k + 1 < len(rows):
                        nxt = pool.submit(reader.read, rows[k + 1])
                    todo = [c for c in cols if strip.valid[:, c - col_lo : c - col_lo + tw].any()]
                    skipped += len(cols) - len(todo)
                    done += len(cols) - len(todo)
                    for i in range(0, len(todo), batch_size):
                        token.raise_if_cancelled()
                        chunk = todo[i : i + batch_size]
                        batch = np.stack([strip.image[:, :, c - col_lo : c - col_lo + tw] for c in chunk])
                        probs = infer_windows(predictor, batch, tta)
                        for c, p in zip(chunk, probs):
                            sl = slice(c - col_lo, c - col_lo + tw)
                            acc_p[:, sl] += p * weights
                            acc_w[:, sl] += weights
                        done += len(chunk)
                        yield Progress(done, total, f"{scene.name}: window {done}/{total}",
                                       {"stage": "infer"})
                    step = rows[k + 1] - r0 if k + 1 < len(rows) else th
                    n_l, n_v = _finish_rows(acc_p, acc_w, strip, r0, step, col_lo, width, thr, writers, prob_dtype)
                    landslide += n_l
                    valid_total += n_v
                    acc_p[: th - step] = acc_p[step:]
                    acc_p[th - step :] = 0
                    acc_w[: th - step] = acc_w[step:]
                    acc_w[th - step :] = 0
            token.raise_if_cancelled()
            for w in writers:
                w.commit()
        except BaseException:
            for w in writers:
                w.abort()
            raise
        pixel_area = abs(ds.transform.a * ds.transform.e - ds.transform.b * ds.transform.d)
        metric = bool(ds.crs is not None and ds.crs.is_projected and (ds.crs.linear_units or "").lower() in ("metre", "meter", "m"))

    n_polys = 0
    if vector_path is not None:
        yield Progress(done, total, f"{scene.name}: polygons", {"stage": "vectorize"})
        try:
            token.raise_if_cancelled()
            polys = vectorize_prediction(mask_path, prob_path, min_area_m2=min_area_m2, simplify=simplify)
            n = len(polys.geometries)
            write_vector_labels(
                polys.geometries, vector_path, polys.crs_wkt,
                attributes={
                    "area_m2": np.asarray(polys.area_m2, dtype=np.float64),
                    "mean_prob": np.asarray(polys.mean_prob, dtype=np.float64),
                    "scene": np.asarray([scene.name] * n, dtype=object),
                    "model": np.asarray([predictor.name] * n, dtype=object),
                    "date": np.asarray([datetime.now(UTC).date().isoformat()] * n, dtype=object),
                },
            )
            n_polys = n
        except BaseException:
            prob_path.unlink(missing_ok=True)
            mask_path.unlink(missing_ok=True)
            raise
    return PredictionResult(
        scene=scene, prob_path=prob_path, mask_path=mask_path, vector_path=vector_path,
        polygons=n_polys, landslide_pixels=landslide, valid_pixels=valid_total,
        landslide_area_m2=landslide * pixel_area if metric else math.nan,
        windows=total, windows_skipped=skipped, seconds=time.perf_counter() - started,
        device=describe_device(predictor.device), model=predictor.name, tile_size=tile,
        overlap=overlap, threshold=thr, tta=tta, memory=memory, warnings=warnings,
    )


def _finish_rows(
    acc_p: np.ndarray, acc_w: np.ndarray, strip: _Strip, r0: int, step: int, col_lo: int,
    width: int, threshold: float, writers: Sequence[StripWriter], prob_dtype: str,
) -> tuple[int, int]:
    """Divide, threshold and write the scene rows of ``[r0, r0 + step)`` no later window
    touches; return (landslide pixels, valid pixels) among them."""
    lo = max(r0, 0)
    hi = min(r0 + step, strip.rows[1])
    if hi <= lo:
        return 0, 0
    rs = slice(lo - r0, hi - r0)
    cs = slice(-col_lo, -col_lo + width)
    w = acc_w[rs, cs]
    valid = strip.valid[rs, cs] & (w > 0)
    prob = np.divide(acc_p[rs, cs], w, out=np.zeros_like(w), where=w > 0)
    mask = (prob > threshold).astype(np.uint8)
    mask[~valid] = MASK_NODATA
    writers[0].write_rows(encode_probability(prob, valid, prob_dtype))
    writers[1].write_rows(mask)
    return int((mask == 1).sum()), int(valid.sum())


# --------------------------------------------------------------------------- batches
def scene_files(folder: str | Path) -> list[Path]:
    """Raster scenes in a folder (not recursive), sorted by name."""
    p = Path(folder)
    return sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SCENE_SUFFIXES)


def predict_scenes(
    model_file: str | Path | Predictor,
    scenes: Sequence[str | Path] | str | Path,
    out_dir: str | Path,
    *,
    device: str | torch.device = "auto",
    cancel: CancelToken | None = None,
    **options: Any,
) -> Generator[Progress, None, list[PredictionResult]]:
    """Predict several scenes (a list, or every raster in a folder) with one loaded model.

    ``options`` are :func:`predict_scene`'s. Progress ``data`` carries ``scene_index`` and
    ``scenes``; a failing scene stops the batch (its error names the file).
    """
    paths = scene_files(scenes) if isinstance(scenes, str | Path) and Path(scenes).is_dir() else (
        [Path(scenes)] if isinstance(scenes, str | Path) else [Path(s) for s in scenes]
    )
    if not paths:
        raise PredictionError("no raster scenes found", Path(str(scenes)), "give .tif files or a folder of them")
    stems = [p.stem for p in paths]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise PredictionError(f"scenes with the same name would overwrite each other: {dup}")
    predictor = load_predictor(model_file, device)
    results: list[PredictionResult] = []
    for i, path in enumerate(paths):
        job = predict_scene(predictor, path, out_dir, cancel=cancel, **options)
        while True:
            try:
                ev = next(job)
            except StopIteration as stop:
                results.append(stop.value)
                break
            yield Progress(ev.done, ev.total, f"[{i + 1}/{len(paths)}] {ev.message}",
                           {**ev.data, "scene_index": i, "scenes": len(paths)})
    return results
