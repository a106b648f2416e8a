"""The Predict tab's background jobs: thin generator wrappers over core/ml functions.

Every function here returns a :data:`~casdesk.core.jobs.Job` for
:class:`~casdesk.gui.kit.workers.JobRunner`, so nothing that reads files or imports torch runs
on the GUI thread. torch (through :mod:`casdesk.ml`) is imported inside the jobs, never at
module import time: the window must open fast. No Qt here either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.enums import Resampling

from casdesk.core.jobs import CancelToken, Job, Progress
from casdesk.gui.kit.torch_import import import_ml_quietly, import_torch_quietly

OVERLAY_MAX_SIDE = 2048
"""Longest side (pixels) of the decimated scene shown after a run: enough for a screen,
small enough to read a 40k-pixel scene in about a second."""


@dataclass(frozen=True)
class ModelInfo:
    """What the panel shows about a model file (from its meta; no network is built)."""

    path: Path
    meta: dict[str, Any]
    parameters: int

    def describe(self) -> str:
        m = self.meta
        tile = m.get("tile_size") or "?"
        tile_text = f"{tile[0]}x{tile[-1]}" if isinstance(tile, list) else str(tile)
        lines = [
            f"<b>{self.path.name}</b>",
            f"Architecture: {m.get('architecture', '?')} / encoder {m.get('encoder') or '-'}",
            f"Bands: {m.get('in_channels', '?')}, tile {tile_text} px, threshold {m.get('threshold', 0.5)}",
            f"Parameters: {self.parameters / 1e6:.1f} M",
        ]
        res = m.get("resolution_m")
        if res:
            res_text = ", ".join(f"{float(r):g}" for r in (res if isinstance(res, list) else [res]))
            lines.append(f"Trained at {res_text} m resolution")
        metrics = m.get("metrics") or {}
        shown = [(k, t) for k, t in (("miou", "mIoU"), ("f1_mean", "F1"), ("iou", "IoU landslide"))
                 if isinstance(metrics.get(k), int | float)]
        if shown:
            lines.append("Validation: " + ", ".join(f"{t} {100 * metrics[k]:.1f} %" for k, t in shown)
                         + (f" (epoch {m['epoch']})" if m.get("epoch") else ""))
        if m.get("split"):
            lines.append(f"Split: {m['split']}")
        return "<br>".join(lines)


def model_info_job(path: Path) -> Job:
    """Read a model file's meta (imports torch, hence a worker)."""
    yield Progress(0, 1, f"reading {path.name}")
    import_torch_quietly()  # first use: torch's libraries load outside the GIL (the window stays live)
    from casdesk.ml.inference.scene import check_meta
    from casdesk.ml.modelfile import read_model_file

    blob = read_model_file(path)
    check_meta(blob["meta"], path)
    params = sum(int(v.numel()) for v in blob["state_dict"].values())
    return ModelInfo(path, blob["meta"], params)


def first_scene(source: Path) -> Path:
    """The scene a memory estimate is made for: the file, or a folder's widest scene."""
    if not source.is_dir():
        return source
    from casdesk.core.raster.io import raster_info
    from casdesk.ml.inference.scene import PredictionError, scene_files

    files = scene_files(source)
    if not files:
        raise PredictionError("no raster scenes found", source, "pick a folder of .tif files")
    return max(files, key=lambda f: raster_info(f).width)


def memory_job(model: Path, source: Path, options: dict[str, Any]) -> Job:
    """Peak memory of the run, before it starts (reads the model file and a header)."""
    yield Progress(0, 1, "estimating memory")
    import_ml_quietly()
    from casdesk.ml.inference.scene import estimate_memory

    scene = first_scene(source)
    return estimate_memory(model, scene, overlap=options["overlap"], batch_size=options["batch_size"],
                           tta=options["tta"])


def predict_job(model: Path, source: Path, out_dir: Path, options: dict[str, Any], token: CancelToken) -> Job:
    """Predict one scene or a folder of scenes; return the list of PredictionResult."""
    import_ml_quietly()
    from casdesk.ml.inference.scene import predict_scenes

    return (yield from predict_scenes(model, source, out_dir, cancel=token, **options))


