"""The model of a training run and what updates it: the DDP and SyncBatchNorm wrappers,
BatchNorm layers that cannot train on one sample, precision, the optimizer (encoder and
head learning rates), the per-step schedule and the gradient scaler."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from casdesk.ml.device import device_precision, precision_dtype
from casdesk.ml.errors import TrainingError
from casdesk.ml.models.registry import create_model, resolve_spec
from casdesk.ml.training import distributed
from casdesk.ml.training.config import TrainConfig
from casdesk.ml.training.evaluate import autocast


class TrainNet:
    """The model and what updates it: wrappers, precision, optimizer, schedule, scaler."""

    def __init__(self, cfg: TrainConfig, ctx: distributed.DistContext, device: torch.device,
                 bands: int, fresh: bool):
        self.cfg = cfg
        self.ctx = ctx
        self.device = device
        self.notes: list[str] = []
        self.precision = device_precision(device, cfg.amp)
        self.amp_dtype = precision_dtype(self.precision)
        self.memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.spec = resolve_spec(cfg.model)
        torch.manual_seed(cfg.seed)
        weights = cfg.encoder_weights if fresh else None
        model = create_model(cfg.model, cfg.encoder, bands, cfg.classes, weights)
        if ctx.enabled and cfg.sync_bn:
            if device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
                self.notes.append("SyncBatchNorm: BatchNorm statistics over all GPU processes")
            else:
                self.notes.append("SyncBatchNorm needs GPUs: CPU processes keep per-process BatchNorm")
        self.aspp_rates = _aspp_rates(model)
        # torch's stubs give Module.to no overload with both a device and memory_format (it takes them)
        self.bare: nn.Module = model.to(device, memory_format=self.memory)  # type: ignore[call-overload]
        self.model: nn.Module = self.bare
        if ctx.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.bare, device_ids=ids)
        self.frozen_norms: list[nn.Module] = []
        self.optimizer = build_optimizer(cfg, self.bare)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None

    def set_schedule(self, total_steps: int) -> None:
        self.scheduler = _scheduler(self.cfg, self.optimizer, max(total_steps, 1))

    def train_mode(self) -> None:
        self.model.train()
        for m in self.frozen_norms:
            m.eval()

    def freeze_single_value_norms(self, size: tuple[int, int], bands: int) -> str | None:
        """Put the BatchNorm layers that see one value per channel in a batch of one sample
        (e.g. the image-pooling branch of ASPP) in eval mode: they normalise with their
        running statistics instead of failing. Returns the log sentence, or None."""
        found: list[tuple[str, nn.Module]] = []
        hooks = []
        for name, m in self.bare.named_modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], name: str = name) -> None:
                    x = args[0]
                    if x.numel() // max(x.shape[1], 1) <= 1:
                        found.append((name, mod))
                hooks.append(m.register_forward_pre_hook(hook))
        was_training = self.bare.training
        self.bare.eval()
        try:
            with torch.no_grad(), autocast(self.device, self.amp_dtype):
                self.bare(torch.zeros(1, bands, *size, device=self.device).contiguous(memory_format=self.memory))
        finally:
            for h in hooks:
                h.remove()
            self.bare.train(was_training)
        new = [(n, m) for n, m in found if all(m is not f for f in self.frozen_norms)]
        if not new:
            return None
        self.frozen_norms += [m for _, m in new]
        names = ", ".join(n for n, _ in new)
        return (f"batch size 1: {len(new)} BatchNorm layer(s) see one value per channel and use their "
                f"running statistics (eval mode) while training: {names}")

    def step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()


def _param_groups(model: nn.Module, head_lr_mult: float, lr: float) -> list[dict[str, Any]]:
    """One parameter group, or the encoder at ``lr`` and the rest (decoder, head) at
    ``lr * head_lr_mult`` (the authors' recipe uses 10)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if head_lr_mult == 1.0:
        return [{"params": params, "lr": lr}]
    encoder_ids = {id(p) for p in _encoder_parameters(model)}
    if not encoder_ids:
        raise TrainingError(
            f"head_lr_mult needs a model whose encoder is known; {type(model).__name__} has none",
            hint="use head_lr_mult = 1",
        )
    encoder = [p for p in params if id(p) in encoder_ids]
    head = [p for p in params if id(p) not in encoder_ids]
    return [{"params": encoder, "lr": lr}, {"params": head, "lr": lr * head_lr_mult}]


def _encoder_parameters(model: nn.Module) -> Iterable[nn.Parameter]:
    """The encoder's parameters: ``head_parameters()`` (everything else is encoder),
    ``encoder_modules()``, or the ``encoder`` attribute (smp models, MFFENet)."""
    head_parameters = getattr(model, "head_parameters", None)
    if callable(head_parameters):
        head = {id(p) for p in head_parameters()}
        return [p for p in model.parameters() if id(p) not in head]
    encoder_modules = getattr(model, "encoder_modules", None)
    if callable(encoder_modules):
        return [p for m in encoder_modules() for p in m.parameters()]
    encoder = getattr(model, "encoder", None)
    return list(encoder.parameters()) if isinstance(encoder, nn.Module) else []


def _aspp_rates(model: nn.Module) -> list[int] | None:
    """The dilation rates of the model's ASPP convolutions (None: no ASPP)."""
    rates = {int(m.dilation[0]) for name, m in model.named_modules()
             if "aspp" in name.lower() and isinstance(m, nn.Conv2d) and m.dilation[0] > 1}
    return sorted(rates) or None


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    groups = _param_groups(model, float(cfg.head_lr_mult), cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay)


def _scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step schedule: ``poly`` (1 - t)^power, ``cosine`` half cosine to 0, ``constant``."""
    power = cfg.poly_power

    def factor(step: int) -> float:
        t = min(step / total_steps, 1.0)
        if cfg.schedule == "poly":
            return (1.0 - t) ** power
        if cfg.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
