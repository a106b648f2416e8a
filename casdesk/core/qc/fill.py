"""Boundary fill: the pixels outside the scene footprint (see :func:`fill_mask`)."""

from __future__ import annotations

import cv2
import numpy as np

from casdesk.core.qc.cloud import CLOUD_MAX_SATURATION, CLOUD_MIN_BRIGHT

FILL_TOLERANCE = 2
"""A pixel is "uniform fill" when every band is within this many 8-bit DN of the fill value
(lossy compression leaves a little noise in a white or black border)."""
FILL_MIN_AREA = 32
"""Border-connected uniform regions smaller than this (pixels) are ignored."""
FILL_SEGMENT_PX = 16.0
"""Boundary segments at least this long (pixels) count as straight footprint edges."""
FILL_STRAIGHT_SHARE = 0.6
"""A uniform region is fill when this share of its inner boundary is long straight segments.
A scene footprint edge is straight (or a few straight pieces); shadows and scars are not."""
FILL_LINE_PX = 48.0
"""A straight boundary segment at least this long (pixels) is a footprint edge even when the
rest of the region's boundary is ragged (a wedge merged with a shadow): the region is cut
along it."""
FILL_MIN_BORDER = 24
"""A colour must hold at least this many tile-border pixels to be a fill candidate."""


def default_fill_values(dtype: np.dtype) -> tuple[float, ...]:
    """Uniform values that mark fill when a file declares no nodata: 0 and the dtype's max
    (pure black and pure white for uint8)."""
    if np.issubdtype(dtype, np.integer):
        return (0.0, float(np.iinfo(dtype).max))
    return (0.0,)


def fill_mask(
    data: np.ndarray,
    valid: np.ndarray,
    has_mask: bool,
    fill_values: tuple[float, ...] | None = None,
    hwc: np.ndarray | None = None,
) -> np.ndarray:
    """Pixels outside the scene footprint.

    ``hwc``: the same uint8 bands as (rows, cols, 3), when the caller has them already.

    When the file declares nodata / a mask, that is the answer (``~valid``). Otherwise fill
    is a region of one constant colour that touches the tile border and is bounded inside
    the tile by long straight lines, whatever lies next to it:

    1. candidate colours: every colour held by at least :data:`FILL_MIN_BORDER` border
       pixels (white, black, or any fixed value), plus ``fill_values`` when given;
    2. pixels within :data:`FILL_TOLERANCE` of such a colour, opened with a
       :data:`FILL_OPEN_PX` disc: speckled saturated scars and shadows (real terrain is
       never perfectly flat) fall apart, a painted wedge stays whole;
    3. each border-touching component whose inner boundary is mostly long straight
       segments is fill; a component with some long straight edges and some ragged ones
       (a fill wedge merged with a dark shadow or a saturated scar) keeps only its part on
       the fill side of the straight edges.
    """
    if has_mask:
        return ~valid
    rows, cols = valid.shape
    fill = ~valid
    if data.dtype != np.uint8:
        lo = data.min(axis=0)
        hi = data.max(axis=0)
        values = fill_values if fill_values is not None else default_fill_values(data.dtype)
        for value in values:
            part = _fill_components((lo >= value) & (hi <= value), rows, cols)
            if part is not None:
                fill |= part
        return fill
    bands = data[:3] if data.shape[0] >= 3 else np.repeat(data[:1], 3, axis=0)
    border = np.concatenate([bands[:, 0, :], bands[:, -1, :], bands[:, :, 0], bands[:, :, -1]], axis=1)
    keys = (border[0].astype(np.int32) << 16) | (border[1].astype(np.int32) << 8) | border[2].astype(np.int32)
    uniq, counts = np.unique(keys, return_counts=True)
    colours = [(int(k) >> 16, (int(k) >> 8) & 255, int(k) & 255) for k in uniq[counts >= FILL_MIN_BORDER]]
    # a flat bright grey other than pure white is a synthetic or saturated cloud, not fill
    colours = [c for c in colours if min(c) == max(c) == 255 or not _cloud_like(c)]
    for value in fill_values or ():
        colours.append((int(value),) * 3)
    if not colours:
        return fill
    if hwc is None:
        hwc = cv2.merge([np.ascontiguousarray(b) for b in bands])
    for colour in dict.fromkeys(colours):
        lo = tuple(max(0, c - FILL_TOLERANCE) for c in colour)
        hi = tuple(min(255, c + FILL_TOLERANCE) for c in colour)
        cand = cv2.inRange(hwc, lo, hi)
        part = _fill_components(cand, rows, cols)
        if part is not None:
            fill |= part
    return fill


