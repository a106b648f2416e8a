"""Training settings: one dataclass shared by the CLI (flags or a TOML file) and the GUI.

Defaults follow the CAS Landslide Dataset paper: SGD, learning rate 0.01, momentum 0.9,
weight decay 5e-4, Dice loss, a 7:3 random split per subdataset.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from casdesk.ml.errors import TrainingError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("poly", "cosine", "constant")
AMP_MODES = ("auto", "off", "bf16", "fp16")
RECIPES = ("custom", "paper")
NORMALIZATIONS = ("dataset", "imagenet")
AUGMENTS = ("none", "flips", "paper")


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored as JSON with the run)."""

    model: str = "deeplabv3plus"
    encoder: str | None = None  # None: the model's default (resnet50, vgg16 for fcn)
    encoder_weights: str | None = None  # None, "imagenet" or a local weight file path
    classes: int = 1  # 1: sigmoid landslide logit; 2: softmax background/landslide
    split: str | None = None  # None: newest split, or a new random 7:3 split
    epochs: int = 50
    batch_size: int = 8
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9  # SGD momentum (AdamW: beta1)
    weight_decay: float = 5e-4
    schedule: str = "poly"  # learning-rate schedule per optimizer step
    poly_power: float = 0.9
    loss: str = "dice"  # dice, bce, focal, lovasz, dice+bce
    amp: str = "auto"  # auto: bf16 (or fp16) on CUDA, off elsewhere
    channels_last: bool = False
    grad_accum: int = 1  # batches per optimizer step
    early_stopping: int = 0  # epochs without val mIoU gain before stopping; 0 = never
    seed: int = 0
    deterministic: bool = False  # reproducible kernels (slower on GPU)
    device: str = "auto"  # auto, cpu, cuda, cuda:N, mps
    num_workers: int = 2  # DataLoader worker processes; 0 reads tiles in the main process
    pin_memory: bool | None = None  # None: on for CUDA
    sync_bn: bool = True  # SyncBatchNorm across GPU processes under torchrun (DDP)
    recipe: str = "custom"  # "paper": the authors' recipe, see casdesk.ml.training.config.PAPER_RECIPE
    normalization: str = "dataset"  # dataset: band mean/std of the training tiles; imagenet: /255 then ImageNet mean/std
    augment: bool | str = True  # "none", "flips" (flips, 90 degree turns, jitter), "paper" (flip, scale-crop, blur); True = "flips"
    drop_last: bool = False  # drop the last incomplete training batch (the authors do)
    head_lr_mult: float = 1.0  # learning-rate factor on the decoder/head (the authors' code uses 10)
    qc_accepted_only: bool = True
    threshold: float = 0.5  # landslide probability threshold (classes = 1)
    log_every: int = 10  # batches between loss read-backs from the GPU
    norm_max_tiles: int = 256  # tiles sampled to compute the band mean/std
    name: str | None = None  # run name; default "<model>-<split>"
    out_dir: str | None = None  # run folder; default <project>.casdesk.d/runs/runNNNN-<model>

    def validate(self) -> TrainConfig:
        """Raise :class:`TrainingError` naming the first bad setting; return self."""
        if self.optimizer not in OPTIMIZERS:
            raise TrainingError(f"unknown optimizer {self.optimizer!r}", hint=f"use {' or '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise TrainingError(f"unknown schedule {self.schedule!r}", hint=f"use one of {', '.join(SCHEDULES)}")
        if self.amp not in AMP_MODES:
            raise TrainingError(f"unknown AMP mode {self.amp!r}", hint=f"use one of {', '.join(AMP_MODES)}")
        for key in ("epochs", "batch_size", "grad_accum", "classes", "log_every"):
            if getattr(self, key) < 1:
                raise TrainingError(f"{key} must be at least 1, not {getattr(self, key)}")
        if self.lr <= 0:
            raise TrainingError(f"the learning rate must be positive, not {self.lr}")
        if self.num_workers < 0 or self.early_stopping < 0:
            raise TrainingError("num_workers and early_stopping cannot be negative")
        if not 0.0 < self.threshold < 1.0:
            raise TrainingError(f"threshold must be between 0 and 1, not {self.threshold}")
        from casdesk.ml.training.losses import get_loss

        get_loss(self.loss)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingError(
                f"unknown training setting(s): {', '.join(unknown)}",
                hint=f"known settings: {', '.join(sorted(known))}",
            )
        values = dict(data)
        if isinstance(values.get("encoder_weights"), str) and values["encoder_weights"].lower() == "none":
            values["encoder_weights"] = None
        return cls(**values)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a TOML file (keys = field names, optionally under ``[train]``)."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise TrainingError("config file not found", p) from exc
        except tomllib.TOMLDecodeError as exc:
            raise TrainingError(f"not valid TOML ({exc})", p) from exc
        data = data.get("train", data)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data)
