"""MFFENet (Xu et al., *Landslides* 19, 1617-1647, 2022), the fourth model of the CAS paper.

Re-implemented from the authors' public code (repository ``xupine/LandslideNet``, folder
``MFFENet/modeling/``: ``deeplab.py``, ``aspp.py``, ``denseGates_decoder.py``, backbone).
That repository carries no licence, so nothing here is copied: the architecture was read
there and written anew; names, module layout and code are casdesk's.

Architecture
------------
*Encoder*: a DeepLab-style ResNet at output stride 16
(:class:`~casdesk.ml.models.backbones.DilatedResNet`): the last stage keeps stride 1 and
uses the multi-grid dilations 2, 4, 8. Four features leave it: ``f1`` the stem after
conv1/BN/ReLU (64 ch, stride 2), ``f2`` layer1 (256 ch, stride 4), ``f3`` layer2 (512 ch,
stride 8) and the last stage (2048 ch, stride 16).

*ASPP* (:mod:`casdesk.ml.models.aspp`): rates 6/12/18, image pooling with BatchNorm,
256 channels, dropout 0.5. Its output ``a`` is the deepest of the decoder's levels.

*Dense gated decoder*, three levels at strides 8, 4, 2 (widths ``w`` = 192, 96, 48):

1. **Gate by the next deeper feature.** The level's own feature (f3, f2, f1) is projected
   to ``w`` channels and weighted by an additive attention gate (Oktay et al. 2018) whose
   gating signal is the next deeper feature resized to this level: ``a`` gates f3, f3
   gates f2, f2 gates f1. Output: ``W_x x * sigmoid(psi(relu(W_x x + W_g g)))``.
2. **Cross-level fusion.** The three *other* features of {a, f3, f2, f1} are each
   projected (1x1 conv + BN + ReLU) to ``w`` channels and resized to this level.
3. **Spatial attention.** Those projections form two groups, the levels deeper than this
   one and the levels shallower than it (one group at stride 2, where none is shallower).
   A 3x3 conv (to half the channels) + BN + ReLU, then a 1x1 conv + BN + sigmoid give one
   spatial map per group, which weighs that group.
4. The gated feature and both groups are concatenated (``4 w`` channels: 768, 384, 192)
   and refined by a residual bottleneck (1x1 to ``4w/3``, 3x3, BN, ReLU, 1x1 back, added).

*Dense fusion* from coarse to fine, every map resized to the current resolution, each a
3x3 conv to 256 + BN + ReLU: ``d8 = conv(L8, a)``, ``d4 = conv(L4, d8, a)``,
``d2 = conv(L2, d4, d8, a)``.

*Classifier* on the concatenation of four 256-channel maps ``(d2, d4, d8, a)`` at stride
2: 3x3 conv 256 + BN + ReLU + dropout 0.5, 3x3 conv 256 + BN + ReLU + dropout 0.1, 1x1
conv to the classes; logits are upsampled (bilinear) to the input size.

Size (3 bands, 2 classes): 52.36 M parameters with ResNet50 (the paper's backbone),
71.36 M with ResNet101 (the code's); the decoder alone is 13.3 M, ASPP 15.5 M.

Choices made here (where the paper and the code leave room or disagree)
-----------------------------------------------------------------------
* **Backbone**: the paper names ResNet50, the code ships ResNet101. Default ``resnet50``;
  ``encoder="resnet101"`` gives the code's network. Both use the code's multi-grid
  (1, 2, 4) x 2 in the last stage (the code builds that stage this way whatever the depth);
  ``multi_grid=None`` gives plain dilation 2 instead. ResNet18/34 also work (decoder inputs
  follow the encoder's widths); they are not the authors'.
* **ResNet version**: torchvision's (stride on the 3x3 convolution, "v1.5"), the same
  layout as the code's, so torchvision's ImageNet files load unchanged.
* **Resizing**: bilinear with ``align_corners=True`` inside the decoder and for the
  logits, as in the code.
* **Concatenation order** in the dense fusion is casdesk's (own level first, then coarser
  maps fine to coarse); the order changes no capacity and no behaviour class.
* **Biases** follow the code: the cross-level projections and the final classifier have
  a bias, the other decoder convolutions do not.
* **Initialisation**: Kaiming-normal for every decoder/ASPP convolution, BatchNorm 1/0,
  as in the code; the encoder gets torchvision's initialisation or pretrained weights.
* **Input sizes**: any; the reference only sees 512 px tiles. Bands other than 3 adapt
  the first convolution (pretrained RGB filters reused).
* The code's unused modules (global convolution, gates block, self-attention and
  channel-attention variants left commented out) are not reproduced.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from casdesk.ml.models.aspp import ASPP, PAPER_RATES, conv_bn_relu
from casdesk.ml.models.backbones import MULTI_GRID, DilatedResNet

LEVEL_WIDTHS = (192, 96, 48)  # decoder levels at strides 8, 4, 2
DENSE_CHANNELS = 256


def resize(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    if x.shape[-2:] == ref.shape[-2:]:
        return x
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=True)


def conv_bn(cin: int, cout: int, k: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=(k - 1) // 2, bias=False), nn.BatchNorm2d(cout))


class AttentionGate(nn.Module):
    """Additive attention gate: the projected skip, weighted where the gate agrees."""

    def __init__(self, skip_channels: int, gate_channels: int, width: int):
        super().__init__()
        self.skip = conv_bn(skip_channels, width)
        self.gate = conv_bn(gate_channels, width)
        self.psi = nn.Sequential(conv_bn(width, 1), nn.Sigmoid())

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        s = self.skip(skip)
        alpha = self.psi(F.relu(s + self.gate(resize(gate, skip))))
        return s * alpha


class SpatialAttention(nn.Module):
    """One sigmoid map per group of feature maps, each weighing its own group."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels // 2, 3), nn.ReLU(inplace=True))
        self.maps = nn.Sequential(conv_bn(channels // 2, groups), nn.Sigmoid())

    def forward(self, groups: list[torch.Tensor]) -> list[torch.Tensor]:
        maps = self.maps(self.body(torch.cat(groups, dim=1)))
        return [g * maps[:, i : i + 1] for i, g in enumerate(groups)]


class Bottleneck(nn.Module):
    """Residual refinement ``x + f(x)``: 1x1 down to ``mid``, 3x3, BN, ReLU, 1x1 back."""

    def __init__(self, channels: int, mid: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, mid, 1, bias=False),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GatedLevel(nn.Module):
    """One decoder level: gated own feature + cross-level projections with spatial attention.

    ``channels``: widths of the pyramid, deepest first (ASPP, f3, f2, f1); ``level``: index
    of this level in it (1, 2 or 3). The gate is ``channels[level - 1]``.
    """

    def __init__(self, channels: tuple[int, ...], level: int, width: int):
        super().__init__()
        self.level = level
        self.gate = AttentionGate(channels[level], channels[level - 1], width)
        others = [i for i in range(len(channels)) if i != level]
        self.others = others
        self.project = nn.ModuleList(conv_bn_relu(channels[i], width, 1, bias=True) for i in others)
        n_groups = 2 if any(i > level for i in others) else 1
        self.attention = SpatialAttention(width * len(others), n_groups)
        out = width * (1 + len(others))
        self.refine = Bottleneck(out, out // 3)
        self.out_channels = out

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        own = pyramid[self.level]
        gated = self.gate(own, pyramid[self.level - 1])
        projected = {i: resize(p(pyramid[i]), own) for i, p in zip(self.others, self.project)}
        deeper = [projected[i] for i in self.others if i < self.level]
        shallower = [projected[i] for i in self.others if i > self.level]
        groups = [torch.cat(deeper, 1)] + ([torch.cat(shallower, 1)] if shallower else [])
        return self.refine(torch.cat([gated, *self.attention(groups)], dim=1))


class DenseGatedDecoder(nn.Module):
    """Three gated levels, dense coarse-to-fine fusion, classifier over four 256-ch maps."""

    def __init__(self, encoder_channels: tuple[int, int, int], classes: int, aspp_channels: int = 256,
                 widths: tuple[int, int, int] = LEVEL_WIDTHS):
        super().__init__()
        f1, f2, f3 = encoder_channels
        pyramid = (aspp_channels, f3, f2, f1)
        levels = [GatedLevel(pyramid, i + 1, w) for i, w in enumerate(widths)]
        self.levels = nn.ModuleList(levels)
        fused = []
        for i, level in enumerate(levels):
            cin = level.out_channels + DENSE_CHANNELS * i + aspp_channels
            fused.append(conv_bn_relu(cin, DENSE_CHANNELS, 3))
        self.fuse = nn.ModuleList(fused)
        self.classifier = nn.Sequential(
            conv_bn_relu(DENSE_CHANNELS * 3 + aspp_channels, 256, 3),
            nn.Dropout(0.5),
            conv_bn_relu(256, 256, 3),
            nn.Dropout(0.1),
            nn.Conv2d(256, classes, 1),
        )

    def forward(self, context: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor) -> torch.Tensor:
        pyramid = [context, f3, f2, f1]
        dense: list[torch.Tensor] = []  # fused maps, finest first
        for level, fuse in zip(self.levels, self.fuse):
            own = level(pyramid)
            dense.insert(0, fuse(torch.cat([own, *(resize(d, own) for d in dense), resize(context, own)], 1)))
        top = dense[0]
        return self.classifier(torch.cat([top, *(resize(d, top) for d in dense[1:]), resize(context, top)], 1))


class MFFENet(nn.Module):
    """``forward(x: (N, bands, H, W)) -> logits (N, classes, H, W)``.

    ``encoder``: ``resnet50`` (the paper), ``resnet101`` (the authors' code), or another
    torchvision ResNet depth. ``multi_grid``: last-stage dilation factors (x2).
    """

    def __init__(self, encoder: str = "resnet50", in_channels: int = 3, classes: int = 2,
                 multi_grid: tuple[int, ...] | None = MULTI_GRID, rates: tuple[int, ...] = PAPER_RATES):
        super().__init__()
        self.encoder = DilatedResNet(encoder, in_channels, output_stride=16, multi_grid=multi_grid)
        f1, f2, f3, deepest = self.encoder.out_channels
        self.aspp = ASPP(deepest, 256, rates)
        self.decoder = DenseGatedDecoder((f1, f2, f3), classes)
        for module in (self.aspp, self.decoder):
            for m in module.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1, f2, f3, deepest = self.encoder(x)
        logits = self.decoder(self.aspp(deepest), f1, f2, f3)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=True)
