"""Mosaic seams: the strongest straight line along which one side is brighter (or one
colour band higher) by the same amount all along it, or content duplicated by a displaced
scene (see :func:`seam_score` and :mod:`~casdesk.core.qc.seam_dup`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import cv2
import numpy as np

from casdesk.core.qc.seam_dup import analyse

if TYPE_CHECKING:
    from casdesk.core.qc.detectors import TileData

SEAM_SIZE = 96
"""The seam detector finds candidate lines on a copy resampled to this size."""
SEAM_ANGLES = 48
SEAM_SEGMENTS = 10
SEAM_MIN_SEGMENTS = 6
SEAM_STRIP = 3
SEAM_PROMINENCE = 9
SEAM_CANDIDATES = 3
"""Candidate lines re-fitted on the RGB bands: the best of the grey plane's coarse scores
(median step over the pieces) ..."""
SEAM_STEADY_CANDIDATES = 0
"""... and this many more: the best of the grey plane's *steady* scores (the mean of the
pieces' steps clipped to +-:data:`SEAM_CLIP`): a seam steps the same in every piece, while
natural lines of 40-180 DN strong in parts outrank a 40 DN seam by their median. 0 since
version 13: 2 + 1 instead of 3 + 0 candidates caught 40 DN brightness seams 18 / 16 of 22
instead of 15 / 14 on seeds 16 / 17 (severe seams 60.8 / 59.1 % against 59.7 / 58.0 %), but
its steadiest line scored the released tile Palu0117 27.4-28.5 in 4 of its 8 rotations and
mirror images (rejected; 19.3-19.6 with 3 + 0), a tile the authors kept."""
SEAM_CLIP = 24.0
"""Clip (DN) of a piece's coarse step in the steady score."""
SEAM_REFINE_DEG = 3.375
"""Angle corrections reach 0.9 of the coarse step (3.75 degrees): the best coarse cell of a
seam is often its neighbour direction."""
SEAM_REFINE_ANGLES = 5
"""Angle corrections tried per candidate line, over +-:data:`SEAM_REFINE_DEG` (1.69 degrees
apart: the line fit of :func:`_fit_line` takes up what is left)."""
SEAM_REFINE_PX = 10
SEAM_REFINE_STRIP = 6
SEAM_PIECES = 16
SEAM_TEXTURE_MIN = 0.45
SEAM_MEDIAN = 2
"""Pixel pairs across the line are 2 x this apart (4 px)."""
SEAM_FIT_WINDOW = 6
"""Where a piece's step is looked for around the best re-fitted line (px): a line 0.85
degrees (half a correction step) off a straight seam is 5.3 px from it 360 px away."""
SEAM_FIT_TOL = 1.5
"""Pieces whose step lies further than this (px) from the fitted line are dropped from the fit."""
SEAM_MIN_CHORD = 0.6
SEAM_CHROMA_CANDIDATES = 1
"""Candidate lines re-fitted on the colour-difference planes, per plane (R - G, B - G): a
shift of R is a step in R - G alone, one of B in B - G alone, so a strong line of one plane
must not take the other's place (2 from the larger of the two caught 0.6 % fewer)."""
SEAM_CHROMA = 1.25
"""Weight of a step in a colour-difference plane (DN) against one in a band: the planes hold
little of the scene's texture (the bands' shared brightness cancels), so their chance lines
are weaker (released tiles <= 7.5 DN but Palu0117's real seam) and a one-band shift of c DN
is a clean step of c DN in them."""
_PLANES = np.array([[1 / 3, 1 / 3, 1 / 3, 0.0], [1.0, -1.0, 0.0, 128.0], [0.0, -1.0, 1.0, 128.0]], np.float32)
"""(grey, R - G + 128, B - G + 128) from RGB (``cv2.transform``: rounded, saturated to uint8)."""
_CHROMA_SRC = np.array([[1.0, -1.0, 0.0, 128.0], [0.0, -1.0, 1.0, 128.0], [0.0, 0.0, 0.0, 255.0]], np.float32)
"""(R - G + 128, B - G + 128, 255): the colour-difference planes with a full footprint plane."""


