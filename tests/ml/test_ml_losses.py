"""Losses skip ignored pixels, fall as predictions improve, and have gradients."""

from __future__ import annotations

import pytest
import torch

from casdesk.ml.training.losses import LOSSES, get_loss, predict_classes


@pytest.mark.parametrize("classes", [1, 2])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_prefers_correct_logits_and_ignores(name: str, classes: int) -> None:
    torch.manual_seed(0)
    target = torch.randint(0, 2, (2, 16, 16))
    target[:, :4] = 255
    onehot = torch.stack([1 - target.clamp(max=1), target.clamp(max=1)], 1).float()
    good = (onehot * 8 - 4) if classes == 2 else (target.clamp(max=1).float()[:, None] * 8 - 4)
    bad = -good
    fn = get_loss(name)
    good_loss, bad_loss = fn(good, target), fn(bad, target)
    assert good_loss < bad_loss
    # changing logits at ignored pixels changes nothing
    noisy = good.clone()
    noisy[:, :, :4] = torch.randn_like(noisy[:, :, :4]) * 10
    assert fn(noisy, target) == pytest.approx(float(good_loss), abs=1e-5)
    x = bad.clone().requires_grad_(True)
    fn(x, target).backward()
    assert x.grad is not None and x.grad[:, :, :4].abs().sum() == 0


def test_all_ignored_batch_is_finite() -> None:
    target = torch.full((1, 8, 8), 255)
    for fn in LOSSES.values():
        assert torch.isfinite(fn(torch.randn(1, 1, 8, 8), target))


def test_predict_classes() -> None:
    logits = torch.tensor([[[[-1.0, 0.5]]]])
    assert predict_classes(logits).tolist() == [[[0, 1]]]
    assert predict_classes(logits, threshold=0.7).tolist() == [[[0, 0]]]
    two = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])
    assert predict_classes(two).tolist() == [[[0, 1]]]


@pytest.mark.parametrize("classes", [1, 2])
def test_masked_losses_equal_the_valid_pixel_formulas(classes: int) -> None:
    """dice/bce/focal use masked sums (no data-dependent shapes, so no host sync on CUDA);
    they must equal the same formulas over the valid pixels picked by boolean indexing."""
    import torch.nn.functional as F

    from casdesk.ml.training.losses import bce_loss, dice_loss, focal_loss

    gen = torch.Generator().manual_seed(classes)
    logits = torch.randn(2, classes, 16, 16, generator=gen)
    target = torch.randint(0, 2, (2, 16, 16), generator=gen)
    target[0, :5] = 255  # ignored rows
    keep = target.reshape(-1) != 255
    lg = logits.permute(0, 2, 3, 1).reshape(-1, classes)[keep]
    tg = target.reshape(-1)[keep]
    if classes == 1:
        p1 = torch.sigmoid(lg)
        probs = torch.cat([1 - p1, p1], 1)
        bce = F.binary_cross_entropy_with_logits(lg[:, 0], tg.float())
    else:
        probs = torch.softmax(lg, 1)
        bce = F.cross_entropy(lg, tg)
    onehot = F.one_hot(tg, 2).float()
    cls = [1] if classes == 1 else [0, 1]
    inter = (probs[:, cls] * onehot[:, cls]).sum(0)
    dice = 1 - ((2 * inter + 1) / (probs[:, cls].sum(0) + onehot[:, cls].sum(0) + 1)).mean()
    pt = probs.clamp_min(1e-7).gather(1, tg[:, None])[:, 0]
    focal = (-((1 - pt) ** 2) * pt.log() * torch.where(tg == 1, 0.25, 0.75)).mean()
    assert torch.allclose(dice_loss(logits, target), dice, atol=1e-6)
    assert torch.allclose(bce_loss(logits, target), bce, atol=1e-6)
    assert torch.allclose(focal_loss(logits, target), focal, atol=1e-6)
    everything_ignored = torch.full_like(target, 255)
    for fn in (dice_loss, bce_loss, focal_loss):
        assert float(fn(logits, everything_ignored)) == 0.0
