"""Tiles from the catalog as a torch Dataset: image bands normalised, mask with ignore.

* Images are read as float32 with any band count and dtype; they are *not* divided by 255
  (uint16 satellite data would be crushed), but standardised per band with the mean/std
  of the training tiles' valid pixels (:func:`compute_normalization`), which are stored
  in the model file so inference normalises identically.
* Pixels outside the image footprint (nodata, alpha, NaN) and the padding that brings a
  tile to a multiple of 32 px get the target :data:`IGNORE_INDEX` (255): they count in
  neither the loss nor the metrics.
* Augmentation (flips, 90 degree rotations, brightness/contrast) is drawn from a random
  stream keyed by (seed, epoch, tile index), so results do not depend on the number of
  DataLoader workers and a resumed run sees the same augmentations.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from casdesk.core.project.catalog import Catalog, Tile
from casdesk.core.raster.io import open_raster, read_window
from casdesk.ml.errors import DataError

IGNORE_INDEX = 255
SIZE_MULTIPLE = 32  # encoders downsample by 32: inputs must be multiples of it


# --------------------------------------------------------------------------- selection
def accepted_tile_ids(catalog: Catalog) -> set[int] | None:
    """Ids of QC-accepted tiles, or None when the project has no QC information.

    QC lives in :mod:`casdesk.core.qc.rules`; when it offers ``accepted_tile_ids(catalog)`` and
    the project holds QC metrics or decisions, it decides; otherwise (QC never run) every
    tile counts as accepted.
    """
    has_qc = catalog.execute(
        "SELECT EXISTS(SELECT 1 FROM qc_metrics) OR EXISTS(SELECT 1 FROM qc_decisions)"
    ).fetchone()[0]
    if not has_qc:
        return None
    try:
        qc = importlib.import_module("casdesk.core.qc.rules")
    except ImportError:
        return None
    fn = getattr(qc, "accepted_tile_ids", None)
    if fn is None:
        return None
    ids = fn(catalog)
    return None if ids is None else {int(i) for i in ids}


@dataclass(frozen=True)
class TileRef:
    """What the dataset needs of a tile: picklable for DataLoader worker processes."""

    id: int
    image_path: Path
    mask_path: Path
    height: int
    width: int


def select_tiles(
    catalog: Catalog,
    parts: dict[int, str] | None,
    part: str | None,
    qc_accepted_only: bool = True,
) -> list[TileRef]:
    """Tiles of ``part`` in a split (``parts``: tile id -> part; None = every tile), with a
    mask, and QC-accepted when ``qc_accepted_only`` and QC information exists."""
    tiles: list[Tile] = catalog.tiles()
    if parts is not None:
        tiles = [t for t in tiles if parts.get(t.id) == part]
    if qc_accepted_only:
        accepted = accepted_tile_ids(catalog)
        if accepted is not None:
            tiles = [t for t in tiles if t.id in accepted]
    return [
        TileRef(t.id, Path(t.image_path), Path(t.mask_path), int(t.height), int(t.width))
        for t in tiles
        if t.mask_path is not None
    ]


# --------------------------------------------------------------------------- reading
def read_tile(image_path: Path, mask_path: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bands, H, W) float32 image, (H, W) bool validity, (H, W) uint8 0/1 mask."""
    data, valid = read_window(image_path)
    image = data.astype(np.float32, copy=False)
    if mask_path is None:
        return image, valid, np.zeros(valid.shape, dtype=np.uint8)
    with open_raster(mask_path) as ds:
        mask = ds.read(1)
    if mask.shape != valid.shape:
        raise DataError(
            f"mask is {mask.shape[1]}x{mask.shape[0]} px but the image is {valid.shape[1]}x{valid.shape[0]}",
            mask_path,
            "re-crop the tile",
        )
    return image, valid, (mask > 0).astype(np.uint8)


