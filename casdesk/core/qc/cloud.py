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


def cloud_mask(tile: TileData) -> tuple[np.ndarray, np.ndarray]:
    """(cloud, footprint) booleans at :data:`WORK_SIZE`; see :func:`cloud_fraction`."""
    (r, g, b), foot = tile.small_planes
    hi = np.maximum(np.maximum(r, g), b)
    lo = np.minimum(np.minimum(r, g), b)
    lum = (r + g + b) / np.float32(3.0)  # the values are whole numbers: exact sums
    bright = lum >= CLOUD_MIN_BRIGHT
    grey = (hi - lo) <= CLOUD_MAX_SATURATION * np.maximum(hi, np.float32(1.0))
    bright_grey = bright & grey
    if not bright_grey.any():
        return bright_grey, foot  # no bright neutral pixel: no cloud (the common case)
    texture = cv2.blur(cv2.absdiff(lum, cv2.GaussianBlur(lum, (5, 5), 0)), (3, 3))
    core = (bright_grey & (texture <= CLOUD_MAX_TEXTURE) & foot).view(np.uint8)
    core = cv2.morphologyEx(core, cv2.MORPH_OPEN, _SQUARE3)
    # the texture filter rejects a rim a few pixels wide at every cloud edge: grow the smooth
    # core back over bright grey neighbours
    cloud = cv2.dilate(core, _SQUARE7).view(bool) & bright_grey
    return cloud & foot, foot


def cloud_fraction(tile: TileData) -> float:
    """Share (0-1) of footprint pixels that look like cloud on the display-stretched RGB
    (128 px copy made by halving with 2x2 means: a 512 px tile's 4x4 means within 1 DN):
    mean brightness >= 175 DN, saturation (max-min)/max <= 0.15, and, for a cloud's core,
    texture (3x3 mean of |grey - 5x5 Gaussian|) <= 6 DN; cores are cleaned by a 3x3
    opening and grown 3 px over bright grey neighbours to recover soft cloud edges. Clouds
    are bright, grey and smooth; forest, rock texture and coloured soil are not. Bright
    smooth bare soil or snow also counts (up to ~0.24 on the shared tiles), which is why
    the paper rule only rejects above 0.80 and only for satellite tiles."""
    cloud, foot = cloud_mask(tile)
    n = np.count_nonzero(foot)
    return np.count_nonzero(cloud) / n if n else 0.0
