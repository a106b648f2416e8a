"""Normalisation and augmentation on the training device (plain torch ops).

Tiles cross the DataLoader as they are stored, one byte per pixel for uint8 imagery
(see :class:`casdesk.ml.training.data.TileDataset`): the image in its own integer type,
the target as uint8 (0, 1, 255 = ignore) and a small vector of augmentation parameters
drawn on the CPU from a stream keyed by (seed, epoch, tile), so a run is reproducible
whatever the number of workers and a resumed run sees the same augmentations.
:class:`DeviceTransform` turns such a batch into the model's float input on the GPU:

* integers to float32 (int16 on the wire carries uint16 bits, see :func:`to_float`);
* per-band standardisation ``(x - mean) / std``; pixels whose target is ignore (nodata,
  padding) become 0;
* ``flips``: horizontal/vertical flips, 90 degree turns (square tiles) and
  brightness/contrast jitter in units of band std, vectorised over the batch;
* ``paper`` (the authors' recipe): horizontal flip, random scale of the short side
  between 0.5x and 2x of the tile (256-1024 px for 512 px tiles) then a random crop back
  to the tile size (padding: image 0, target ignore), and a Gaussian blur with
  probability 0.5 (sigma uniform in [0, 1), PIL's ``GaussianBlur(random())``).

Every operation is a torch op on the batch's device; no value is read back to the host
(the paper scale-crop reads its sizes from the CPU copy of the parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = 255
N_PARAMS = 9
# parameter vector layout
P_HFLIP, P_VFLIP, P_ROT, P_CONTRAST, P_BRIGHT, P_SCALE, P_CROP_Y, P_CROP_X, P_SIGMA = range(N_PARAMS)
AUGMENT_KINDS = ("none", "flips", "paper")
BLUR_RADIUS = 3  # kernel taps each side: 3 sigma for the largest sigma (1)


def augment_kind(value: bool | str | None) -> str:
    """The augmentation kind of a config value: True -> flips, False/None -> none."""
    if value is True:
        return "flips"
    if value is False or value is None:
        return "none"
    kind = str(value).strip().lower()
    if kind in ("true", "yes", "on"):
        return "flips"
    if kind in ("false", "no", "off", ""):
        return "none"
    if kind not in AUGMENT_KINDS:
        from casdesk.ml.errors import TrainingError

        raise TrainingError(f"unknown augmentation {value!r}", hint=f"use one of {', '.join(AUGMENT_KINDS)}")
    return kind


@dataclass(frozen=True)
class Augment:
    """Draws the augmentation parameters of one sample (on the CPU, in a loader worker).

    ``kind``: ``flips`` or ``paper``. ``brightness``/``contrast``: jitter amplitudes of
    ``flips`` (``x * c + b``, c in [1 - contrast, 1 + contrast], b in [-brightness,
    brightness], units of band std). ``scale``: the short-side scale range of ``paper``.
    """

    kind: str = "flips"
    brightness: float = 0.2
    contrast: float = 0.2
    scale: tuple[float, float] = (0.5, 2.0)
    blur_p: float = 0.5

    def draw(self, rng: np.random.Generator, square: bool) -> np.ndarray:
        p = np.zeros(N_PARAMS, dtype=np.float32)
        p[P_CONTRAST] = 1.0
        p[P_SCALE] = 1.0
        if self.kind == "flips":
            p[P_HFLIP] = rng.random() < 0.5
            p[P_VFLIP] = rng.random() < 0.5
            p[P_ROT] = int(rng.integers(4)) if square else 0
            p[P_CONTRAST] = 1.0 + rng.uniform(-self.contrast, self.contrast)
            p[P_BRIGHT] = rng.uniform(-self.brightness, self.brightness)
        elif self.kind == "paper":
            p[P_HFLIP] = rng.random() < 0.5
            p[P_SCALE] = rng.uniform(*self.scale)
            p[P_CROP_Y] = rng.random()
            p[P_CROP_X] = rng.random()
            p[P_SIGMA] = rng.random() if rng.random() < self.blur_p else 0.0
        return p


def to_float(x: torch.Tensor) -> torch.Tensor:
    """Wire image -> float32: uint8 as is, int16 as the uint16 bits it carries."""
    if x.dtype == torch.int16:
        return x.to(torch.int32).bitwise_and_(0xFFFF).float()
    return x.float()


class DeviceTransform:
    """Batch (wire image, uint8 target, params) -> (normalised float image, int64 target)."""

    def __init__(self, mean: list[float], std: list[float], kind: str = "none",
                 device: torch.device | str = "cpu"):
        self.kind = augment_kind(kind)
        self.device = torch.device(device)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device)[None, :, None, None]
        self.inv_std = 1.0 / torch.tensor(std, dtype=torch.float32, device=self.device)[None, :, None, None]

    def __call__(self, image: torch.Tensor, target: torch.Tensor, params: torch.Tensor | None = None,
                 memory_format: torch.memory_format = torch.contiguous_format) -> tuple[torch.Tensor, torch.Tensor]:
        cpu_params = params
        image = image.to(self.device, non_blocking=True)
        target = target.to(self.device, non_blocking=True)
        x = (to_float(image) - self.mean) * self.inv_std
        y = target
        zero = torch.zeros((), device=x.device)
        x = torch.where((y == IGNORE).unsqueeze(1), zero, x)  # before resampling spreads nodata
        if params is not None and self.kind != "none":
            p = params.to(self.device, non_blocking=True)
            if self.kind == "flips":
                x, y = _flips(x, y, p)
            else:
                x, y = _paper(x, y, p, cpu_params)
            x = torch.where((y == IGNORE).unsqueeze(1), zero, x)
        return x.contiguous(memory_format=memory_format), y.long()


def _select(flag: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per sample: ``a`` where flag, else ``b``."""
    shape = (-1,) + (1,) * (a.dim() - 1)
    return torch.where(flag.view(shape), a, b)


