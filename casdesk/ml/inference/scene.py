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
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window
from torch import nn

from casdesk.core.errors import Cancelled, CasdeskError, OutputError
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
from casdesk.ml.training.distributed import DistContext

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

    @property
    def precision(self) -> str:
        """bf16/fp16 under autocast on CUDA (by compute capability), fp32 elsewhere."""
        if self.device.type != "cuda":
            return "fp32"
        from casdesk.ml.device import device_precision

        return device_precision(self.device)

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, H, W) landslide probability: sigmoid of one logit, or softmax class 1.
        On CUDA the forward runs under autocast in channels-last memory format."""
        if batch.device.type == "cuda":
            from casdesk.ml.device import precision_dtype

            dtype = precision_dtype(self.precision)
            batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = self.model(batch)
        else:
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
    """Load a model file (or a run's ``best.ckpt``/``last.ckpt``, or a run folder) for
    inference on ``device`` (``auto``: CUDA > MPS > CPU)."""
    if isinstance(model_file, Predictor):
        return model_file
    from casdesk.ml.modelfile import load_model_file

    dev = resolve_device(device)
    model, meta = load_model_file(model_file, dev)
    check_meta(meta, Path(model_file))
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
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


@dataclass
class PredictOptions:
    """How :func:`predict_scene` predicts a scene (every field has the CLI's default).

    ``threshold``: None uses the model file's (default 0.5). ``tile_size``: None uses the
    model file's. ``overlap``: pixels shared by neighbouring windows (clamped below the
    tile size). ``aoi``: a polygon file; outside it is nodata. ``vector``: ``gpkg``,
    ``shp``, ``geojson`` or None/``"none"`` (no polygons). ``min_area_m2``: smaller
    polygons are dropped; ``simplify``: tolerance in map units. ``prob_dtype``: ``uint8``
    (probability x 254, nodata 255) or ``float32`` (NaN nodata). ``device`` is used only
    when a path (not a :class:`Predictor`) is given.
    """

    overlap: int = DEFAULT_OVERLAP
    threshold: float | None = None
    tta: bool = False
    aoi: str | Path | None = None
    vector: str | None = "gpkg"
    device: str | torch.device = "auto"
    batch_size: int = 4
    tile_size: int | None = None
    min_area_m2: float = 0.0
    simplify: float = 0.0
    prob_dtype: str = "uint8"
    check_values: bool = True

    def validate(self) -> PredictOptions:
        if self.vector is not None and self.vector not in VECTOR_FORMATS and self.vector != "none":
            raise PredictionError(f"unknown vector format {self.vector!r}",
                                  hint=f"use one of {', '.join(VECTOR_FORMATS)}")
        if self.prob_dtype not in ("uint8", "float32"):
            raise PredictionError(f"probability type must be uint8 or float32, not {self.prob_dtype!r}")
        if self.batch_size < 1:
            raise PredictionError(f"batch size must be at least 1, not {self.batch_size}")
        if self.overlap < 0:
            raise PredictionError(f"overlap must be >= 0, not {self.overlap}")
        return self

    @classmethod
    def build(cls, options: PredictOptions | None = None, **overrides: Any) -> PredictOptions:
        """``options`` (or the defaults) with ``overrides`` (field names) applied."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown prediction option(s): {', '.join(unknown)}")
        return replace(options or cls(), **overrides)


