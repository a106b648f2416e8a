"""MFFENet, re-implemented from its description (Xu et al., Landslides 2022).

What the paper states: a DeepLabV3+-family network on a ResNet50 encoder with output
stride 16 and ASPP on the deepest features, whose decoder fuses *multi-level* features
(not only the stride-4 level of DeepLabV3+) through attention gates, channel alignment
and channel attention, with a dense, cascaded fusion before the classifier.

What is inferred here (the paper gives no layer-by-layer table):

* Encoder levels used: stride 2 (64 ch), 4 (256 ch) and 8 (512 ch) of ResNet50, plus the
  stride-16 dilated last stage (2048 ch) that feeds ASPP (rates 6, 12, 18 + image
  pooling, 256 ch out, as in DeepLabV3+).
* Channel alignment: each skip level is projected by 1x1 conv + BN + ReLU to a fixed
  width (48 channels, DeepLabV3+'s choice for its single skip).
* Additive attention gate (Attention U-Net style): the ASPP output, resized to the skip's
  resolution, is the gating signal ``g``; ``alpha = sigmoid(psi(relu(Wx x + Wg g)))``
  weighs each skip pixel, so shallow textures only pass where the deep context agrees.
* Dense cascaded fusion: decoding goes stride 8 -> 4 -> 2; the fusion block of every
  level receives its gated skip and *all* coarser outputs (the ASPP output and every
  earlier fusion output), resized to its resolution and concatenated.
* Each fusion block: concatenate, 1x1 alignment conv, squeeze-and-excitation channel
  attention (reduction 8), then two 3x3 conv + BN + ReLU. Widths 256 / 128 / 64 at
  strides 8 / 4 / 2.
* Classifier: 1x1 conv on the stride-2 output, bilinear upsampling x2 to the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int = 3, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: parallel dilated convs + image pooling, fused."""

    def __init__(self, cin: int, cout: int = 256, rates: tuple[int, ...] = (6, 12, 18)):
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(cin, cout, 1)] + [conv_bn_relu(cin, cout, 3, r) for r in rates]
        )
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True)
        )
        self.project = nn.Sequential(conv_bn_relu(cout * (len(rates) + 2), cout, 1), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, dim=1))


class AttentionGate(nn.Module):
    """Additive attention: weighs skip features ``x`` by agreement with the gate ``g``."""

    def __init__(self, x_channels: int, g_channels: int, inter: int):
        super().__init__()
        self.wx = nn.Sequential(nn.Conv2d(x_channels, inter, 1, bias=False), nn.BatchNorm2d(inter))
        self.wg = nn.Sequential(nn.Conv2d(g_channels, inter, 1, bias=False), nn.BatchNorm2d(inter))
        self.psi = nn.Sequential(nn.Conv2d(inter, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        g = resize(g, x)
        alpha = self.psi(F.relu(self.wx(x) + self.wg(g)))
        return x * alpha


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: reweights channels by their global average response."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


class FusionBlock(nn.Module):
    """Concatenate the gated skip and all coarser outputs, align, attend, refine."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.align = conv_bn_relu(cin, cout, 1)
        self.attention = ChannelAttention(cout)
        self.refine = nn.Sequential(conv_bn_relu(cout, cout), conv_bn_relu(cout, cout))

    def forward(self, skip: torch.Tensor, coarser: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat([skip] + [resize(c, skip) for c in coarser], dim=1)
        return self.refine(self.attention(self.align(x)))


def resize(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    if x.shape[-2:] == ref.shape[-2:]:
        return x
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


class MFFENet(nn.Module):
    """``forward(x: (N, bands, H, W)) -> logits (N, classes, H, W)``; H, W multiples of 16."""

    SKIP_LEVELS = (3, 2, 1)  # encoder feature indexes at strides 8, 4, 2 (decoding order)
    WIDTHS = (256, 128, 64)
    SKIP_CHANNELS = 48

    def __init__(
        self,
        encoder_name: str = "resnet50",
        in_channels: int = 3,
        classes: int = 1,
        encoder_weights: str | None = None,
        aspp_channels: int = 256,
    ):
        super().__init__()
        from segmentation_models_pytorch.encoders import get_encoder

        self.encoder = get_encoder(
            encoder_name, in_channels=in_channels, depth=5, weights=encoder_weights, output_stride=16
        )
        chans = self.encoder.out_channels
        self.aspp = ASPP(chans[-1], aspp_channels)
        self.align = nn.ModuleList([conv_bn_relu(chans[i], self.SKIP_CHANNELS, 1) for i in self.SKIP_LEVELS])
        self.gates = nn.ModuleList(
            [AttentionGate(self.SKIP_CHANNELS, aspp_channels, self.SKIP_CHANNELS) for _ in self.SKIP_LEVELS]
        )
        fusions = []
        coarser_channels = [aspp_channels]
        for width in self.WIDTHS:
            fusions.append(FusionBlock(self.SKIP_CHANNELS + sum(coarser_channels), width))
            coarser_channels.append(width)
        self.fusions = nn.ModuleList(fusions)
        self.classifier = nn.Conv2d(self.WIDTHS[-1], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        context = self.aspp(feats[-1])
        coarser = [context]
        for align, gate, fusion, level in zip(self.align, self.gates, self.fusions, self.SKIP_LEVELS):
            skip = gate(align(feats[level]), context)
            coarser.append(fusion(skip, coarser))
        logits = self.classifier(coarser[-1])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