SEAM_DUP_DN = 2000.0
"""DN of seam score per unit of duplicated share (:func:`~casdesk.core.qc.seam_dup.duplication_share`):
a share of 0.00725 reaches the 14.5 DN flag line of the default rule, 0.01325 its 26.5 DN
reject line (released tiles <= 0.0021, traps <= 0.005)."""
SEAM_COPY_DN = 12000.0
"""DN of seam score per unit of copied share (:func:`~casdesk.core.qc.seam_dup.analyse`):
a share of 0.00121 reaches the 14.5 DN flag line, 0.00221 the 26.5 DN reject line
(released tiles and traps 0: no lag repeats; at their own strongest autocorrelation peaks
<= 0.0006; a displaced scene's copied band 0.001-0.07)."""


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


def _coarse_seam(rgb: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Candidate seam lines on the small copy: (median score per (angle, boundary row,
    plane), steady score of the grey plane per (angle, boundary row), first row).

    Each rotation turns the lines of one direction into rows; every row is cut into
    :data:`SEAM_SEGMENTS` pieces (``cv2.resize`` INTER_AREA does the averaging). For each
    boundary row and piece: the step between the :data:`SEAM_STRIP` rows after and before it,
    kept only when the step between the strips beyond (the plateau) has the same sign, and
    minus the steps of the parallel lines :data:`SEAM_PROMINENCE` rows away (a regional
    change of content is not a line). The score is the median step over the pieces, per
    plane; the steady score the mean of the grey plane's steps clipped to +-:data:`SEAM_CLIP`.
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
    ).astype(np.float32)  # (angles, rows, segments, planes + 1)
    seg[..., -1] /= 255.0
    w = SEAM_STRIP
    csum = np.concatenate([np.zeros_like(seg[:, :1]), np.cumsum(seg, axis=1)], axis=1)
    b = np.arange(3 * w, out - 3 * w + 1)

    first, last = int(b[0]), int(b[-1]) + 1

    def mean(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        s = csum[:, first + hi : last + hi] - csum[:, first + lo : last + lo]
        return s[..., :-1] / np.maximum(s[..., -1:], 1e-3), s[..., -1]

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
    # median over the valid pieces (invalid ones sorted to the end)
    srt = np.sort(np.where(good[..., None], step, np.float32(1e6)), axis=2)
    upper = np.clip(n_valid // 2, 0, SEAM_SEGMENTS - 1)[..., None, None]
    lower = np.clip(n_valid - 1 - n_valid // 2, 0, SEAM_SEGMENTS - 1)[..., None, None]
    med = 0.5 * (np.take_along_axis(srt, upper, axis=2) + np.take_along_axis(srt, lower, axis=2))[:, :, 0]
    score = np.abs(med)
    score[n_valid < SEAM_MIN_SEGMENTS] = 0.0
    # consistency: the mean of the pieces' steps clipped to +-SEAM_CLIP (a seam steps the
    # same in every piece; a natural line is strong in parts)
    grey = np.clip(step[..., 0], -SEAM_CLIP, SEAM_CLIP)
    grey *= good
    steady = np.abs(grey.sum(axis=2)) / np.maximum(n_valid, 1)
    steady[n_valid < SEAM_MIN_SEGMENTS] = 0.0
    return np.clip(score, 0, None), steady, int(b[0])


def _candidates(score: np.ndarray, k: int, taken: list[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
    """The ``k`` best (angle, row) cells, each suppressing its neighbourhood (and that of
    the cells already ``taken``)."""
    score = score.copy()
    for a0, r0 in taken or []:
        for da in range(-3, 4):
            score[(a0 + da) % score.shape[0], max(r0 - 4, 0) : r0 + 5] = 0.0
    out = []
    for _ in range(k):
        a, r = np.unravel_index(int(score.argmax()), score.shape)
        if score[a, r] <= 0:
            break
        out.append((int(a), int(r)))
        for da in range(-3, 4):
            score[(a + da) % score.shape[0], max(r - 4, 0) : r + 5] = 0.0
    return out


def _piece_medians(d: np.ndarray, k: int) -> np.ndarray:
    """Median of each run of ``k`` pairs along axis 1 of ``d`` (shifts, pieces * k, bands),
    as float32 (shifts, pieces, bands): the value ``np.median`` gives, computed on the
    integer differences with one in-place partition of a contiguous copy (about three times
    cheaper than ``np.median`` over a middle axis of floats)."""
    shifts, _, bands = d.shape
    runs = np.ascontiguousarray(d.reshape(shifts, -1, k, bands).transpose(0, 1, 3, 2))
    mid = k // 2
    if k % 2:
        runs.partition(mid, axis=-1)
        return runs[..., mid].astype(np.float32)
    runs.partition((mid - 1, mid), axis=-1)
    return (runs[..., mid - 1].astype(np.float32) + runs[..., mid]) * np.float32(0.5)


_CORRECTIONS = np.deg2rad(np.linspace(-SEAM_REFINE_DEG, SEAM_REFINE_DEG, SEAM_REFINE_ANGLES))


def _refine_seam(
    src: np.ndarray, size: int, angle: int, row: float, weight: float = 1.0
) -> tuple[float, float, float]:
    """Score one candidate line at full resolution: (DN, normal angle in degrees, offset).

    The line is re-fitted (5 angle corrections over +-3.375 degrees, +-:data:`SEAM_REFINE_PX`
    px shifts, see :func:`_line_score`), then scored once more along the straight line
    fitted to where each piece's step lies (:func:`_fit_line`). Half a degree off, a line
    drifts 3 px from a straight seam at the ends of the tile, which spoils the 4 px pair
    differences there (a 15 DN colour seam scored 2 from the neighbouring coarse direction
    and 16 on its line).
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
    best = (0.0, 0.0, 0.0)
    keep: _Pieces | None = None
    for d in _CORRECTIONS:
        cs, sn = math.cos(d), math.sin(d)
        t = np.array([t0[0] * cs - t0[1] * sn, t0[0] * sn + t0[1] * cs])
        found = _line_score(src, t, n0, centre, corners, weight, floor=best[0])
        if found is not None and found[0][0] > best[0]:
            best, keep = found
    if keep is not None:
        line = _fit_line(keep)
        if line is not None:
            found = _line_score(src, line[0], n0, line[1], corners, weight, best[0])
            if found is not None and found[0][0] > best[0]:
                best = found[0]
    return best


_Pieces = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""(direction, normal, centre, per piece: the step's position across the line in px, the
piece's position along it, whether its step is clear) of a scored line."""


def _fit_line(pieces: _Pieces) -> tuple[np.ndarray, np.ndarray] | None:
    """(direction, a point) of the straight line through the pieces' step positions (least
    squares, twice dropping pieces more than :data:`SEAM_FIT_TOL` px off), or None when
    fewer than half the pieces hold a clear step."""
    t, nrm, centre, pos, along, clear = pieces
    ok = clear.copy()
    for _ in range(2):
        if ok.sum() < SEAM_PIECES // 2:
            return None
        mid = float(along[ok].mean())
        slope, at = np.polyfit(along[ok] - mid, pos[ok], 1)
        ok &= np.abs(pos - (at + slope * (along - mid))) <= SEAM_FIT_TOL
    if ok.sum() < SEAM_PIECES // 2 or abs(slope) >= 0.1:
        return None
    direction = t + slope * nrm
    return direction / np.hypot(*direction), centre + mid * t + at * nrm


def _grain(rows: np.ndarray) -> float:
    """Mean along-line difference of neighbouring uint8 pixels, as uint8 (a negative
    difference wraps to 256 minus it: the texture gate was calibrated so)."""
    return float(np.abs(np.diff(rows, axis=1)).mean())


def _line_score(
    src: np.ndarray,
    t: np.ndarray,
    n0: np.ndarray,
    centre: np.ndarray,
    corners: np.ndarray,
    weight: float,
    floor: float = 0.0,
) -> tuple[tuple[float, float, float], _Pieces] | None:
    """Score the line through ``centre`` along ``t`` (and its parallels up to
    :data:`SEAM_REFINE_PX` px away): ((DN, normal angle in degrees, offset), the pieces' step positions), or None
    where the tile's chord along it is too short or nothing steps.

    The line is sampled as a strip across it (``cv2.warpAffine``), cut into
    :data:`SEAM_PIECES` pieces along it. Per piece and band: the median difference of pixel
    pairs 4 px apart across the line; the line's score is the lower 2-sigma bound of the
    mean step over the pieces, times a plateau gate (the step between the strips 6-18 px
    away must be at least 40-70 % of it: a road or a river bank is a line of its own, not a
    change of the whole side) and a texture gate (both sides must carry the same grain).
    """
    rows, cols = src.shape[:2]
    w, reach = SEAM_REFINE_STRIP, SEAM_REFINE_PX
    half = reach + 3 * w
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
    cols_ok = np.flatnonzero((strip[..., -1] == 255).all(axis=0))
    if cols_ok.size < SEAM_MIN_CHORD * min(rows, cols):
        return None
    c0, c1 = int(cols_ok[0]), int(cols_ok[-1]) + 1
    # pieces along the line (the valid run of a convex footprint is contiguous)
    k = (c1 - c0) // SEAM_PIECES
    prof = cv2.resize(  # integer factor: the fast block mean of each piece's columns
        strip[:, c0 : c0 + k * SEAM_PIECES, :-1], (SEAM_PIECES, strip.shape[0]), interpolation=cv2.INTER_AREA
    ).astype(np.float32)  # (2*half+1, pieces, planes)
    csum = np.concatenate([np.zeros_like(prof[:1]), np.cumsum(prof, axis=0)])
    v = np.arange(half - reach, half + reach + 1)
    g = SEAM_MEDIAN
    body = strip[:, c0 : c0 + k * SEAM_PIECES, :-1].astype(np.int16)
    d = body[v + g] - body[v - g]  # (shifts, length, planes): pixel pairs across the line
    near = _piece_medians(d, k)  # (shifts, pieces, planes)
    mu = near.mean(axis=1)
    sd = near.std(axis=1, ddof=1)
    # the step must persist beyond the line: strips 1-2 and 2-3 strip widths away
    far1 = (csum[v + 2 * w] - csum[v + w]) / w - (csum[v - w] - csum[v - 2 * w]) / w
    far2 = (csum[v + 3 * w] - csum[v + 2 * w]) / w - (csum[v - 2 * w] - csum[v - 3 * w]) / w
    denom = np.where(np.abs(mu) > 1e-3, mu, 1e-3)
    plateau = np.clip(np.minimum(far1.mean(axis=1) / denom, far2.mean(axis=1) / denom), 0, 1)
    gate = np.clip((plateau - 0.4) / 0.3, 0, 1)
    score = (np.abs(mu) - 2.0 * sd / math.sqrt(SEAM_PIECES)) * gate * weight
    i, band = np.unravel_index(int(score.argmax()), score.shape)
    if score[i, band] <= floor:  # the gates below only lower it
        return None
    # both sides must carry the same texture (a seam shifts one scene's tones; a river
    # bank or a forest edge joins two different surfaces)
    vi = int(v[i])
    before = _grain(strip[vi - 3 * w : vi - w, c0:c1, band])
    after = _grain(strip[vi + w : vi + 3 * w, c0:c1, band])
    ratio = min(before, after) / max(before, after, 1e-3)
    value = float(score[i, band]) * float(np.clip((ratio - SEAM_TEXTURE_MIN) / 0.25, 0, 1))
    normal = math.degrees(math.atan2(nrm[1], nrm[0])) % 180.0
    offset = float((centre + (v[i] - half) * nrm - [(cols - 1) / 2, (rows - 1) / 2]) @ nrm) / min(rows, cols)
    # where each piece's step lies within +-SEAM_FIT_WINDOW px of the line (for _fit_line)
    sign = 1.0 if mu[i, band] > 0 else -1.0
    lo, hi = max(int(i) - SEAM_FIT_WINDOW, 0), min(int(i) + SEAM_FIT_WINDOW + 1, len(v))
    steps = sign * near[lo:hi, :, band]
    pos = (v[lo:hi][steps.argmax(axis=0)] - half).astype(float)
    clear = steps.max(axis=0) > 0.5 * abs(float(mu[i, band]))
    along = u0 + c0 + (np.arange(SEAM_PIECES) + 0.5) * k
    return (value, normal, offset), (t, nrm, centre, pos, along, clear)


@dataclass(frozen=True)
class SeamFinding:
    """What :func:`seam_score` found, for a reviewer: ``kind`` "step" (a brightness or
    colour step along the line whose normal points at ``angle`` degrees, x right and y down,
    ``offset`` from the tile's centre along it as a fraction of the shorter side) or
    "repeat" (a band repeats the content ``lag`` px away in direction ``angle``: a displaced
    scene; no line position), or "none"."""

    score: float
    kind: str
    angle: float = 0.0
    offset: float = 0.0
    lag: float = 0.0


def seam_finding(tile: TileData) -> SeamFinding:
    """The strongest seam of the tile and how it was seen (:class:`SeamFinding`); its
    ``score`` is :func:`seam_score`."""
    rows, cols = tile.shape
    size = min(SEAM_SIZE, rows, cols)
    if size < 32:
        return SeamFinding(0.0, "none")
    dn, angle, offset = _step_profile(tile, size)
    best = SeamFinding(dn, "step" if dn > 0 else "none", angle, offset)
    for scale, (share, dy, dx) in zip(
        (SEAM_DUP_DN, SEAM_COPY_DN), analyse(tile.rgb, None if tile.full else tile.footprint), strict=True
    ):
        if scale * share > best.score:
            best = SeamFinding(scale * share, "repeat", math.degrees(math.atan2(dy, dx)) % 180.0, 0.0,
                               math.hypot(dy, dx))
    return best


def seam_profile(tile: TileData) -> tuple[float, float, float]:
    """(score in DN, angle in degrees, signed offset from the centre as a fraction of the
    tile side) of the strongest seam; see :func:`seam_score`. For a brightness or colour
    step the angle is the line's normal; for duplicated content (a displaced scene) it is
    the displacement's direction and the offset is 0."""
    found = seam_finding(tile)
    return (found.score, found.angle, found.offset)


def _step_profile(tile: TileData, size: int) -> tuple[float, float, float]:
    """The strongest brightness or colour step line: (DN, normal angle, offset).

    One coarse pass over (grey, R - G, B - G); the :data:`SEAM_CANDIDATES` best lines of
    the grey plane and its :data:`SEAM_STEADY_CANDIDATES` steadiest are re-fitted on the RGB
    bands, the :data:`SEAM_CHROMA_CANDIDATES` best
    of each colour-difference plane on those planes (their score times :data:`SEAM_CHROMA`).
    """
    inner = cv2.erode(tile.footprint.astype(np.uint8), np.ones((9, 9), np.uint8))
    ok = cv2.resize(inner * 255, (size, size), interpolation=cv2.INTER_AREA) == 255
    best = (0.0, 0.0, 0.0)
    rgb = tile.rgb
    small = cv2.resize(cv2.transform(rgb, _PLANES), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    coarse, steady, first = _coarse_seam(small, ok.astype(np.float32))
    full = bool(inner.all())
    for src, planes, weight, n in (
        (cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA), (0,), 1.0, SEAM_CANDIDATES),  # alpha 255
        (cv2.transform(rgb, _CHROMA_SRC), (1, 2), SEAM_CHROMA, SEAM_CHROMA_CANDIDATES),
    ):
        if not full:  # the last plane: the footprint
            src[..., -1] = inner * 255
        cells = [cell for p in planes for cell in _candidates(coarse[..., p], n)]
        if planes == (0,):
            cells += _candidates(steady, SEAM_STEADY_CANDIDATES, cells)
        for angle, r in cells:
            found = _refine_seam(src, size, angle, float(r + first), weight)
            if found[0] > best[0]:
                best = found
    return best


def seam_score(tile: TileData) -> float:
    """Strength of the strongest mosaic seam, in 8-bit DN of the display RGB: the larger of
    a step score and a duplication score.

    Duplication (a geometric seam, one scene displaced), the larger of: the share of the
    tile repeating other content of it at one displacement of 6.5-36 px (one FFT
    autocorrelation of the sign of the Laplacian, see
    :func:`~casdesk.core.qc.seam_dup.duplication_share`) times :data:`SEAM_DUP_DN`, and the
    share copying the pixels one lag away (the lag where most textured 2x2 patches repeat,
    found by sorting patch keys; see :func:`~casdesk.core.qc.seam_dup.analyse`) times
    :data:`SEAM_COPY_DN`.

    Step (a radiometric seam): a straight line across the tile along which one side is
    brighter (or one colour band higher) by the same amount all along it. Candidates: on a
    96 px copy of the grey plane and the colour-difference planes R - G and B - G (a
    one-band shift is a step there, clear of the brightness texture the bands share), lines
    in 48 directions, each cut into 10 pieces; per piece the step between 3-px strips beside
    the line minus the steps of parallel lines 9 px away; the 3 lines of the grey plane with
    the largest median step and the best line of each colour-difference plane go on. Each is
    re-fitted at full resolution (5 angle corrections over +-3.375 degrees, +-10 px, then
    once more along the straight line fitted to where each piece's step lies; grey-plane
    lines on the RGB bands, the others on the colour-difference planes, scored x 1.25) and
    cut into 16 pieces; per piece the median difference of pixel pairs 4 px apart across the
    line (robust to the texture crossing it); score = lower 2-sigma bound of the mean over
    pieces, gated by a plateau test (the step must persist 6-18 px away: roads and river
    banks do not) and a texture test (both sides must carry the same grain: a seam shifts
    one scene's tones, a forest edge joins two surfaces). Calibration and accuracy in
    docs/qc.md."""
    return seam_profile(tile)[0]