def _cloud_like(colour: tuple[int, int, int]) -> bool:
    hi, lo = max(colour), min(colour)
    return sum(colour) / 3 >= CLOUD_MIN_BRIGHT and hi - lo <= CLOUD_MAX_SATURATION * max(hi, 1)


_DISC = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
_DISC_R = 4
_DISC_AREA = int(_DISC.sum())


def _fill_components(cand: np.ndarray, rows: int, cols: int) -> np.ndarray | None:
    """The fill part of a candidate (constant colour, uint8 0/255 or bool) mask, None when
    there is none; see :func:`fill_mask`."""
    if cand.dtype == np.bool_:
        cand = cand.view(np.uint8)
    if not (cand[0].any() or cand[-1].any() or cand[:, 0].any() or cand[:, -1].any()):
        return None
    if cv2.countNonZero(cand) < FILL_MIN_AREA:
        return None  # no component can reach the minimum area
    opened = cv2.morphologyEx(cand, cv2.MORPH_OPEN, _DISC, borderType=cv2.BORDER_REPLICATE)
    if not (opened[0].any() or opened[-1].any() or opened[:, 0].any() or opened[:, -1].any()):
        return None  # nothing left touches the tile border
    # every component holds a whole disc, so 16-bit labels suffice below 65535 discs (and
    # OpenCV's statistics are several times faster with them)
    ltype = cv2.CV_16U if rows * cols < 65000 * _DISC_AREA else cv2.CV_32S
    n, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8, ltype=ltype)
    out: np.ndarray | None = None
    for lab in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[lab])
        if area < FILL_MIN_AREA or not (x == 0 or y == 0 or x + w == cols or y + h == rows):
            continue
        comp = labels[y : y + h, x : x + w] == lab  # the component within its bounding box
        share, lines = _straight_edges(comp, x, y, rows, cols)
        if share >= FILL_STRAIGHT_SHARE:
            part = comp
        elif lines:
            part = np.zeros_like(comp)
            yy = np.arange(y, y + h)[:, None]
            xx = np.arange(x, x + w)[None, :]
            for (x0, y0), (x1, y1), side in lines:
                half = ((xx - x0) * (y1 - y0) - (yy - y0) * (x1 - x0)) * side >= 0
                part |= comp & half
        else:
            continue
        # the opening rounded the wedge's corners: grow back over the candidate colour
        # (within the bounding box plus the disc's radius)
        x0, y0 = max(0, x - _DISC_R), max(0, y - _DISC_R)
        x1, y1 = min(cols, x + w + _DISC_R), min(rows, y + h + _DISC_R)
        box = np.zeros((y1 - y0, x1 - x0), np.uint8)
        box[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = part
        grown = cv2.dilate(box, _DISC)
        if out is None:
            out = np.zeros((rows, cols), bool)
        out[y0:y1, x0:x1] |= (grown > 0) & (cand[y0:y1, x0:x1] > 0)
    return out


def _straight_edges(
    comp: np.ndarray, x: int, y: int, rows: int, cols: int
) -> tuple[float, list[tuple[tuple[float, float], tuple[float, float], int]]]:
    """(share of the region's inner boundary made of straight segments >= FILL_SEGMENT_PX,
    the segments >= FILL_LINE_PX as (start, end, side of the region)); ``comp`` is the
    region within its bounding box, whose top left corner is (``x``, ``y``) in the tile."""
    padded = cv2.copyMakeBorder(comp.view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return 0.0, []
    contour = max(contours, key=len)
    poly = cv2.approxPolyDP(contour, 1.5, True)[:, 0, :].astype(np.float64) + (x - 1.0, y - 1.0)
    if len(poly) < 2:
        return 1.0, []
    nxt = np.roll(poly, -1, axis=0)
    lengths = np.hypot(*(nxt - poly).T)
    mid = (poly + nxt) / 2
    on_border = (mid[:, 0] <= 0.5) | (mid[:, 1] <= 0.5) | (mid[:, 0] >= cols - 1.5) | (mid[:, 1] >= rows - 1.5)
    inner = lengths[~on_border]
    total = inner.sum()
    if total < 1.0:
        return 1.0, []  # the region fills the tile or only runs along its border
    share = float(inner[inner >= FILL_SEGMENT_PX].sum() / total)
    lines = []
    for i in np.flatnonzero(~on_border & (lengths >= FILL_LINE_PX)):
        (x0, y0), (x1, y1) = poly[i], nxt[i]
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        nx, ny = (y1 - y0) / lengths[i], -(x1 - x0) / lengths[i]
        px, py = int(round(mx + 4 * nx)), int(round(my + 4 * ny))
        inside = 0 <= px - x < comp.shape[1] and 0 <= py - y < comp.shape[0] and bool(comp[py - y, px - x])
        lines.append(((x0, y0), (x1, y1), 1 if inside else -1))
    return share, lines