def predict_tiles_job(model: Path, project: Path, split: str | None, part: str | None,
                      options: dict[str, Any], token: CancelToken) -> Job:
    """Predict the project's tiles (a split's part, a whole split, or all tiles)."""
    import_ml_quietly()
    from casdesk.ml.inference.tiles import predict_tiles

    return (yield from predict_tiles(model, project, split=split, part=part, device=options["device"],
                                     batch_size=options["batch_size"], tta=options["tta"],
                                     threshold=options["threshold"], cancel=token))


# --------------------------------------------------------------------------- overlay
@dataclass(frozen=True)
class OverlayImages:
    """A decimated scene and its prediction, ready for display (row-major arrays)."""

    scene: Path
    rgb: np.ndarray  # (rows, cols, 3) uint8
    prob: np.ndarray  # (rows, cols) uint8 0..254, 255 nodata
    mask: np.ndarray  # (rows, cols) uint8 0/1, 255 nodata
    scale: float  # scene pixels per displayed pixel


def overlay_job(scene: Path, prob_path: Path, mask_path: Path, max_side: int = OVERLAY_MAX_SIDE) -> Job:
    """Read the scene, probability and mask decimated to ``max_side`` (one read each)."""
    yield Progress(0, 1, f"reading {scene.name}")
    from casdesk.core.raster.io import open_raster, to_display_rgb

    with open_raster(scene) as ds:
        scale = max(1.0, max(ds.width, ds.height) / max_side)
        shape = (max(1, math.floor(ds.height / scale)), max(1, math.floor(ds.width / scale)))
        data = ds.read(out_shape=(ds.count, *shape), resampling=Resampling.nearest)
        valid = np.any(ds.read_masks(out_shape=(ds.count, *shape), resampling=Resampling.nearest) > 0, axis=0)
    rgb = to_display_rgb(data, valid)
    with open_raster(prob_path) as ds:
        prob = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
    if prob.dtype != np.uint8:  # float32 probabilities with NaN nodata
        prob = np.where(np.isfinite(prob), np.clip(prob, 0, 1) * 254, 255).astype(np.uint8)
    with open_raster(mask_path) as ds:
        mask = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
    return OverlayImages(scene, np.ascontiguousarray(rgb), prob, mask, scale)


# --------------------------------------------------------------------------- labels
def polygons_to_project_job(project: Path, scene: Path, vector_path: Path | None, mask_path: Path) -> Job:
    """Store the predicted polygons as the scene's labels with source ``predicted``.

    The scene is matched by path among the project's scenes, or added. Earlier predicted
    labels of that scene are replaced (edited ones stay), so importing twice does not
    double the polygons. Returns (scene id, number of polygons, whether the scene was added).
    """
    yield Progress(0, 1, "importing predicted polygons")
    import shapely

    from casdesk.core.dataset.scenes import add_scene
    from casdesk.core.labels.from_prediction import accept_polygons, accept_scene_prediction
    from casdesk.core.labels.io import read_vector_labels
    from casdesk.core.labels.store import scene_target
    from casdesk.core.project.catalog import Catalog
    from casdesk.core.raster.io import raster_info

    target = scene.resolve()
    with Catalog.open(project) as cat:
        scene_id = next((s.id for s in cat.scenes() if Path(s.path).resolve() == target), None)
        added = scene_id is None
        if scene_id is None:
            scene_id = add_scene(cat, scene).scene_id
        if vector_path is not None and vector_path.exists():
            labels = read_vector_labels(vector_path, raster_info(scene)).labels
            polys = [shapely.from_wkt(lab["geometry_px"]) for lab in labels]
            report = accept_polygons(cat, scene_target(cat, scene_id), polys)
        else:  # no vector output was asked for: polygonise the mask in pixel coordinates
            report = accept_scene_prediction(cat, scene_id, mask_path, min_area_px=0.0)
    return scene_id, report.added, added
