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
CLOUD_MAX_FINE_TEXTURE = 1.2
"""A cloud core's largest fine texture (DN): the 2x2 mean, at the 128 px copy, of
|grey - 3x3 Gaussian blur| of the half-size grey (version 4)."""
CLOUD_MAX_WARMTH = 0.06
"""A cloud core's largest warmth (R - B) / max(R, G, B) (version 4)."""


_SQUARE3 = np.ones((3, 3), np.uint8)
_SQUARE7 = np.ones((7, 7), np.uint8)


_GREY_MAX_SPREAD = np.array([int(CLOUD_MAX_SATURATION * 20) * h // 20 for h in range(256)], np.uint8)
"""Per max DN: the largest max - min with (max - min) <= 0.15 * max (whole numbers: 20 * spread
<= 3 * max, as the float32 test decides)."""
_WARM_MAX_STEP = np.array([int(CLOUD_MAX_WARMTH * 50) * h // 50 for h in range(256)], np.uint8)
"""Per max DN: the largest R - B with (R - B) <= 0.06 * max (whole numbers: 50 * (R - B) <= 3 * max)."""


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
    # bare soil is warm (its reflectance rises from blue to red) and grainy at fine scale;
    # a cloud is spectrally flat and smooth: neither may seed a core (version 4)
    cv2.bitwise_and(core, cv2.compare(cv2.subtract(r, b), cv2.LUT(hi, _WARM_MAX_STEP), cv2.CMP_LE), dst=core)
    _keep_fine(tile, core)
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


def _keep_fine(tile: TileData, core: np.ndarray) -> None:
    """Clear the pixels of ``core`` (uint8 0/255 at the 128 px copy, changed in place) whose
    fine texture exceeds :data:`CLOUD_MAX_FINE_TEXTURE`: |grey - 3x3 Gaussian blur| of the
    half-size display grey (:attr:`TileData.half_grey`), area-reduced to ``core``'s size.
    Measured within the bounding box of ``core``'s pixels when the half-size grey is exactly
    twice its size (padded by a pixel for the blur: the same values as the whole plane's)."""
    if not cv2.countNonZero(core):
        return
    grey = tile.half_grey
    rows, cols = core.shape
    if grey.shape == (2 * rows, 2 * cols):
        x, y, w, h = cv2.boundingRect(core)
        r0, r1, c0, c1 = 2 * y, 2 * (y + h), 2 * x, 2 * (x + w)
        p0, p1, q0, q1 = max(r0 - 1, 0), min(r1 + 1, 2 * rows), max(c0 - 1, 0), min(c1 + 1, 2 * cols)
        part = grey[p0:p1, q0:q1].astype(np.float32)
        fine = cv2.absdiff(part, cv2.GaussianBlur(part, (3, 3), 0))[r0 - p0 : r1 - p0, c0 - q0 : c1 - q0]
        small = cv2.resize(fine, (w, h), interpolation=cv2.INTER_AREA)
        box = core[y : y + h, x : x + w]
        cv2.bitwise_and(box, cv2.compare(small, CLOUD_MAX_FINE_TEXTURE, cv2.CMP_LE), dst=box)  # type: ignore[call-overload]
        return
    plane = grey.astype(np.float32)
    fine = cv2.resize(cv2.absdiff(plane, cv2.GaussianBlur(plane, (3, 3), 0)), (cols, rows), interpolation=cv2.INTER_AREA)
    cv2.bitwise_and(core, cv2.compare(fine, CLOUD_MAX_FINE_TEXTURE, cv2.CMP_LE), dst=core)  # type: ignore[call-overload]


def cloud_mask(tile: TileData) -> tuple[np.ndarray, np.ndarray]:
    """(cloud, footprint) booleans at :data:`WORK_SIZE`; see :func:`cloud_fraction`."""
    cloud, foot = _cloud_u8(tile)
    return (np.zeros(foot.shape, bool) if cloud is None else cloud > 0), foot


def cloud_fraction(tile: TileData) -> float:
    """Share (0-1) of footprint pixels that look like cloud on the display-stretched RGB
    (128 px copy made by halving with 2x2 means: a 512 px tile's 4x4 means within 1 DN):
    mean brightness >= 175 DN, saturation (max-min)/max <= 0.15, and, for a cloud's core,
    texture (3x3 mean of |grey - 5x5 Gaussian|) <= 6 DN, fine texture (|grey - 3x3
    Gaussian| of the half-size grey, 2x2 means) <= 1.2 DN and warmth (R - B) / max <= 0.06;
    cores are cleaned by a 3x3 opening and grown 3 px over bright grey neighbours to recover
    soft cloud edges. Clouds are bright, grey, smooth and spectrally flat; forest, rock
    texture and bare soil (warm, grainy) are not. Version 3 (no fine texture or warmth test)
    counted pale landslide scars as cloud: Mengdong0201, a satellite tile, 0.222 (now 0.013)
    and a scar filling the tile up to 0.73, near the 0.80 rule; see docs/qc.md. Saturated
    or very smooth pale surfaces (snow, a flat white roof) still count."""
    cloud, foot = _cloud_u8(tile)
    n = foot.size if tile.full else np.count_nonzero(foot)
    return cv2.countNonZero(cloud) / n if n and cloud is not None else 0.0
