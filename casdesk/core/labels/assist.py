"""Offline assisted labelling: GrabCut from a box or scribbles, magic-wand region growing,
and masks to polygons. No model needed; everything runs on the CPU in well under a second on
a 512 x 512 tile.

Images are (rows, cols, 3) uint8 RGB (the display array); polygons come back in the image's
pixel coordinates (x = column, y = row, pixel corners at integers), ready to be offset into
scene coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from affine import Affine
from shapely.geometry import Polygon

from casdesk.core.errors import LabelError
from casdesk.core.labels.io import mask_to_polygons

GRABCUT_ITERATIONS = 5
MAX_ASSIST_PIXELS = 4096 * 4096  # larger crops are downsampled before GrabCut


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise LabelError(f"assisted labelling needs an (H, W, 3) uint8 image, not {arr.shape} {arr.dtype}")
    return np.ascontiguousarray(arr)


def grabcut_box(
    rgb: np.ndarray, box: tuple[float, float, float, float], iterations: int = GRABCUT_ITERATIONS
) -> np.ndarray:
    """Foreground mask (uint8 0/1) of the object inside ``box`` = (x0, y0, x1, y1) pixels.

    Everything outside the box is background; GrabCut decides inside it from colour models.
    """
    import cv2

    img = _check_rgb(rgb)
    h, w = img.shape[:2]
    x0, x1 = sorted((int(np.floor(box[0])), int(np.ceil(box[2]))))
    y0, y1 = sorted((int(np.floor(box[1])), int(np.ceil(box[3]))))
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return np.zeros((h, w), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    rect = (x0, y0, x1 - x0, y1 - y0)
    if x0 == 0 and y0 == 0 and x1 == w and y1 == h:
        rect = (1, 1, w - 2, h - 2)  # GrabCut needs some background
    cv2.grabCut(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), mask, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    return np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)


def grabcut_scribbles(
    rgb: np.ndarray,
    foreground: np.ndarray,
    background: np.ndarray,
    iterations: int = GRABCUT_ITERATIONS,
) -> np.ndarray:
    """Foreground mask (uint8 0/1) from scribbles: boolean (H, W) arrays of pixels the user
    marked as certainly landslide / certainly not. Unmarked pixels start as probable
    background, so the result grows from the foreground strokes."""
    import cv2

    img = _check_rgb(rgb)
    fg, bg = np.asarray(foreground, bool), np.asarray(background, bool)
    if not fg.any():
        raise LabelError("GrabCut needs at least one foreground scribble")
    mask: np.ndarray = np.full(img.shape[:2], cv2.GC_PR_BGD, np.uint8)
    if not bg.any():  # no background strokes: treat the image border as background
        bg = np.zeros_like(fg)
        bg[0, :] = bg[-1, :] = bg[:, 0] = bg[:, -1] = True
    mask[bg] = cv2.GC_BGD
    mask[fg] = cv2.GC_FGD
    # grow a probable-foreground halo around the strokes so GrabCut has a starting model
    halo = cv2.dilate(fg.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool) & ~fg & ~bg
    mask[halo] = cv2.GC_PR_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), mask, None,  # type: ignore[call-overload]  # no rect with a mask
                bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    return np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)


def magic_wand(
    rgb: np.ndarray, seed: tuple[float, float], tolerance: float = 20.0, connectivity: int = 8
) -> np.ndarray:
    """Region grown from ``seed`` = (x, y): connected pixels whose colour differs from the
    seed colour by at most ``tolerance`` (0-255 per channel). uint8 0/1 mask."""
    import cv2

    img = _check_rgb(rgb)
    h, w = img.shape[:2]
    x, y = int(np.floor(seed[0])), int(np.floor(seed[1]))
    if not (0 <= x < w and 0 <= y < h):
        return np.zeros((h, w), np.uint8)
    smooth = cv2.GaussianBlur(img, (3, 3), 0)  # texture noise would stop the growth early
    flood = np.zeros((h + 2, w + 2), np.uint8)
    t = (float(tolerance),) * 3
    flags = connectivity | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    cv2.floodFill(smooth.copy(), flood, (x, y), (0, 0, 0), t, t, flags)
    return flood[1:-1, 1:-1].astype(np.uint8)


def mask_polygons(
    mask: np.ndarray,
    offset: tuple[float, float] = (0.0, 0.0),
    simplify: float = 0.7,
    min_area: float = 4.0,
    fill_holes_below: float = 0.0,
) -> list[Polygon]:
    """Polygons (with holes) of a 0/1 mask, in pixel coordinates shifted by ``offset`` =
    (x, y). ``simplify`` and ``min_area`` are in pixels / square pixels; holes smaller than
    ``fill_holes_below`` square pixels are filled (speckle inside a scar)."""
    transform = Affine.translation(float(offset[0]), float(offset[1]))
    polys = mask_to_polygons(np.asarray(mask), transform, min_area=min_area, simplify=simplify)
    if fill_holes_below > 0:
        polys = [
            Polygon(p.exterior, [h for h in p.interiors if Polygon(h).area >= fill_holes_below])
            for p in polys
        ]
    return polys


def largest_polygon(polys: Sequence[Polygon]) -> Polygon | None:
    return max(polys, key=lambda p: p.area) if polys else None
