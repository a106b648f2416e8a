"""FCN-8s (Long et al., 2015) on a VGG16 encoder, registered as ``fcn8s``.

Not the network the CAS paper's authors trained (that is ``fcn``,
:mod:`casdesk.ml.models.fcn`); kept as the classic reference. The encoder is VGG16's
convolutions (:class:`~casdesk.ml.models.backbones.VGG16Encoder`, torchvision names) with
its first convolution replaced when the input does not have 3 bands. As in FCN-8s, the class
scores of the stride-32 head are upsampled x2 and summed with 1x1 scores of pool4, then
x2 and summed with 1x1 scores of pool3, then upsampled x8 to the input; the upsampling
layers are transposed convolutions initialised to bilinear interpolation.

Departure from the original, to keep the model trainable on a desktop GPU: fc6/fc7 are a
3x3 convolution to 1024 channels and a 1x1 convolution (not 7x7 to 4096, which adds
~120 M parameters for no benefit at 512 px tiles).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from casdesk.ml.models.backbones import VGG16Encoder


def _bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor
    filt = filt1d[:, None] * filt1d[None, :]
    weight = torch.zeros(channels, channels, size, size)
    for c in range(channels):
        weight[c, c] = filt
    return weight


def _upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    up = nn.ConvTranspose2d(
        channels, channels, kernel_size=2 * factor, stride=factor, padding=factor // 2, bias=False
    )
    with torch.no_grad():
        up.weight.copy_(_bilinear_kernel(channels, 2 * factor))
    return up


class FCN8s(nn.Module):
    """FCN-8s: ``forward(x: (N, bands, H, W)) -> logits (N, classes, H, W)``."""

    def __init__(self, in_channels: int = 3, classes: int = 1):
        super().__init__()
        self.encoder = VGG16Encoder(in_channels)
        self.head = nn.Sequential(
            nn.Conv2d(512, 1024, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.5),
            nn.Conv2d(1024, 1024, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.5),
        )
        self.score_fr = nn.Conv2d(1024, classes, 1)
        self.score_pool4 = nn.Conv2d(512, classes, 1)
        self.score_pool3 = nn.Conv2d(256, classes, 1)
        for score in (self.score_pool4, self.score_pool3):
            nn.init.zeros_(score.weight)
            if score.bias is not None:  # always there: the score layers are biased
                nn.init.zeros_(score.bias)
        self.up2_a = _upsampler(classes, 2)
        self.up2_b = _upsampler(classes, 2)
        self.up8 = _upsampler(classes, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        _, _, p3, p4, p5 = self.encoder(x)
        s = self.up2_a(self.score_fr(self.head(p5)))
        s = _match(s, p4) + self.score_pool4(p4)
        s = self.up2_b(s)
        s = _match(s, p3) + self.score_pool3(p3)
        s = self.up8(s)
        return _match_size(s, size)


def _match(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return _match_size(x, ref.shape[-2:])


def _match_size(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    if x.shape[-2:] == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
