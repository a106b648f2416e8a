"""Tiles from the catalog as a torch Dataset: image in its stored type, mask with ignore.

* Images keep any band count and dtype; they are *not* divided by 255 (uint16 satellite
  data would be crushed), but standardised per band with the mean/std of the training
  tiles' valid pixels (:func:`compute_normalization`; or ImageNet's statistics,
  :func:`imagenet_normalization`), which are stored in the model file so inference
  normalises identically. The standardisation runs on the training device
  (:mod:`casdesk.ml.training.augment`): uint8 tiles cross the loader as 1 byte/pixel.
* Pixels outside the image footprint (nodata, alpha, NaN) and the padding that brings a
  tile to a multiple of 32 px get the target :data:`IGNORE_INDEX` (255): they count in
  neither the loss nor the metrics.
* Augmentation parameters (flips, 90 degree rotations, brightness/contrast; or the
  paper's flip, scale-crop and blur) are drawn from a random stream keyed by (seed,
  epoch, tile index), so results do not depend on the number of DataLoader workers and a
  resumed run sees the same augmentations; they are applied on the device.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from casdesk.core.errors import CasdeskError
from casdesk.core.project.catalog import Catalog, Tile
from casdesk.core.qc.rules import kept_tile_ids
from casdesk.core.raster.io import open_raster, read_window
from casdesk.ml.errors import DataError
from casdesk.ml.training.augment import Augment, DeviceTransform, augment_kind, imagenet_statistics

IGNORE_INDEX = 255
SIZE_MULTIPLE = 32  # encoders downsample by 32: inputs must be multiples of it


# --------------------------------------------------------------------------- selection
def accepted_tile_ids(catalog: Catalog) -> set[int] | None:
    """Ids of QC-kept tiles under the project's working rules (what the QC panel shows), or
    None when the project has no QC information (QC never run: every tile counts). The
    decision is :func:`casdesk.core.qc.rules.kept_tile_ids`'s."""
    return kept_tile_ids(catalog)


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
    image, valid, mask = read_tile_raw(image_path, mask_path)
    return image.astype(np.float32, copy=False), valid, mask


