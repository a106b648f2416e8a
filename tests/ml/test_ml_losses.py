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