_GRIDS: dict[tuple[int, int, str], torch.Tensor] = {}


def _dihedral_grids(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(16, h * w) source pixel of every output pixel for each (hflip, vflip, turns)
    combination (index ``hflip + 2 * vflip + 4 * turns``), cached per size and device."""
    key = (h, w, str(device))
    grids = _GRIDS.get(key)
    if grids is None:
        base = torch.arange(h * w, device=device).view(h, w)
        out = []
        for turns in range(4):
            for vflip in (0, 1):
                for hflip in (0, 1):
                    g = base.flip(-1) if hflip else base
                    g = g.flip(-2) if vflip else g
                    g = torch.rot90(g, turns, (-2, -1)) if (turns and h == w) else g
                    out.append(g.reshape(-1))
        grids = torch.stack(out)  # built turns-major, then vflip, then hflip: the index above
        if len(_GRIDS) > 8:
            _GRIDS.clear()
        _GRIDS[key] = grids
    return grids


def _flips(x: torch.Tensor, y: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flips and quarter turns of each sample as one gather (a single pass over the batch,
    whatever the combination), then the brightness/contrast jitter."""
    n, c, h, w = x.shape
    turns = p[:, P_ROT].round().long() if h == w else torch.zeros_like(p[:, P_ROT], dtype=torch.long)
    combo = (p[:, P_HFLIP] > 0.5).long() + 2 * (p[:, P_VFLIP] > 0.5).long() + 4 * turns
    src = _dihedral_grids(h, w, x.device).index_select(0, combo)  # (n, h * w)
    x = x.reshape(n, c, h * w).gather(2, src[:, None, :].expand(n, c, h * w)).view(n, c, h, w)
    y = y.reshape(n, h * w).gather(1, src).view(n, h, w)
    scale = p[:, P_CONTRAST].view(-1, 1, 1, 1)
    shift = p[:, P_BRIGHT].view(-1, 1, 1, 1)
    return torch.addcmul(shift, x, scale), y


def _paper(x: torch.Tensor, y: torch.Tensor, p: torch.Tensor,
           cpu_params: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    h = p[:, P_HFLIP] > 0.5
    x, y = _select(h, x.flip(-1), x), _select(h, y.flip(-1), y)
    if cpu_params is not None:
        x, y = _scale_crop(x, y, cpu_params.detach().to("cpu").numpy())
    return gaussian_blur(x, p[:, P_SIGMA]), y


def _scale_crop(x: torch.Tensor, y: torch.Tensor, params: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each sample's short side by its factor, pad to the tile, crop back to it."""
    n, _, th, tw = x.shape
    xs, ys = [], []
    for i in range(n):
        s = float(params[i, P_SCALE])
        short = max(1, int(round(s * min(th, tw))))
        if th <= tw:
            nh, nw = short, max(1, int(round(tw * short / th)))
        else:
            nh, nw = max(1, int(round(th * short / tw))), short
        xi = F.interpolate(x[i : i + 1], size=(nh, nw), mode="bilinear", align_corners=False)
        yi = F.interpolate(y[i : i + 1, None].float(), size=(nh, nw), mode="nearest")[:, 0].to(y.dtype)
        ph, pw = max(0, th - nh), max(0, tw - nw)
        if ph or pw:
            xi = F.pad(xi, (0, pw, 0, ph), value=0.0)
            yi = F.pad(yi, (0, pw, 0, ph), value=IGNORE)
        oy = int(params[i, P_CROP_Y] * (xi.shape[-2] - th + 1)) if xi.shape[-2] > th else 0
        ox = int(params[i, P_CROP_X] * (xi.shape[-1] - tw + 1)) if xi.shape[-1] > tw else 0
        oy, ox = min(oy, xi.shape[-2] - th), min(ox, xi.shape[-1] - tw)
        xs.append(xi[..., oy : oy + th, ox : ox + tw])
        ys.append(yi[..., oy : oy + th, ox : ox + tw])
    return torch.cat(xs), torch.cat(ys)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample ``sigma`` (0: unchanged), on the device."""
    n, c, h, w = x.shape
    r = BLUR_RADIUS
    taps = torch.arange(-r, r + 1, device=x.device, dtype=torch.float32)
    s = sigma.float().view(-1, 1)
    safe = torch.clamp(s, min=1e-3)
    k = torch.exp(-0.5 * (taps / safe) ** 2)
    k = k / k.sum(1, keepdim=True)
    delta = (taps == 0).float().expand(n, -1)
    k = torch.where(s > 1e-3, k, delta).to(x.dtype)  # (n, taps)
    weight = k.repeat_interleave(c, 0)  # (n * c, taps)
    flat = x.reshape(1, n * c, h, w)
    flat = F.pad(flat, (r, r, r, r), mode="reflect" if min(h, w) > r else "replicate")
    flat = F.conv2d(flat, weight.view(n * c, 1, 1, -1), groups=n * c)
    flat = F.conv2d(flat, weight.view(n * c, 1, -1, 1), groups=n * c)
    return flat.view(n, c, h, w)


def imagenet_statistics(bands: int) -> tuple[list[float], list[float]]:
    """ImageNet mean/std in 0-255 units (``/255`` then standardise == one standardisation),
    cycled over the bands when there are not three."""
    mean = [0.485, 0.456, 0.406]
    std = [0.229, 0.224, 0.225]
    return ([255.0 * mean[i % 3] for i in range(bands)], [255.0 * std[i % 3] for i in range(bands)])