def predict_scene(
    model_file: str | Path | Predictor,
    scene_path: str | Path,
    out_dir: str | Path,
    options: PredictOptions | None = None,
    *,
    cancel: CancelToken | None = None,
    dist: DistContext | None = None,
    **overrides: Any,
) -> Generator[Progress, None, PredictionResult | None]:
    """Predict one scene; yield :class:`Progress` (one step per window); return the result.

    Writes ``<out_dir>/<scene>_prob.tif`` (uint8, probability x 254, nodata 255; or
    float32 with NaN when ``prob_dtype="float32"``), ``<scene>_mask.tif`` (uint8 0/1,
    nodata 255) with the scene's CRS, transform and size, tiled, DEFLATE-compressed, with
    overviews; and ``<scene>_landslides.gpkg|shp|geojson`` (``vector=None``: no polygons)
    with ``area_m2``, ``mean_prob``, ``scene``, ``model``, ``date`` (prediction date,
    UTC). GeoJSON is WGS-84; the other formats keep the scene CRS.

    ``model_file``: a model file path or a :class:`Predictor` (then ``device`` is
    ignored). ``options``: a :class:`PredictOptions`; ``overrides`` set single fields of
    it (``overlap=32, vector=None``...). Outputs appear atomically; a cancelled run leaves
    none behind.

    ``dist``: under ``torchrun``, every process calls this with its
    :class:`~casdesk.ml.training.distributed.DistContext`: the strips of windows are dealt
    round-robin to the processes, each predicts its strips with the same batches as one
    process would, and process 0 blends them in order and writes every output, bit for
    bit what one process writes. Processes other than 0 return None.
    """
    opts = PredictOptions.build(options, **overrides).validate()
    token = cancel or CancelToken()
    ctx = dist if dist is not None and dist.enabled else None
    writes = ctx is None or ctx.is_main
    scene = Path(scene_path)
    out = Path(out_dir)
    if writes:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder ({exc.strerror})", out,
                              "pick a writable folder") from exc
    predictor = load_predictor(model_file, opts.device)
    started = time.perf_counter()
    tile_size = opts.tile_size
    tile = (_round_up(tile_size), _round_up(tile_size)) if tile_size else predictor.tile_size
    warnings: list[str] = []
    overlap = opts.overlap
    if overlap > min(tile) // 2:
        warnings.append(f"overlap {overlap} px reduced to half the {min(tile)} px window")
        overlap = min(tile) // 2
    thr = predictor.threshold if opts.threshold is None else float(opts.threshold)
    if not 0.0 < thr < 1.0:
        raise PredictionError(f"threshold must be between 0 and 1, not {thr}")
    memory = estimate_memory(predictor, scene, overlap=overlap, batch_size=opts.batch_size, tta=opts.tta,
                             tile_size=tile_size)
    aoi_geoms = _load_aoi(opts.aoi, scene) if opts.aoi is not None else None
    prob_path, mask_path, vector_path = _out_paths(out, scene, opts.vector)
    prob_dtype = opts.prob_dtype

    with open_raster(scene) as ds:
        if ds.count != predictor.bands:
            raise PredictionError(
                f"the scene has {ds.count} band(s) but the model {predictor.name} was trained on "
                f"{predictor.bands}", scene, "use a model trained on this band layout",
            )
        if opts.check_values:
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
        total = len(rows) * len(cols)
        yield Progress(0, total, f"{scene.name}: {total} windows of {th}x{tw}, "
                       f"memory {memory.describe()}", {"stage": "start", "memory": memory.to_dict()})
        reader = _StripReader(ds, predictor.normalization, tile, col_lo, padded_width, aoi_geoms)
        grid = _Grid(rows, cols, col_lo, tile, width, opts.batch_size, opts.tta)
        blender = None
        if writes:
            writers = [
                StripWriter(prob_path, output_profile(width, height, ds.crs, ds.transform, prob_dtype,
                                                      float("nan") if prob_dtype == "float32" else PROB_NODATA),
                            Resampling.average),
                StripWriter(mask_path, output_profile(width, height, ds.crs, ds.transform, "uint8", MASK_NODATA),
                            Resampling.nearest),
            ]
            blender = _Blender(tile, padded_width, overlap, col_lo, width, thr, writers, prob_dtype)
        try:
            if ctx is None:
                assert blender is not None
                yield from _predict_strips_local(predictor, reader, grid, blender, token, scene.name)
            else:
                yield from _predict_strips_distributed(predictor, reader, grid, blender, token, scene.name, ctx)
            if blender is not None:
                token.raise_if_cancelled()
                blender.commit()
        except BaseException:
            if blender is not None:
                blender.abort()
            raise
        pixel_area = abs(ds.transform.a * ds.transform.e - ds.transform.b * ds.transform.d)
        metric = bool(ds.crs is not None and ds.crs.is_projected and (ds.crs.linear_units or "").lower() in ("metre", "meter", "m"))

    if blender is None:
        return None
    n_polys = 0
    if vector_path is not None:
        yield Progress(total, total, f"{scene.name}: polygons", {"stage": "vectorize"})
        try:
            token.raise_if_cancelled()
            polys = vectorize_prediction(mask_path, prob_path, min_area_m2=opts.min_area_m2, simplify=opts.simplify)
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
        polygons=n_polys, landslide_pixels=blender.landslide, valid_pixels=blender.valid_total,
        landslide_area_m2=blender.landslide * pixel_area if metric else math.nan,
        windows=total, windows_skipped=blender.skipped, seconds=time.perf_counter() - started,
        device=describe_device(predictor.device), model=predictor.name, tile_size=tile,
        overlap=overlap, threshold=thr, tta=opts.tta, memory=memory, warnings=warnings,
    )


