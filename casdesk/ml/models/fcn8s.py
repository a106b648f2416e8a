"""FCN-8s (Long et al., 2015) on a VGG16 encoder, one of the paper's baselines.

The encoder is ``torchvision.models.vgg16(weights=None).features`` with its first
convolution replaced when the input does not have 3 bands. As in FCN-8s, the class
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

POOL3, POOL4 = 16, 23  # indexes of MaxPool layers in vgg16().features (pool5 is 30)


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


def adapt_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels`` bands, reusing its RGB weights.

    One band gets the sum of the RGB filters; more bands cycle through R, G, B, scaled by
    3 / bands, so a pretrained filter responds with the same magnitude.
    """
    if conv.in_channels == in_channels:
        return conv
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        w = conv.weight
        if in_channels == 1:
            new.weight.copy_(w.sum(dim=1, keepdim=True))
        else:
            idx = torch.arange(in_channels) % w.shape[1]
            new.weight.copy_(w[:, idx] * (w.shape[1] / in_channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)  # type: ignore[union-attr]
    return new


class FCN8s(nn.Module):
    """FCN-8s: ``forward(x: (N, bands, H, W)) -> logits (N, classes, H, W)``."""

    def __init__(self, in_channels: int = 3, classes: int = 1, imagenet: bool = False):
        super().__init__()
        from torchvision.models import VGG16_Weights, vgg16

        features = vgg16(weights=VGG16_Weights.IMAGENET1K_V1 if imagenet else None).features
        features[0] = adapt_first_conv(features[0], in_channels)
        self.to_pool3 = features[: POOL3 + 1]
        self.to_pool4 = features[POOL3 + 1 : POOL4 + 1]
        self.to_pool5 = features[POOL4 + 1 :]
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
            nn.init.zeros_(score.bias)
        self.up2_a = _upsampler(classes, 2)
        self.up2_b = _upsampler(classes, 2)
        self.up8 = _upsampler(classes, 8)

    @property
    def encoder_modules(self) -> list[nn.Module]:
        return [self.to_pool3, self.to_pool4, self.to_pool5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        p3 = self.to_pool3(x)
        p4 = self.to_pool4(p3)
        p5 = self.to_pool5(p4)
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
