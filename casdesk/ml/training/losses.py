"""Losses for binary landslide segmentation that skip ignored (nodata/padding) pixels.

All losses take ``logits`` (N, C, H, W) with C = 1 (landslide logit) or C >= 2 (class
logits, softmax) and ``target`` (N, H, W) int64 with values 0/1 and ``ignore_index``
(255) for pixels that must not count. The paper trains with the Dice loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

IGNORE_INDEX = 255
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _flat(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, C) logits and (P,) targets of the valid pixels only."""
    c = logits.shape[1]
    flat_logits = logits.permute(0, 2, 3, 1).reshape(-1, c)
    flat_target = target.reshape(-1)
    keep = flat_target != ignore_index
    return flat_logits[keep], flat_target[keep]


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    """(P, C') probabilities of every class; C=1 is expanded to background/landslide."""
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits.float())
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits.float(), dim=1)


def _valid(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(P, C) logits, (P,) targets with ignored pixels set to 0, and the (P,) float weight
    (1 valid, 0 ignored). Masked sums instead of boolean indexing: the result's shape does
    not depend on the data, so a CUDA loss never waits for the host."""
    c = logits.shape[1]
    flat_logits = logits.permute(0, 2, 3, 1).reshape(-1, c)
    flat_target = target.reshape(-1)
    keep = flat_target != ignore_index
    return flat_logits, torch.where(keep, flat_target, torch.zeros_like(flat_target)), keep.to(torch.float32)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
              smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice over the batch's valid pixels.

    With one logit the Dice of the landslide class is used (the usual binary Dice); with
    C classes the Dice is averaged over classes. ``smooth`` (pixels) keeps tiles without
    landslides from giving a zero division and a huge gradient.
    """
    lg, tg, w = _valid(logits, target, ignore_index)
    probs = _probabilities(lg) * w[:, None]
    onehot = F.one_hot(tg.long(), probs.shape[1]).to(probs.dtype) * w[:, None]
    classes = [1] if logits.shape[1] == 1 else list(range(probs.shape[1]))
    p, t = probs[:, classes], onehot[:, classes]
    inter = (p * t).sum(0)
    dice = (2 * inter + smooth) / (p.sum(0) + t.sum(0) + smooth)
    return 1 - dice.mean()


def bce_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Binary cross-entropy with logits (C=1) or cross-entropy (C>=2) over valid pixels
    (0 when there is none); masked sums, no host sync."""
    lg, tg, w = _valid(logits, target, ignore_index)
    if logits.shape[1] == 1:
        per_pixel = F.binary_cross_entropy_with_logits(lg[:, 0].float(), tg.float(), reduction="none")
    else:
        per_pixel = F.cross_entropy(lg.float(), tg.long(), reduction="none")
    return (per_pixel * w).sum() / w.sum().clamp_min(1.0)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
               gamma: float = 2.0, alpha: float | None = 0.25) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): cross-entropy down-weighted on easy pixels.

    ``alpha`` weighs the landslide class (background gets 1 - alpha); None disables it.
    """
    lg, tg, w = _valid(logits, target, ignore_index)
    probs = _probabilities(lg).clamp_min(1e-7)
    pt = probs.gather(1, tg.long()[:, None])[:, 0]
    loss = -((1 - pt) ** gamma) * pt.log()
    if alpha is not None:
        weight = torch.where(tg == 1, alpha, 1 - alpha).to(loss.dtype)
        loss = loss * weight
    return (loss * w).sum() / w.sum().clamp_min(1.0)


def _lovasz_grad(sorted_truth: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors."""
    total = sorted_truth.sum()
    intersection = total - sorted_truth.cumsum(0)
    union = total + (1 - sorted_truth).cumsum(0)
    jaccard = 1.0 - intersection / union
    if sorted_truth.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Lovasz loss (Berman et al. 2018), a convex surrogate of 1 - IoU, over the batch.

    C=1: Lovasz hinge on the landslide logit. C>=2: Lovasz-softmax averaged over the
    classes present in the batch.
    """
    lg, tg = _flat(logits, target, ignore_index)
    if tg.numel() == 0:
        return logits.sum() * 0.0
    if logits.shape[1] == 1:
        signs = 2.0 * tg.float() - 1.0
        errors = 1.0 - lg[:, 0].float() * signs
        errors_sorted, perm = torch.sort(errors, descending=True)
        grad = _lovasz_grad(tg.float()[perm])
        return torch.dot(F.relu(errors_sorted), grad)
    probs = _probabilities(lg)
    losses = []
    for c in range(probs.shape[1]):
        truth = (tg == c).float()
        if truth.sum() == 0:
            continue
        errors = (truth - probs[:, c]).abs()
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_grad(truth[perm])))
    return torch.stack(losses).mean() if losses else logits.sum() * 0.0


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Dice + BCE, equally weighted: Dice for overlap, BCE for well-calibrated pixels."""
    return dice_loss(logits, target, ignore_index) + bce_loss(logits, target, ignore_index)


LOSSES: dict[str, LossFn] = {
    "dice": dice_loss,
    "bce": bce_loss,
    "focal": focal_loss,
    "lovasz": lovasz_loss,
    "dice+bce": dice_bce_loss,
}


def get_loss(name: str) -> LossFn:
    from casdesk.ml.errors import TrainingError

    key = name.strip().lower().replace("_", "+").replace("dicebce", "dice+bce")
    if key not in LOSSES:
        raise TrainingError(f"unknown loss {name!r}", hint=f"use one of {', '.join(LOSSES)}")
    return LOSSES[key]


def predict_classes(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """(N, H, W) int64 class map: sigmoid > threshold for C=1, argmax for C>=2."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > math.log(threshold / (1.0 - threshold))).long()
    return logits.argmax(dim=1)
