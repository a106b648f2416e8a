"""Per-tile QC detectors and their registry.

Each metric is a pure function of a :class:`TileData` (the tile's pixels, validity, mask and
sensor) returning one float, registered once in :data:`METRICS` with a name, a version and
a docstring. Bump ``version`` when a detector's definition changes: stored values with an
older version are recomputed on the next scan. See ``docs/qc.md`` for the calibration.

The detectors share derived arrays (fill mask, display RGB, a small RGB copy) through
:class:`TileData`'s cached properties, so each is computed once per tile.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import cv2
import numpy as np

from casdesk.core.raster.io import open_raster, read_window, to_display_rgb

# --------------------------------------------------------------------------- parameters
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
WORK_SIZE = 128
"""Cloud and seam detectors work on a copy resampled to this size (pixels): both look at
structures tens of pixels wide, and a small copy keeps the scan near disk speed."""
SEAM_SIZE = 96
"""The seam detector finds candidate lines on a copy resampled to this size."""
SEAM_ANGLES = 48
SEAM_SEGMENTS = 10
SEAM_MIN_SEGMENTS = 6
SEAM_STRIP = 3
SEAM_PROMINENCE = 9
SEAM_CANDIDATES = 5
SEAM_REFINE_DEG = 2.25
SEAM_REFINE_PX = 10
SEAM_REFINE_STRIP = 6
SEAM_PIECES = 16
SEAM_TEXTURE_MIN = 0.45
SEAM_MEDIAN = 2
SEAM_MIN_CHORD = 0.6
CLOUD_MIN_BRIGHT = 175.0
CLOUD_MAX_SATURATION = 0.15
CLOUD_MAX_TEXTURE = 6.0


@dataclass
class TileData:
    """One tile's pixels, as the detectors need them.

    ``data`` is (bands, rows, cols) in the file's dtype; ``valid`` is True where the dataset
    mask (nodata, alpha, internal mask, NaN) says the pixel holds data; ``has_mask`` tells
    whether the file declares such a mask at all; ``mask`` is the landslide mask (uint8 0/1)
    or None when the tile has no label.
    """

    data: np.ndarray
    valid: np.ndarray
    has_mask: bool = False
    mask: np.ndarray | None = None
    sensor: str | None = None
    fill_values: tuple[float, ...] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.data.shape[1]), int(self.data.shape[2])

    @cached_property
    def fill(self) -> np.ndarray:
        """Boolean (rows, cols): outside the scene footprint (see :func:`fill_mask`)."""
        return fill_mask(self.data, self.valid, self.has_mask, self.fill_values)

    @cached_property
    def footprint(self) -> np.ndarray:
        """Boolean (rows, cols): inside the scene footprint and valid."""
        return self.valid & ~self.fill

    @cached_property
    def rgb(self) -> np.ndarray:
        """Display-stretched 8-bit (rows, cols, 3) RGB, as :func:`to_display_rgb` shows it."""
        return to_display_rgb(self.data, self.footprint)

    @cached_property
    def small(self) -> tuple[np.ndarray, np.ndarray]:
        """(RGB float32 (s, s, 3), footprint bool (s, s)) at :data:`WORK_SIZE` (area mean)."""
        rows, cols = self.shape
        size = (min(WORK_SIZE, cols), min(WORK_SIZE, rows))
        rgb = cv2.resize(self.rgb, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        foot = cv2.resize(self.footprint.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA)
        return rgb, foot == 255


def load_tile(
    image_path: str | Path,
    mask_path: str | Path | None = None,
    sensor: str | None = None,
    fill_values: tuple[float, ...] | None = None,
) -> TileData:
    """Read a tile image (and its mask) into a :class:`TileData` (raises RasterError)."""
    with open_raster(image_path) as ds:
        flags = ds.mask_flag_enums[0] if ds.count else ()
        has_mask = any(f.name in ("per_dataset", "alpha", "nodata") for f in flags)
        has_mask |= np.issubdtype(np.dtype(ds.dtypes[0]), np.floating)
        data, valid = read_window(ds)
    mask = None
    if mask_path is not None and Path(mask_path).exists():
        with open_raster(mask_path) as mds:
            band = mds.read(1)
            ignore = band == mds.nodata if mds.nodata is not None else np.zeros(band.shape, bool)
            mask = ((band > 0) & ~ignore).astype(np.uint8)  # 255 (ignore) is not landslide
        if mask.shape != valid.shape:
            mask = None
    return TileData(data, valid, has_mask, mask, sensor, fill_values)


# --------------------------------------------------------------------------- fill
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
) -> np.ndarray:
    """Pixels outside the scene footprint.

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
            cand = (lo >= value) & (hi <= value)
            fill |= _fill_components(cand, rows, cols)
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
    hwc = cv2.merge([np.ascontiguousarray(b) for b in bands])
    for colour in dict.fromkeys(colours):
        lo = tuple(max(0, c - FILL_TOLERANCE) for c in colour)
        hi = tuple(min(255, c + FILL_TOLERANCE) for c in colour)
        cand = cv2.inRange(hwc, lo, hi)
        fill |= _fill_components(cand > 0, rows, cols)
    return fill


