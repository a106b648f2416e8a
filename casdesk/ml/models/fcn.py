"""The FCN the CAS Landslide Dataset authors trained ("FCNs", repository ``Aizu0/Code-``,
``FCN/fcn.py``, MIT licence), written here from its description.

Not the classic FCN-8s of Long et al. (that one is :mod:`casdesk.ml.models.fcn8s`,
registered as ``fcn8s``). The authors' network:

* Encoder: the 13 convolutions of VGG16 (ImageNet-pretrained in the paper), the outputs
  of its five max-pools kept: pool1 (64 ch, stride 2) ... pool5 (512 ch, stride 32). The
  fully connected layers are dropped.
* Decoder: five stride-2 transposed 3x3 convolutions (padding 1, output padding 1, with
  bias), each followed by ReLU and then BatchNorm, widths 512, 256, 128, 64, 32. After
  each of the first four, the encoder's pool4, pool3, pool2, pool1 are *added* (element-
  wise; the widths match), so the upsampling path sees every encoder level.
* Classifier: a 1x1 convolution from 32 channels to the classes, at full resolution.

Size: 18.64 M parameters for 3 bands and 2 classes (14.71 M of them VGG16's).

Choices where the reference is silent: inputs whose side is not a multiple of 32 are
handled by resizing an upsampled map to its skip's size (bilinear) and the logits to the
input size; the reference only ever sees 512 px tiles, where no resize happens.
Initialisation: torchvision's for the encoder and PyTorch's defaults for the decoder, as
in the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from casdesk.ml.models.backbones import VGG16Encoder

WIDTHS = (512, 256, 128, 64, 32)


class UpStage(nn.Module):
    """x2 transposed convolution, ReLU, BatchNorm (the reference's order)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.deconv(x)))


class FCN(nn.Module):
    """``forward(x: (N, bands, H, W)) -> logits (N, classes, H, W)``."""

    def __init__(self, in_channels: int = 3, classes: int = 2):
        super().__init__()
        self.encoder = VGG16Encoder(in_channels)
        widths = (512, *WIDTHS)
        self.decoder = nn.ModuleList(UpStage(widths[i], widths[i + 1]) for i in range(len(WIDTHS)))
        self.classifier = nn.Conv2d(WIDTHS[-1], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pools = self.encoder(x)  # pool1 .. pool5
        skips = pools[-2::-1]  # pool4, pool3, pool2, pool1
        y = pools[-1]
        for i, stage in enumerate(self.decoder):
            y = stage(y)
            if i < len(skips):
                y = _resize(y, skips[i].shape[-2:]) + skips[i]
        return _resize(self.classifier(y), x.shape[-2:])


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    if x.shape[-2:] == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
