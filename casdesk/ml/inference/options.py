"""How a scene is predicted (:class:`PredictOptions`, every field with the CLI's default),
where its outputs go, and what a prediction wrote (:class:`PredictionResult`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from casdesk.ml.inference.predictor import PredictionError

if TYPE_CHECKING:
    from casdesk.ml.inference.memory import MemoryEstimate

DEFAULT_OVERLAP = 128
VECTOR_FORMATS = {"gpkg": ".gpkg", "shp": ".shp", "geojson": ".geojson"}
SCENE_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")


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


def out_paths(out_dir: Path, scene: Path, vector: str | None) -> tuple[Path, Path, Path | None]:
    stem = scene.stem
    vec = None if vector in (None, "none") else out_dir / f"{stem}_landslides{VECTOR_FORMATS[vector]}"
    return out_dir / f"{stem}_prob.tif", out_dir / f"{stem}_mask.tif", vec


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
