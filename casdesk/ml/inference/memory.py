"""Peak memory of a scene prediction, computed before a run from the scene header and the
model file: a strip of windows (input strip, two float32 accumulators, a block row of each
output), one batch, the model and its activations, whatever the scene's height."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from casdesk.core.raster.io import raster_info
from casdesk.core.raster.outputs import window_starts
from casdesk.ml.inference.options import DEFAULT_OVERLAP
from casdesk.ml.inference.predictor import Predictor, round_tile_size

ACTIVATION_FLOATS_PER_PIXEL = 48
"""Rough peak activation size of a forward pass, in float32 values per input pixel
(measured ~20-40 for U-Net/DeepLabV3+ with ResNet encoders under inference_mode)."""


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
    tile = (round_tile_size(tile_size), round_tile_size(tile_size)) if tile_size else (round_tile_size(size[0]), round_tile_size(size[-1]))
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
