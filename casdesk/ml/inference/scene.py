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

The work is split by responsibility, one module each:
:mod:`~casdesk.ml.inference.predictor` (loading a model file, probabilities of a batch of
windows), :mod:`~casdesk.ml.inference.options` (:class:`PredictOptions`, output paths,
:class:`PredictionResult`), :mod:`~casdesk.ml.inference.memory` (:func:`estimate_memory`),
:mod:`~casdesk.ml.inference.strips` (strip reading, windowing, blending and writing, on one
process or several); this module checks a scene against the model and runs it, one scene
(:func:`predict_scene`) or a batch (:func:`predict_scenes`). Every name that used to live
here is still importable from it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from rasterio.enums import Resampling
from rasterio.errors import RasterioError

from casdesk.core.errors import Cancelled, CasdeskError, OutputError
from casdesk.core.jobs import CancelToken, Progress
from casdesk.core.labels.io import write_vector_labels
from casdesk.core.raster.io import open_raster, raster_info
from casdesk.core.raster.outputs import (
    MASK_NODATA,
    PROB_NODATA,
    StripWriter,
    output_profile,
    vectorize_prediction,
    window_starts,
)
from casdesk.ml.device import describe_device
from casdesk.ml.inference.memory import (
    ACTIVATION_FLOATS_PER_PIXEL,
    MemoryEstimate,
    estimate_memory,
    strip_memory,
)
from casdesk.ml.inference.options import (
    DEFAULT_OVERLAP,
    SCENE_SUFFIXES,
    VECTOR_FORMATS,
    PredictionResult,
    PredictOptions,
    out_paths,
)
from casdesk.ml.inference.predictor import (
    GENERIC_STEMS,
    REQUIRED_META,
    PredictionError,
    Predictor,
    check_meta,
    infer_windows,
    load_predictor,
    model_name,
    round_tile_size,
)
from casdesk.ml.inference.strips import (
    Blender,
    Grid,
    StripReader,
    predict_strips_distributed,
    predict_strips_local,
)
from casdesk.ml.training.distributed import DistContext

__all__ = [  # the names importers use from here; most live in the modules above
    "ACTIVATION_FLOATS_PER_PIXEL", "DEFAULT_OVERLAP", "GENERIC_STEMS", "REQUIRED_META",
    "SCENE_SUFFIXES", "VALUE_CHECK_Z", "VECTOR_FORMATS", "MemoryEstimate", "PredictOptions",
    "PredictionError", "PredictionResult", "Predictor", "check_meta", "check_scene_values",
    "estimate_memory", "infer_windows", "load_predictor", "model_name", "predict_scene",
    "predict_scenes", "scene_files", "strip_memory",
]

VALUE_CHECK_Z = 8.0
"""A scene whose band means lie more than this many training standard deviations from the
training means (median over bands) was almost surely not what the model was trained on
(uint16 satellite data given to a uint8 UAV model, reflectance 0-1 vs DN...)."""


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
    tile = (round_tile_size(tile_size), round_tile_size(tile_size)) if tile_size else predictor.tile_size
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
    prob_path, mask_path, vector_path = out_paths(out, scene, opts.vector)
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
        reader = StripReader(ds, predictor.normalization, tile, col_lo, padded_width, aoi_geoms)
        grid = Grid(rows, cols, col_lo, tile, width, opts.batch_size, opts.tta)
        blender = None
        if writes:
            writers = [
                StripWriter(prob_path, output_profile(width, height, ds.crs, ds.transform, prob_dtype,
                                                      float("nan") if prob_dtype == "float32" else PROB_NODATA),
                            Resampling.average),
                StripWriter(mask_path, output_profile(width, height, ds.crs, ds.transform, "uint8", MASK_NODATA),
                            Resampling.nearest),
            ]
            blender = Blender(tile, padded_width, overlap, col_lo, width, thr, writers, prob_dtype)
        try:
            if ctx is None:
                assert blender is not None
                yield from predict_strips_local(predictor, reader, grid, blender, token, scene.name)
            else:
                yield from predict_strips_distributed(predictor, reader, grid, blender, token, scene.name, ctx)
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