def read_tile_raw(image_path: Path, mask_path: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`read_tile`, the image in its stored data type (no float copy)."""
    image, valid = read_window(image_path)
    if mask_path is None:
        return image, valid, np.zeros(valid.shape, dtype=np.uint8)
    with open_raster(mask_path) as ds:
        mask = ds.read(1)
        nodata = ds.nodata
    if mask.shape != valid.shape:
        raise DataError(
            f"mask is {mask.shape[1]}x{mask.shape[0]} px but the image is {valid.shape[1]}x{valid.shape[0]}",
            mask_path,
            "re-crop the tile",
        )
    if nodata is not None:  # casdesk masks say 255 (ignore: unsurveyed, __ignore__) is nodata
        missing = mask == nodata
        return image, valid & ~missing, ((mask > 0) & ~missing).astype(np.uint8)
    return image, valid, (mask > 0).view(np.uint8)


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


def imagenet_normalization(bands: int) -> Normalization:
    """``/255`` then ImageNet mean/std, as one standardisation in 0-255 units."""
    mean, std = imagenet_statistics(bands)
    return Normalization(mean, std)


def padded_size(tiles: Sequence[TileRef]) -> tuple[int, int]:
    """(H, W) every tile is padded to: the largest tile, rounded up to a multiple of 32."""
    h = max(t.height for t in tiles)
    w = max(t.width for t in tiles)
    return (math.ceil(h / SIZE_MULTIPLE) * SIZE_MULTIPLE, math.ceil(w / SIZE_MULTIPLE) * SIZE_MULTIPLE)


# --------------------------------------------------------------------------- dataset
def wire_image(image: np.ndarray) -> np.ndarray:
    """The image as it crosses the loader: uint8 stays uint8 (1 byte/pixel), uint16 travels
    as int16 bits (2 bytes, restored on the device by
    :func:`casdesk.ml.training.augment.to_float`), anything else as float32."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return image.view(np.int16)
    return image.astype(np.float32, copy=False)


class TileDataset(Dataset):
    """``dataset[i] -> (image (bands, H, W) wire type, target (H, W) uint8 0/1/255, params)``.

    The image is *not* normalised here: normalisation and augmentation run on the device
    (:class:`casdesk.ml.training.augment.DeviceTransform`); this ships 1 byte per pixel of
    uint8 imagery instead of 4 (float32) plus 8 for an int64 target. ``params`` is the
    float32 augmentation vector of the sample (identity without ``augment``). Pixels
    outside the footprint and the padding to ``size`` get target 255 (ignore).

    The key may be ``(epoch, index)`` (what :class:`EpochSampler` yields): the augmentation
    stream then follows that epoch even in persistent worker processes; a plain index
    uses :meth:`set_epoch`'s.
    """

    def __init__(
        self,
        tiles: Sequence[TileRef],
        normalization: Normalization,
        size: tuple[int, int] | None = None,
        augment: Augment | str | bool | None = None,
        seed: int = 0,
    ):
        if not tiles:
            raise DataError("no tiles to load", hint="check the split and the QC decisions")
        self.tiles = list(tiles)
        self.normalization = normalization
        self.size = size or padded_size(self.tiles)
        if augment is not None and not isinstance(augment, Augment):
            kind = augment_kind(augment)
            augment = None if kind == "none" else Augment(kind)
        self.augment: Augment | None = augment
        self.seed = seed
        self.epoch = 0

    @property
    def augment_kind(self) -> str:
        return "none" if self.augment is None else self.augment.kind

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` for plain integer keys."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        t = self.tiles[index]
        image, valid, mask = read_tile_raw(t.image_path, t.mask_path)
        if image.shape[0] != self.normalization.bands:
            raise DataError(
                f"tile has {image.shape[0]} bands but the model expects {self.normalization.bands}",
                t.image_path,
                "train one model per band layout",
            )
        all_valid = bool(valid.all())
        target = mask if all_valid else np.where(valid, mask, np.uint8(IGNORE_INDEX)).astype(np.uint8)
        if image.dtype.kind == "f" and not all_valid:  # NaN nodata must not reach the device arithmetic
            image = np.where(valid, image, 0).astype(np.float32)
        image, target = _pad(wire_image(image), target, self.size)
        if self.augment is not None:
            params = self.augment.draw(np.random.default_rng([self.seed, epoch, index]),
                                       square=self.size[0] == self.size[1])
        else:
            params = Augment("none").draw(np.random.default_rng(0), square=False)
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(target), torch.from_numpy(params)

    def transform(self, device: torch.device | str = "cpu") -> DeviceTransform:
        """The device transform that completes this dataset's samples."""
        return DeviceTransform(self.normalization.mean, self.normalization.std, self.augment_kind, device)


def _pad(image: np.ndarray, target: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = target.shape
    th, tw = size
    if (h, w) == (th, tw):
        return image, target
    if h > th or w > tw:
        image, target = image[:, :th, :tw], target[:th, :tw]
        h, w = target.shape
    img = np.zeros((image.shape[0], th, tw), dtype=image.dtype)
    img[:, :h, :w] = image
    tgt = np.full((th, tw), IGNORE_INDEX, dtype=np.uint8)
    tgt[:h, :w] = target
    return img, tgt


# --------------------------------------------------------------------------- loading
class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` keys of a list of indices that the trainer replaces each
    epoch (:meth:`set`); one sampler and one persistent DataLoader serve the whole run."""

    def __init__(self, indices: Sequence[int] = (), epoch: int = 0):
        self.set(epoch, indices)

    def set(self, epoch: int, indices: Sequence[int]) -> None:
        self.epoch = int(epoch)
        self.indices = [int(i) for i in indices]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return iter([(epoch, i) for i in self.indices])

    def __len__(self) -> int:
        return len(self.indices)


def worker_errors(batches: Iterable[Any]) -> Iterator[Any]:
    """The batches of a loader; a casdesk error raised in a worker process comes out as
    its own sentence again (the DataLoader rebuilds it around the worker's traceback)."""
    it = iter(batches)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except CasdeskError as exc:
            text = str(exc)
            if "Original Traceback" not in text:
                raise
            last = [line for line in text.strip().splitlines() if line.strip()][-1]
            raise type(exc)(last.split(": ", 1)[1] if ": " in last else last) from None
        yield batch


def worker_context(num_workers: int) -> str | None:
    """The multiprocessing start method of DataLoader workers.

    ``fork`` (None: the default) only from the main thread of a Linux process without
    CUDA: a forked child of a process with other threads (a Qt GUI, a QThread job) or an
    initialised CUDA context can deadlock. Otherwise ``forkserver`` on Linux, ``spawn``
    elsewhere (the default there anyway).
    """
    if num_workers <= 0:
        return None
    main = threading.current_thread() is threading.main_thread()
    if sys.platform.startswith("linux"):
        if main and not torch.cuda.is_initialized():
            return None
        return "forkserver"
    return "spawn"


def make_loader(
    dataset: Dataset, batch_size: int, sampler: Sampler | Sequence[Any], *, num_workers: int = 0,
    pin_memory: bool = False, drop_last: bool = False, prefetch_factor: int = 4,
) -> DataLoader:
    """A DataLoader that keeps its workers between epochs and prefetches
    ``prefetch_factor`` batches per worker (worker processes start from a thread-safe
    context, see :func:`worker_context`)."""
    # an own generator: starting an epoch's iterator then draws no number from the global
    # torch stream (a resumed run must see the same random numbers as an uninterrupted one)
    kwargs: dict[str, Any] = {"generator": torch.Generator().manual_seed(0)}
    if num_workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=prefetch_factor,
                      multiprocessing_context=worker_context(num_workers))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      pin_memory=pin_memory, drop_last=drop_last, **kwargs)
