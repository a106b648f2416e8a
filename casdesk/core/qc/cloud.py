"""Cloud cover: bright, neutral, smooth pixels of the display RGB (see :func:`cloud_fraction`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from casdesk.core.qc.detectors import TileData

CLOUD_MIN_BRIGHT = 175.0
CLOUD_MAX_SATURATION = 0.15
CLOUD_MAX_TEXTURE = 6.0


_SQUARE3 = np.ones((3, 3), np.uint8)
_SQUARE7 = np.ones((7, 7), np.uint8)


_GREY_MAX_SPREAD = np.array([int(CLOUD_MAX_SATURATION * 20) * h // 20 for h in range(256)], np.uint8)
"""Per max DN: the largest max - min with (max - min) <= 0.15 * max (whole numbers: 20 * spread
<= 3 * max, as the float32 test decides)."""


def _cloud_u8(tile: TileData) -> tuple[np.ndarray | None, np.ndarray]:
    """(cloud uint8 0/255 at :data:`WORK_SIZE` or None when no pixel is bright and grey,
    footprint bool); the tests on whole-number DN in 8 and 16 bits, the texture in float32
    as before (the same pixels as version 3's float planes)."""
    small, foot = tile.small_stacked, tile.small_foot
    h = foot.shape[0]
    r, g, b = small[:h], small[h : 2 * h], small[2 * h :]
    hi = cv2.max(cv2.max(r, g), b)
    lo = cv2.min(cv2.min(r, g), b)
    total = cv2.add(cv2.add(r, g, dtype=cv2.CV_16U), b, dtype=cv2.CV_16U)
    bright = cv2.compare(total, 3 * CLOUD_MIN_BRIGHT, cv2.CMP_GE)  # type: ignore[call-overload]  # sum >= 525
    grey = cv2.compare(cv2.subtract(hi, lo), cv2.LUT(hi, _GREY_MAX_SPREAD), cv2.CMP_LE)
    bright_grey = cv2.bitwise_and(bright, grey)
    if not cv2.countNonZero(bright_grey):
        return None, foot  # no bright neutral pixel: no cloud (the common case)
    lum = total.astype(np.float32)
    lum /= np.float32(3.0)  # whole numbers / 3 in float32, as (r + g + b) / 3 of the float planes
    texture = cv2.blur(cv2.absdiff(lum, cv2.GaussianBlur(lum, (5, 5), 0)), (3, 3))
    smooth = cv2.compare(texture, CLOUD_MAX_TEXTURE, cv2.CMP_LE)  # type: ignore[call-overload]
    core = cv2.bitwise_and(bright_grey, smooth)
    foot8 = None if tile.full else foot.view(np.uint8) * np.uint8(255)
    if foot8 is not None:
        cv2.bitwise_and(core, foot8, dst=core)
    core = cv2.morphologyEx(core, cv2.MORPH_OPEN, _SQUARE3)
    # the texture filter rejects a rim a few pixels wide at every cloud edge: grow the smooth
    # core back over bright grey neighbours
    cloud = cv2.bitwise_and(cv2.dilate(core, _SQUARE7), bright_grey)
    if foot8 is not None:
        cv2.bitwise_and(cloud, foot8, dst=cloud)
    return cloud, foot


def cloud_mask(tile: TileData) -> tuple[np.ndarray, np.ndarray]:
    """(cloud, footprint) booleans at :data:`WORK_SIZE`; see :func:`cloud_fraction`."""
    cloud, foot = _cloud_u8(tile)
    return (np.zeros(foot.shape, bool) if cloud is None else cloud > 0), foot


def cloud_fraction(tile: TileData) -> float:
    """Share (0-1) of footprint pixels that look like cloud on the display-stretched RGB
    (128 px copy made by halving with 2x2 means: a 512 px tile's 4x4 means within 1 DN):
    mean brightness >= 175 DN, saturation (max-min)/max <= 0.15, and, for a cloud's core,
    texture (3x3 mean of |grey - 5x5 Gaussian|) <= 6 DN; cores are cleaned by a 3x3
    opening and grown 3 px over bright grey neighbours to recover soft cloud edges. Clouds
    are bright, grey and smooth; forest, rock texture and coloured soil are not. Bright
    smooth bare soil or snow also counts (up to ~0.24 on the shared tiles), which is why
    the paper rule only rejects above 0.80 and only for satellite tiles."""
    cloud, foot = _cloud_u8(tile)
    n = foot.size if tile.full else np.count_nonzero(foot)
    return cv2.countNonZero(cloud) / n if n and cloud is not None else 0.0
