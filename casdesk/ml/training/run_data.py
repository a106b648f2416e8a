"""A run's training and validation tiles, their normalisation, the samplers and the
persistent DataLoaders (resumable mid-epoch), and the device-side transforms."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.utils.data import DistributedSampler

from casdesk.core.dataset.splits import load_split
from casdesk.core.project.catalog import Catalog
from casdesk.core.raster.io import open_raster
from casdesk.ml.errors import DataError
from casdesk.ml.training import distributed
from casdesk.ml.training.augment import augment_kind
from casdesk.ml.training.config import TrainConfig
from casdesk.ml.training.data import (
    EpochSampler,
    Normalization,
    TileDataset,
    compute_normalization,
    imagenet_normalization,
    make_loader,
    padded_size,
    select_tiles,
)


class TrainData:
    """Training/validation tiles, their normalisation and persistent loaders."""

    def __init__(self, catalog: Catalog, cfg: TrainConfig, ctx: distributed.DistContext,
                 device: torch.device, split: str, ckpt: dict[str, Any] | None):
        self.cfg = cfg
        self.ctx = ctx
        self.device = device
        parts = load_split(catalog, split)
        self.train_tiles = select_tiles(catalog, parts, "train", cfg.qc_accepted_only)
        self.val_tiles = select_tiles(catalog, parts, "val", cfg.qc_accepted_only)
        if not self.train_tiles:
            raise DataError(f"split {split!r} has no training tiles with masks", catalog.path,
                            "check the split and the QC decisions")
        if not self.val_tiles:
            raise DataError(f"split {split!r} has no validation tiles with masks", catalog.path,
                            "make a split with a validation part (casdesk split)")
        if ckpt:
            self.norm = Normalization.from_dict(ckpt["normalization"])
            self.size: tuple[int, int] = tuple(ckpt["tile_size"])
        else:
            if cfg.normalization == "imagenet":
                with open_raster(self.train_tiles[0].image_path) as ds:
                    self.norm = imagenet_normalization(ds.count)
            else:
                self.norm = compute_normalization(self.train_tiles, cfg.norm_max_tiles, cfg.seed)
            self.size = padded_size(self.train_tiles + self.val_tiles)
        self.augment = augment_kind(cfg.augment)
        self.train_set = TileDataset(self.train_tiles, self.norm, self.size, self.augment, cfg.seed)
        self.val_set = TileDataset(self.val_tiles, self.norm, self.size)
        self.train_transform = self.train_set.transform(device)
        self.val_transform = self.val_set.transform(device)
        self.pin = cfg.pin_memory if cfg.pin_memory is not None else device.type == "cuda"
        self.per_rank = math.ceil(len(self.train_set) / ctx.world_size)
        self._train_sampler = EpochSampler()
        self._train_loader: Any = None
        self._train_key: tuple[int, bool] | None = None
        self._val_loader: Any = None
        self._val_batch = 0

    def drop_last(self, batch_size: int) -> bool:
        """Drop the trailing partial batch: when asked (the authors' recipe) or when it would
        hold a single sample (BatchNorm cannot train on it); never the only batch."""
        if self.per_rank <= batch_size:
            return False
        return bool(self.cfg.drop_last) or self.per_rank % batch_size == 1

    def batches_per_epoch(self, batch_size: int) -> int:
        if self.drop_last(batch_size):
            return self.per_rank // batch_size
        return math.ceil(self.per_rank / batch_size)

    def smallest_batch(self, batch_size: int) -> int:
        rest = self.per_rank % batch_size
        if rest == 0 or self.drop_last(batch_size):
            return min(batch_size, self.per_rank)
        return rest

    def train_loader(self, epoch: int, start_sample: int, batch_size: int) -> Any:
        sampler: DistributedSampler[int] = DistributedSampler(
            self.train_set, num_replicas=self.ctx.world_size, rank=self.ctx.rank,
            shuffle=True, seed=self.cfg.seed, drop_last=False,
        )
        sampler.set_epoch(epoch)
        self._train_sampler.set(epoch, list(sampler)[start_sample:])
        key = (batch_size, self.drop_last(batch_size))
        if self._train_loader is None or self._train_key != key:
            self._train_loader = make_loader(
                self.train_set, batch_size, self._train_sampler, num_workers=self.cfg.num_workers,
                pin_memory=self.pin, drop_last=key[1],
            )
            self._train_key = key
        return self._train_loader

    def val_loader(self, batch_size: int) -> Any:
        """This rank's share of the validation tiles (possibly none: validation runs on
        the unwrapped model, so an empty share waits on no collective)."""
        if self._val_loader is None or self._val_batch != batch_size:
            indices = range(self.ctx.rank, len(self.val_set), self.ctx.world_size)
            self._val_loader = make_loader(
                self.val_set, batch_size, EpochSampler(indices), num_workers=self.cfg.num_workers,
                pin_memory=self.pin,
            )
            self._val_batch = batch_size
        return self._val_loader

    def close(self) -> None:
        self._train_loader = self._val_loader = None  # persistent workers end with their loader