@dataclass(frozen=True)
class _Grid:
    """The window grid of a scene and how its windows are batched."""

    rows: list[int]
    cols: list[int]
    col_lo: int
    tile: tuple[int, int]
    width: int
    batch_size: int
    tta: bool

    def step(self, k: int) -> int:
        """Scene rows that strip ``k`` finishes (no later window touches them)."""
        return self.rows[k + 1] - self.rows[k] if k + 1 < len(self.rows) else self.tile[0]

    def todo(self, strip: _Strip) -> list[int]:
        tw = self.tile[1]
        return [c for c in self.cols if strip.valid[:, c - self.col_lo : c - self.col_lo + tw].any()]


def _infer_strip(predictor: Predictor, strip: _Strip, todo: list[int], grid: _Grid,
                 token: CancelToken) -> Generator[tuple[list[int], np.ndarray], None, None]:
    """(window columns, probabilities) of a strip, one batch at a time. The batches are
    the same wherever the strip is predicted, so the numbers are too."""
    tw = grid.tile[1]
    for i in range(0, len(todo), grid.batch_size):
        token.raise_if_cancelled()
        chunk = todo[i : i + grid.batch_size]
        batch = np.stack([strip.image[:, :, c - grid.col_lo : c - grid.col_lo + tw] for c in chunk])
        yield chunk, infer_windows(predictor, batch, grid.tta)


class _Blender:
    """The accumulators of blended probabilities and the writers (the writing process only)."""

    def __init__(self, tile: tuple[int, int], padded_width: int, overlap: int, col_lo: int, width: int,
                 threshold: float, writers: list[StripWriter], prob_dtype: str):
        th, tw = tile
        self.tile = tile
        self.weights = blend_weights(th, tw, overlap)
        self.acc_p = np.zeros((th, padded_width), dtype=np.float32)
        self.acc_w = np.zeros((th, padded_width), dtype=np.float32)
        self.col_lo = col_lo
        self.width = width
        self.threshold = threshold
        self.writers = writers
        self.prob_dtype = prob_dtype
        self.landslide = self.valid_total = self.skipped = 0

    def add(self, chunk: Sequence[int], probs: np.ndarray) -> None:
        tw = self.tile[1]
        for c, p in zip(chunk, probs):
            sl = slice(c - self.col_lo, c - self.col_lo + tw)
            self.acc_p[:, sl] += p * self.weights
            self.acc_w[:, sl] += self.weights

    def finish(self, strip: _Strip, r0: int, step: int) -> None:
        th = self.tile[0]
        n_l, n_v = _finish_rows(self.acc_p, self.acc_w, strip, r0, step, self.col_lo, self.width,
                                self.threshold, self.writers, self.prob_dtype)
        self.landslide += n_l
        self.valid_total += n_v
        for acc in (self.acc_p, self.acc_w):
            acc[: th - step] = acc[step:]
            acc[th - step :] = 0

    def commit(self) -> None:
        for w in self.writers:
            w.commit()

    def abort(self) -> None:
        for w in self.writers:
            w.abort()


def _predict_strips_local(predictor: Predictor, reader: _StripReader, grid: _Grid, blender: _Blender,
                          token: CancelToken, name: str) -> Generator[Progress, None, None]:
    """One process: strips read one ahead in a thread, predicted and blended in order."""
    rows, total = grid.rows, len(grid.rows) * len(grid.cols)
    done = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="casdesk-predict-read") as pool:
        nxt: Future[_Strip] = pool.submit(reader.read, rows[0])
        for k, r0 in enumerate(rows):
            strip = nxt.result()
            if k + 1 < len(rows):
                nxt = pool.submit(reader.read, rows[k + 1])
            todo = grid.todo(strip)
            blender.skipped += len(grid.cols) - len(todo)
            done += len(grid.cols) - len(todo)
            for chunk, probs in _infer_strip(predictor, strip, todo, grid, token):
                blender.add(chunk, probs)
                done += len(chunk)
                yield Progress(done, total, f"{name}: window {done}/{total}", {"stage": "infer"})
            blender.finish(strip, r0, grid.step(k))


