"""Encoders built from torchvision's networks, so torchvision's ImageNet files load as they are.

* :class:`DilatedResNet`: a ResNet (18/34/50/101/152) that returns the features of the
  stem (stride 2), ``layer1`` (stride 4), ``layer2`` (stride 8) and the last stage. At
  output stride 16 the last stage keeps stride 1 and is dilated with a *multi-grid*: its
  three blocks use dilation ``2 x (1, 2, 4)`` = 2, 4, 8 (Chen et al. 2017, DeepLabV3), as
  the DeepLab ResNet of the MFFENet authors' code does. Parameter names are torchvision's
  (``conv1``, ``bn1``, ``layer1.0.conv1`` ...), without the classifier.
* :class:`VGG16Encoder`: ``torchvision.models.vgg16().features`` (13 convolutions, five
  max-pools), returning the output of each pool; names ``features.N.*`` as in torchvision.
* :func:`adapt_first_conv`: a first convolution for another band count, reusing RGB
  filters (used after pretrained weights are loaded).
"""

from __future__ import annotations

import torch
from torch import nn

RESNET_DEPTHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
MULTI_GRID = (1, 2, 4)


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
        dilation=conv.dilation,  # type: ignore[arg-type]
        bias=conv.bias is not None,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    if conv.weight.is_meta:
        return new
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


def _dilate(conv: nn.Conv2d, dilation: int) -> None:
    """Turn a strided 3x3 convolution into a stride-1 one with ``dilation`` (same size out)."""
    conv.stride = (1, 1)
    if conv.kernel_size == (3, 3):
        conv.dilation = (dilation, dilation)
        conv.padding = (dilation, dilation)


class DilatedResNet(nn.Module):
    """ResNet encoder; ``forward(x) -> [stem (s2), layer1 (s4), layer2 (s8), last (s16/s32)]``.

    ``output_stride`` 16 (default) or 32. ``multi_grid``: per-block dilation factors of the
    last stage at output stride 16 (times 2); ``None`` for torchvision's plain dilation 2.
    """

    def __init__(self, name: str = "resnet50", in_channels: int = 3, output_stride: int = 16,
                 multi_grid: tuple[int, ...] | None = MULTI_GRID):
        super().__init__()
        import torchvision.models as tvm

        if name not in RESNET_DEPTHS:
            raise KeyError(f"{name!r} is not a ResNet encoder (use one of {', '.join(RESNET_DEPTHS)})")
        if output_stride not in (16, 32):
            raise ValueError(f"output stride must be 16 or 32, not {output_stride}")
        net = getattr(tvm, name)(weights=None)
        self.name = name
        self.conv1 = adapt_first_conv(net.conv1, in_channels)
        self.bn1, self.relu, self.maxpool = net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.output_stride = output_stride
        if output_stride == 16:
            grid = multi_grid or (1,) * len(self.layer4)
            for i, block in enumerate(self.layer4):
                rate = 2 * grid[min(i, len(grid) - 1)]
                if hasattr(block, "conv3"):  # Bottleneck: the 3x3 is conv2 (torchvision v1.5)
                    _dilate(block.conv2, rate)
                else:  # BasicBlock: both convolutions are 3x3
                    _dilate(block.conv1, rate)
                    _dilate(block.conv2, rate)
                if block.downsample is not None:
                    block.downsample[0].stride = (1, 1)
        wide = hasattr(self.layer1[0], "conv3")
        self.out_channels = (64, 256, 512, 2048) if wide else (64, 64, 128, 512)

    def set_in_channels(self, in_channels: int) -> None:
        self.conv1 = adapt_first_conv(self.conv1, in_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(stem))
        f2 = self.layer2(f1)
        return [stem, f1, f2, self.layer4(self.layer3(f2))]


class VGG16Encoder(nn.Module):
    """VGG16 convolutions; ``forward(x) -> [pool1 (s2), pool2, pool3, pool4, pool5 (s32)]``."""

    POOLS = (4, 9, 16, 23, 30)  # indexes of the max-pools in torchvision's vgg16().features
    out_channels = (64, 128, 256, 512, 512)

    def __init__(self, in_channels: int = 3):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        # the convolutions only: vgg16() would also allocate its 120 M-parameter classifier
        self.features = make_layers(cfgs["D"], batch_norm=False)
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):  # torchvision's VGG initialisation
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:  # always there: make_layers builds biased convolutions
                    nn.init.zeros_(m.bias)
        self.set_in_channels(in_channels)

    def set_in_channels(self, in_channels: int) -> None:
        self.features[0] = adapt_first_conv(self.features[0], in_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.POOLS:
                outs.append(x)
        return outs