@dataclass
class Normalization:
    """Per-band standardisation ``(x - mean) / std``, in the image's own units."""

    mean: list[float]
    std: list[float]

    @property
    def bands(self) -> int:
        return len(self.mean)

    def apply(self, image: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        return (image - mean) / std

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalization:
        return cls([float(v) for v in d["mean"]], [float(v) for v in d["std"]])


def compute_normalization(tiles: Sequence[TileRef], max_tiles: int = 256, seed: int = 0) -> Normalization:
    """Mean/std per band over valid pixels of (a seeded sample of at most ``max_tiles``) tiles.

    Sums are accumulated in float64 so large uint16 values do not lose precision. A band
    with zero spread gets std 1 (it carries no information; avoid dividing by zero).
    """
    if not tiles:
        raise DataError("no training tiles to compute the normalisation from")
    chosen = list(tiles)
    if len(chosen) > max_tiles:
        idx = np.sort(np.random.default_rng(seed).choice(len(chosen), max_tiles, replace=False))
        chosen = [chosen[i] for i in idx]
    total = sq = None
    count = 0
    bands = None
    for t in chosen:
        image, valid, _ = read_tile(t.image_path, None)
        if bands is None:
            bands = image.shape[0]
        elif image.shape[0] != bands:
            raise DataError(f"tile has {image.shape[0]} bands, others have {bands}", t.image_path)
        values = image[:, valid].astype(np.float64)
        total = values.sum(1) if total is None else total + values.sum(1)
        sq = (values**2).sum(1) if sq is None else sq + (values**2).sum(1)
        count += values.shape[1]
    if count == 0 or total is None or sq is None:
        raise DataError("the training tiles hold no valid pixels")
    mean = total / count
    var = np.maximum(sq / count - mean**2, 0.0)
    std = np.sqrt(var)
    std[std < 1e-6] = 1.0
    return Normalization([float(v) for v in mean], [float(v) for v in std])


def padded_size(tiles: Sequence[TileRef]) -> tuple[int, int]:
    """(H, W) every tile is padded to: the largest tile, rounded up to a multiple of 32."""
    h = max(t.height for t in tiles)
    w = max(t.width for t in tiles)
    return (math.ceil(h / SIZE_MULTIPLE) * SIZE_MULTIPLE, math.ceil(w / SIZE_MULTIPLE) * SIZE_MULTIPLE)


# --------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class Augment:
    """Random flips, 90 degree rotations (square tiles) and brightness/contrast jitter.

    Brightness/contrast act on standardised values: ``x * c + b`` with c in
    [1 - contrast, 1 + contrast] and b in [-brightness, brightness] (units of band std).
    """

    flips: bool = True
    rot90: bool = True
    brightness: float = 0.2
    contrast: float = 0.2

    def __call__(self, image: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.flips and rng.random() < 0.5:
            image, target = image[:, :, ::-1], target[:, ::-1]
        if self.flips and rng.random() < 0.5:
            image, target = image[:, ::-1, :], target[::-1, :]
        if self.rot90 and image.shape[1] == image.shape[2]:
            k = int(rng.integers(4))
            if k:
                image, target = np.rot90(image, k, axes=(1, 2)), np.rot90(target, k)
        if self.contrast or self.brightness:
            c = 1.0 + rng.uniform(-self.contrast, self.contrast)
            b = rng.uniform(-self.brightness, self.brightness)
            image = image * np.float32(c) + np.float32(b)
        return image, target


# --------------------------------------------------------------------------- dataset
class TileDataset(Dataset):
    """``dataset[i] -> (image (bands, H, W) float32, target (H, W) int64 0/1/255)``."""

    def __init__(
        self,
        tiles: Sequence[TileRef],
        normalization: Normalization,
        size: tuple[int, int] | None = None,
        augment: Augment | None = None,
        seed: int = 0,
    ):
        if not tiles:
            raise DataError("no tiles to load", hint="check the split and the QC decisions")
        self.tiles = list(tiles)
        self.normalization = normalization
        self.size = size or padded_size(self.tiles)
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.tiles[index]
        image, valid, mask = read_tile(t.image_path, t.mask_path)
        if image.shape[0] != self.normalization.bands:
            raise DataError(
                f"tile has {image.shape[0]} bands but the model expects {self.normalization.bands}",
                t.image_path,
                "train one model per band layout",
            )
        image = self.normalization.apply(image)
        image[:, ~valid] = 0.0
        target = np.where(valid, mask, IGNORE_INDEX).astype(np.uint8)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, target = self.augment(image, target, rng)
        image, target = _pad(image, target, self.size)
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(target.astype(np.int64))


def _pad(image: np.ndarray, target: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = target.shape
    th, tw = size
    if (h, w) == (th, tw):
        return image, target
    if h > th or w > tw:
        image, target = image[:, :th, :tw], target[:th, :tw]
        h, w = target.shape
    img = np.zeros((image.shape[0], th, tw), dtype=np.float32)
    img[:, :h, :w] = image
    tgt = np.full((th, tw), IGNORE_INDEX, dtype=np.uint8)
    tgt[:h, :w] = target
    return img, tgt