# what each process sends process 0 per strip: index, valid mask, scene rows, windows, probabilities
_StripPayload = tuple[int, np.ndarray, tuple[int, int], list[int], np.ndarray]


def _predict_strips_distributed(predictor: Predictor, reader: _StripReader, grid: _Grid,
                                blender: _Blender | None, token: CancelToken, name: str,
                                ctx: DistContext) -> Generator[Progress, None, None]:
    """Strip ``k`` is predicted by process ``k % world``; each round of ``world`` strips is
    gathered on process 0, which blends and writes them in scene order."""
    rows, total = grid.rows, len(grid.rows) * len(grid.cols)
    done = 0
    for start in range(0, len(rows), ctx.world_size):
        k = start + ctx.rank
        payload: _StripPayload | None = None
        if k < len(rows):
            strip = reader.read(rows[k])
            todo = grid.todo(strip)
            pieces = list(_infer_strip(predictor, strip, todo, grid, token))
            probs = (np.concatenate([p for _, p in pieces]) if pieces
                     else np.zeros((0, *grid.tile), dtype=np.float32))
            payload = (k, strip.valid, strip.rows, todo, probs)
        gathered = ctx.gather_object(payload)
        if blender is None or gathered is None:
            continue
        payloads = cast(list[_StripPayload | None], gathered)  # what the processes sent above
        for item in sorted((g for g in payloads if g is not None), key=lambda g: g[0]):
            k, valid, strip_rows, todo, probs = item
            blender.skipped += len(grid.cols) - len(todo)
            blender.add(todo, probs)
            blender.finish(_Strip(np.empty((0, 0, 0), dtype=np.float32), valid, strip_rows), rows[k], grid.step(k))
            done += len(grid.cols)
        yield Progress(done, total, f"{name}: window {done}/{total} ({ctx.world_size} processes)",
                       {"stage": "infer"})


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
    dist: DistContext | None = None,
    failures: list[tuple[Path, str]] | None = None,
    **options: Any,
) -> Generator[Progress, None, list[PredictionResult]]:
    """Predict several scenes (a list, or every raster in a folder) with one loaded model.

    ``options`` are :class:`PredictOptions` fields (or ``options=PredictOptions(...)``).
    Progress ``data`` carries ``scene_index`` and ``scenes``; a failing scene stops the
    batch (its error names the file), unless ``failures`` is given: then the batch keeps
    going and each failing scene's (path, one-line reason) is appended to it.

    ``dist`` (under ``torchrun``): with at least as many scenes as processes, each
    process predicts every ``world``-th scene on its own; with fewer, the processes share
    the windows of each scene (see :func:`predict_scene`). Either way the files are those
    one process writes. Process 0 returns every result, in scene order; the others
    return an empty list.
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
    base = options.pop("options", None)
    opts = PredictOptions.build(base, **options)
    predictor = load_predictor(model_file, device)
    ctx = dist if dist is not None and dist.enabled else None
    by_scene = ctx is not None and len(paths) >= ctx.world_size
    mine = list(range(len(paths)))
    if ctx is not None and by_scene:
        mine = mine[ctx.rank :: ctx.world_size]
    results: dict[int, PredictionResult] = {}
    for i in mine:
        path = paths[i]
        job = predict_scene(predictor, path, out_dir, opts, cancel=cancel, dist=None if by_scene else ctx)
        while True:
            try:
                ev = next(job)
            except StopIteration as stop:
                if stop.value is not None:
                    results[i] = stop.value
                break
            except (CasdeskError, RasterioError) as exc:  # a bad scene: keep going
                if failures is None or isinstance(exc, Cancelled):  # when the caller collects failures
                    raise
                failures.append((path, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__))
                break
            yield Progress(ev.done, ev.total, f"[{i + 1}/{len(paths)}] {ev.message}",
                           {**ev.data, "scene_index": i, "scenes": len(paths)})
    if ctx is not None:
        gathered = ctx.gather_object(results) if by_scene else [results]
        ctx.barrier()  # every output exists when any process returns
        if not ctx.is_main or gathered is None:
            return []
        parts = cast(list[dict[int, PredictionResult] | None], gathered)  # every process's results
        results = {k: v for part in parts for k, v in (part or {}).items()}
    return [results[i] for i in sorted(results)]
