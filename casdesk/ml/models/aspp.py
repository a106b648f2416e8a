"""Atrous spatial pyramid pooling (Chen et al. 2017, DeepLabV3) as the DeepLab family of the
CAS paper's authors builds it: rates 6, 12, 18 at output stride 16.

Five parallel branches on the deepest feature map, 256 channels each: a 1x1 convolution,
three 3x3 convolutions dilated 6, 12 and 18, and image pooling (global average, 1x1
convolution, BatchNorm, ReLU, broadcast back). Every convolution is bias-free and
followed by BatchNorm and ReLU; the concatenation (1280 channels) is projected by a 1x1
convolution + BatchNorm + ReLU to 256 channels, then dropout 0.5.
"""

from __future__ import annotations

import torch
from torch import nn

PAPER_RATES = (6, 12, 18)


def conv_bn_relu(cin: int, cout: int, k: int = 1, dilation: int = 1, bias: bool = False) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=dilation * (k - 1) // 2, dilation=dilation, bias=bias),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ImagePooling(nn.Module):
    """Global context: average over the image, 1x1 conv + BN + ReLU, broadcast to the map."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = conv_bn_relu(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x)).expand(-1, -1, *x.shape[-2:])


class ASPP(nn.Module):
    """``forward(x: (N, cin, h, w)) -> (N, cout, h, w)``."""

    def __init__(self, cin: int, cout: int = 256, rates: tuple[int, ...] = PAPER_RATES, dropout: float = 0.5):
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(cin, cout, 1)] + [conv_bn_relu(cin, cout, 3, r) for r in rates]
        )
        self.image_pooling = ImagePooling(cin, cout)
        self.project = nn.Sequential(conv_bn_relu(cout * (len(rates) + 2), cout, 1), nn.Dropout(dropout))
        self.rates = tuple(rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(self.image_pooling(x))
        return self.project(torch.cat(outs, dim=1))