def _cloud_like(colour: tuple[int, int, int]) -> bool:
    hi, lo = max(colour), min(colour)
    return sum(colour) / 3 >= CLOUD_MIN_BRIGHT and hi - lo <= CLOUD_MAX_SATURATION * max(hi, 1)


_DISC = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))


def _fill_components(cand: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The fill part of a candidate (constant colour) mask; see :func:`fill_mask`."""
    out = np.zeros((rows, cols), bool)
    if not (cand[0].any() or cand[-1].any() or cand[:, 0].any() or cand[:, -1].any()):
        return out
    c8 = cand.astype(np.uint8)
    opened = cv2.morphologyEx(c8, cv2.MORPH_OPEN, _DISC, borderType=cv2.BORDER_REPLICATE)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    for lab in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[lab])
        if area < FILL_MIN_AREA or not (x == 0 or y == 0 or x + w == cols or y + h == rows):
            continue
        comp = labels == lab
        share, lines = _straight_edges(comp, rows, cols)
        if share >= FILL_STRAIGHT_SHARE:
            part = comp
        elif lines:
            part = np.zeros_like(comp)
            yy, xx = np.mgrid[0:rows, 0:cols]
            for (x0, y0), (x1, y1), side in lines:
                half = ((xx - x0) * (y1 - y0) - (yy - y0) * (x1 - x0)) * side >= 0
                part |= comp & half
        else:
            continue
        # the opening rounded the wedge's corners: grow back over the candidate colour
        grown = cv2.dilate(part.astype(np.uint8), _DISC).astype(bool)
        out |= grown & cand
    return out


def _straight_edges(comp: np.ndarray, rows: int, cols: int) -> tuple[float, list[tuple[tuple[float, float], tuple[float, float], int]]]:
    """(share of the region's inner boundary made of straight segments >= FILL_SEGMENT_PX,
    the segments >= FILL_LINE_PX as (start, end, side of the region))."""
    padded = np.pad(comp.astype(np.uint8), 1)
    contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return 0.0, []
    contour = max(contours, key=len)
    poly = cv2.approxPolyDP(contour, 1.5, True)[:, 0, :].astype(np.float64) - 1.0
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
        inside = 0 <= px < cols and 0 <= py < rows and bool(comp[py, px])
        lines.append(((x0, y0), (x1, y1), 1 if inside else -1))
    return share, lines


# --------------------------------------------------------------------------- metrics
def fill_fraction(tile: TileData) -> float:
    """Share (0-1) of the tile outside the scene footprint (nodata/mask, or straight-edged
    uniform black/white regions touching the border; see :func:`fill_mask`). Paper rule:
    reject above 0.30."""
    return float(tile.fill.mean())


def valid_fraction(tile: TileData) -> float:
    """Share (0-1) of pixels the file's own nodata/mask marks valid (16-bit and nodata
    scenes); 1.0 for a released CAS tile, which declares no mask."""
    return float(tile.valid.mean())


def label_fraction(tile: TileData) -> float:
    """Landslide pixels / pixels inside the footprint (0-1). NaN when the tile has no mask
    (unlabelled tiles are not judged by the label rule); 0 when the footprint is empty.
    Paper rule: reject below 0.001 (0.1 %)."""
    if tile.mask is None:
        return math.nan
    foot = tile.footprint
    n = int(foot.sum())
    return float((tile.mask.astype(bool) & foot).sum() / n) if n else 0.0


def cloud_mask(tile: TileData) -> tuple[np.ndarray, np.ndarray]:
    """(cloud, footprint) booleans at :data:`WORK_SIZE`; see :func:`cloud_fraction`."""
    rgb, foot = tile.small
    hi = rgb.max(axis=2)
    lo = rgb.min(axis=2)
    bright = rgb.mean(axis=2) >= CLOUD_MIN_BRIGHT
    grey = (hi - lo) <= CLOUD_MAX_SATURATION * np.maximum(hi, 1.0)
    lum = rgb.mean(axis=2)
    texture = cv2.blur(np.abs(lum - cv2.GaussianBlur(lum, (5, 5), 0)), (3, 3))
    core = (bright & grey & (texture <= CLOUD_MAX_TEXTURE) & foot).astype(np.uint8)
    core = cv2.morphologyEx(core, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    # the texture filter rejects a rim a few pixels wide at every cloud edge: grow the smooth
    # core back over bright grey neighbours
    cloud = cv2.dilate(core, np.ones((7, 7), np.uint8)).astype(bool) & bright & grey
    return cloud & foot, foot


def cloud_fraction(tile: TileData) -> float:
    """Share (0-1) of footprint pixels that look like cloud on the display-stretched RGB
    (128 px copy): mean brightness >= 175 DN, saturation (max-min)/max <= 0.15, and, for
    a cloud's core, texture (3x3 mean of |grey - 5x5 Gaussian|) <= 6 DN; cores are cleaned
    by a 3x3 opening and grown 3 px over bright grey neighbours to recover soft cloud
    edges. Clouds are bright, grey and smooth; forest, rock texture and coloured soil are
    not. Bright smooth bare soil or snow also counts (up to ~0.24 on the shared tiles), which
    is why the paper rule only rejects above 0.80 and only for satellite tiles."""
    cloud, foot = cloud_mask(tile)
    n = int(foot.sum())
    return float(cloud.sum() / n) if n else 0.0


@lru_cache(maxsize=4)
def _rotations(size: int, angles: int) -> tuple[int, list[np.ndarray]]:
    """(side of the rotated frame, affine matrices) turning a ``size`` square so that the
    rows of the rotated frame are lines at ``angles`` directions over 180 degrees."""
    out = int(math.ceil(size * math.sqrt(2))) + 2
    c = (size - 1) / 2
    mats = []
    for a in range(angles):
        # float64 already (asarray copies nothing); cv2's stubs type the matrix with integer dtypes too
        m = np.asarray(cv2.getRotationMatrix2D((c, c), 180.0 * a / angles, 1.0), dtype=np.float64)
        m[:, 2] += (out - size) / 2
        mats.append(m)
    return out, mats


def _coarse_seam(rgb: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, int]:
    """Candidate seam lines on the small copy: (score per (angle, boundary row), first row).

    Each rotation turns the lines of one direction into rows; every row is cut into
    :data:`SEAM_SEGMENTS` pieces (``cv2.resize`` INTER_AREA does the averaging). For each
    boundary row and piece: the step between the :data:`SEAM_STRIP` rows after and before it,
    kept only when the step between the strips beyond (the plateau) has the same sign, and
    minus the steps of the parallel lines :data:`SEAM_PROMINENCE` rows away (a regional
    change of content is not a line). The score is the lower 2-sigma bound of the mean step
    over the pieces, maximised over bands.
    """
    out, mats = _rotations(rgb.shape[0], SEAM_ANGLES)
    stack = np.dstack([rgb * ok[..., None], ok * 255]).astype(np.uint8)
    k = out // SEAM_SEGMENTS  # columns per segment; the frame's last few columns are corners
    seg = np.stack(
        [
            cv2.resize(
                cv2.warpAffine(stack, m, (out, out), flags=cv2.INTER_LINEAR)[:, : k * SEAM_SEGMENTS],
                (SEAM_SEGMENTS, out),
                interpolation=cv2.INTER_AREA,  # an integer factor: the fast block mean
            )
            for m in mats
        ]
    ).astype(np.float32)  # (angles, rows, segments, 4)
    seg[..., 3] /= 255.0
    w = SEAM_STRIP
    csum = np.concatenate([np.zeros_like(seg[:, :1]), np.cumsum(seg, axis=1)], axis=1)
    b = np.arange(3 * w, out - 3 * w + 1)

    first, last = int(b[0]), int(b[-1]) + 1

    def mean(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        s = csum[:, first + hi : last + hi] - csum[:, first + lo : last + lo]
        return s[..., :3] / np.maximum(s[..., 3:], 1e-3), s[..., 3]

    nb, wb = mean(-w, 0)
    na, wa = mean(0, w)
    good = (wb > 0.6 * w) & (wa > 0.6 * w)
    near = na - nb
    plat = np.where(good[..., None], near, 0.0)
    k = SEAM_PROMINENCE
    nbh = np.zeros_like(plat)
    nbh[:, k:-k] = 0.5 * (plat[:, : -2 * k] + plat[:, 2 * k :])
    step = plat - nbh
    n_valid = good.sum(axis=2)
    # median over the valid pieces (invalid ones pushed half to each end of the sort)
    big = np.float32(1e6)
    hi = np.sort(np.where(good[..., None], step, big), axis=2)
    lo = np.sort(np.where(good[..., None], step, -big), axis=2)
    mid = np.clip(n_valid // 2, 0, SEAM_SEGMENTS - 1)
    idx = mid[..., None, None]
    med = 0.5 * (np.take_along_axis(hi, idx, axis=2) + np.take_along_axis(lo, SEAM_SEGMENTS - 1 - idx, axis=2))[:, :, 0]
    score = np.abs(med)
    score[n_valid < SEAM_MIN_SEGMENTS] = 0.0
    return np.clip(score, 0, None).max(axis=2), int(b[0])


def _candidates(score: np.ndarray, k: int) -> list[tuple[int, int]]:
    """The ``k`` best (angle, row) cells, each suppressing its neighbourhood."""
    score = score.copy()
    out = []
    for _ in range(k):
        a, r = np.unravel_index(int(score.argmax()), score.shape)
        if score[a, r] <= 0:
            break
        out.append((int(a), int(r)))
        for da in range(-3, 4):
            score[(a + da) % score.shape[0], max(r - 4, 0) : r + 5] = 0.0
    return out


_CORRECTIONS = np.deg2rad(np.linspace(-SEAM_REFINE_DEG, SEAM_REFINE_DEG, 7))


def _refine_seam(src: np.ndarray, size: int, angle: int, row: float) -> tuple[float, float, float]:
    """Score one candidate line at full resolution: (DN, normal angle in degrees, offset).

    The line is re-fitted (7 angle corrections, +-:data:`SEAM_REFINE_PX` px shifts) and sampled
    as a strip across it (``cv2.warpAffine``), cut into :data:`SEAM_PIECES` pieces along it.
    Per piece and band: the step between the 6-px strips beside the line; the line's score
    is the lower 2-sigma bound of the mean step over the pieces, times a plateau gate (the
    step between the strips 6-18 px away must be at least 40-70 % of it: a road or a river
    bank is a line of its own, not a change of the whole side).
    """
    rows, cols = src.shape[:2]
    out, mats = _rotations(size, SEAM_ANGLES)
    inv = np.linalg.inv(np.vstack([mats[angle], [0.0, 0.0, 1.0]]))
    ends = (inv @ np.array([[0.0, row - 0.5, 1.0], [float(out), row - 0.5, 1.0]]).T).T[:, :2]
    scale = np.array([cols / size, rows / size])
    ends = (ends + 0.5) * scale - 0.5
    t0 = ends[1] - ends[0]
    t0 /= np.hypot(*t0)
    n0 = (inv @ np.array([0.0, 1.0, 0.0]))[:2] * scale
    corners = np.array([[0, 0], [cols - 1, 0], [0, rows - 1], [cols - 1, rows - 1]], float)
    u = (corners - ends[0]) @ t0
    centre = ends[0] + t0 * (u.min() + u.max()) / 2
    w, reach, half = SEAM_REFINE_STRIP, SEAM_REFINE_PX, SEAM_REFINE_PX + 3 * SEAM_REFINE_STRIP
    best = (0.0, 0.0, 0.0)
    for d in _CORRECTIONS:
        cs, sn = math.cos(d), math.sin(d)
        t = np.array([t0[0] * cs - t0[1] * sn, t0[0] * sn + t0[1] * cs])
        nrm = np.array([-t[1], t[0]])
        if float(nrm @ n0) < 0:
            nrm = -nrm
        u = (corners - centre) @ t
        u0, length = float(u.min()), int(u.max() - u.min())
        m = np.array(
            [
                [t[0], nrm[0], centre[0] + u0 * t[0] - half * nrm[0]],
                [t[1], nrm[1], centre[1] + u0 * t[1] - half * nrm[1]],
            ],
            dtype=np.float32,
        )
        strip = cv2.warpAffine(src, m, (length, 2 * half + 1), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        cols_ok = np.flatnonzero((strip[..., 3] == 255).all(axis=0))
        if cols_ok.size < SEAM_MIN_CHORD * min(rows, cols):
            continue
        c0, c1 = int(cols_ok[0]), int(cols_ok[-1]) + 1
        # pieces along the line (the valid run of a convex footprint is contiguous)
        k = (c1 - c0) // SEAM_PIECES
        prof = cv2.resize(  # integer factor: the fast block mean of each piece's columns
            strip[:, c0 : c0 + k * SEAM_PIECES, :3], (SEAM_PIECES, strip.shape[0]), interpolation=cv2.INTER_AREA
        ).astype(np.float32)  # (2*half+1, pieces, 3)
        csum = np.concatenate([np.zeros_like(prof[:1]), np.cumsum(prof, axis=0)])
        v = np.arange(half - reach, half + reach + 1)
        if SEAM_MEDIAN:
            g = SEAM_MEDIAN
            body = strip[:, c0 : c0 + k * SEAM_PIECES, :3].astype(np.float32)
            d = body[v + g] - body[v - g]  # (shifts, length, 3): pixel pairs across the line
            near = np.median(d.reshape(len(v), SEAM_PIECES, k, 3), axis=2)
        else:
            near = (csum[v + w] - csum[v]) / w - (csum[v] - csum[v - w]) / w  # (shifts, pieces, 3)
        mu = near.mean(axis=1)
        sd = near.std(axis=1, ddof=1)
        # the step must persist beyond the line: strips 1-2 and 2-3 strip widths away
        far1 = (csum[v + 2 * w] - csum[v + w]) / w - (csum[v - w] - csum[v - 2 * w]) / w
        far2 = (csum[v + 3 * w] - csum[v + 2 * w]) / w - (csum[v - 2 * w] - csum[v - 3 * w]) / w
        denom = np.where(np.abs(mu) > 1e-3, mu, 1e-3)
        plateau = np.clip(np.minimum(far1.mean(axis=1) / denom, far2.mean(axis=1) / denom), 0, 1)
        gate = np.clip((plateau - 0.4) / 0.3, 0, 1)
        score = (np.abs(mu) - 2.0 * sd / math.sqrt(SEAM_PIECES)) * gate
        i, band = np.unravel_index(int(score.argmax()), score.shape)
        if score[i, band] <= best[0]:
            continue
        # both sides must carry the same texture (a seam shifts one scene's tones; a river
        # bank or a forest edge joins two different surfaces)
        vi = int(v[i])
        grain = np.abs(np.diff(strip[:, c0:c1, band], axis=1))
        before = float(grain[vi - 3 * w : vi - w].mean())
        after = float(grain[vi + w : vi + 3 * w].mean())
        ratio = min(before, after) / max(before, after, 1e-3)
        score[i, band] *= float(np.clip((ratio - SEAM_TEXTURE_MIN) / 0.25, 0, 1))
        if score[i, band] > best[0]:
            normal = math.degrees(math.atan2(nrm[1], nrm[0])) % 180.0
            offset = float((centre + (v[i] - half) * nrm - [(cols - 1) / 2, (rows - 1) / 2]) @ nrm) / min(rows, cols)
            best = (float(score[i, band]), normal, offset)
    return best


def seam_profile(tile: TileData) -> tuple[float, float, float]:
    """(score in DN, line normal angle in degrees, signed offset from the centre as a
    fraction of the tile side) of the strongest seam; see :func:`seam_score`."""
    rows, cols = tile.shape
    size = min(SEAM_SIZE, rows, cols)
    if size < 32:
        return (0.0, 0.0, 0.0)
    inner = cv2.erode(tile.footprint.astype(np.uint8), np.ones((9, 9), np.uint8))
    ok = cv2.resize(inner * 255, (size, size), interpolation=cv2.INTER_AREA) == 255
    rgb = cv2.resize(tile.rgb, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    coarse, first = _coarse_seam(rgb, ok.astype(np.float32))
    best = (0.0, 0.0, 0.0)
    src = np.dstack([tile.rgb, inner * 255])
    for angle, r in _candidates(coarse, SEAM_CANDIDATES):
        found = _refine_seam(src, size, angle, float(r + first))
        if found[0] > best[0]:
            best = found
    return best


def seam_score(tile: TileData) -> float:
    """Strength of the strongest mosaic seam, in 8-bit DN of the display RGB: a straight
    line across the tile along which one side is brighter (or one colour band higher) by
    the same amount all along it. Candidates: on a 96 px copy, lines in 48 directions, each
    cut into 10 pieces; per piece the step between 3-px strips beside the line minus the
    steps of parallel lines 9 px away; the 5 lines with the largest median step go on. Each
    is re-fitted at full resolution (7 angle corrections, +-10 px) and cut into 16 pieces;
    per piece the median difference of pixel pairs 4 px apart across the line (robust to
    the texture crossing it); score = lower 2-sigma bound of the mean over pieces, gated by
    a plateau test (the step must persist 6-18 px away: roads and river banks do not) and a
    texture test (both sides must carry the same grain: a seam shifts one scene's tones, a
    forest edge joins two surfaces). Calibration and accuracy in docs/qc.md."""
    return seam_profile(tile)[0]


def blur_score(tile: TileData) -> float:
    """Variance of the Laplacian of the grey display image inside the footprint (DN^2);
    low means blurred or featureless. Informative only; no paper rule."""
    grey = cv2.cvtColor(tile.rgb, cv2.COLOR_RGB2GRAY)
    lap = cv2.Laplacian(grey, cv2.CV_16S, ksize=3)
    inner = cv2.erode(tile.footprint.astype(np.uint8), np.ones((3, 3), np.uint8))
    if not inner.any():
        return 0.0
    _, std = cv2.meanStdDev(lap, mask=inner)
    return float(std[0, 0] ** 2)


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Metric:
    """A registered QC metric: ``func(tile) -> float``; ``higher_is_worse`` orients plots and
    default rules; ``version`` invalidates stored values when the definition changes."""

    name: str
    version: int
    func: Callable[[TileData], float]
    doc: str
    higher_is_worse: bool
    label: str = ""
    range: tuple[float, float] = (0.0, 1.0)
    """Slider and histogram range in the GUI (values beyond it are shown at its ends)."""


METRICS: dict[str, Metric] = {}


def register_metric(
    name: str,
    version: int,
    higher_is_worse: bool,
    label: str = "",
    range: tuple[float, float] = (0.0, 1.0),  # noqa: A002 - the natural name here
) -> Callable[[Callable[[TileData], float]], Callable[[TileData], float]]:
    """Decorator adding a metric to :data:`METRICS` (adding a metric = one entry)."""

    def wrap(func: Callable[[TileData], float]) -> Callable[[TileData], float]:
        doc = " ".join((func.__doc__ or "").split())
        METRICS[name] = Metric(name, version, func, doc, higher_is_worse, label or name, range)
        return func

    return wrap


register_metric("fill_fraction", 2, True, "Fill fraction")(fill_fraction)
register_metric("label_fraction", 1, False, "Labelled fraction", (0.0, 0.02))(label_fraction)
register_metric("cloud_fraction", 2, True, "Cloud fraction")(cloud_fraction)
register_metric("seam_score", 3, True, "Seam score (DN)", (0.0, 60.0))(seam_score)
register_metric("blur_score", 1, False, "Sharpness (var. of Laplacian)", (0.0, 5000.0))(blur_score)
register_metric("valid_fraction", 1, False, "Valid fraction")(valid_fraction)
