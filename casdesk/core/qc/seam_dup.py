"""Geometric mosaic seams seen as duplicated content (see :func:`analyse`).

Where two scenes of a mosaic are misregistered by a shift ``v`` and the shift points into
the displaced side, a band of that side along the whole seamline (as wide as the shift's
component across the line) repeats the content of the other side at displacement ``v``.
Two measures, from one whitened image: the autocorrelation's isolated peak at ``v`` (one
FFT; its height is about the duplicated share of the tile, and it survives a resampled,
sub-pixel copy), and the share of pixels that copy the pixels one lag ``v`` away, where
``v`` is the lag at which most textured 2x2 patches repeat (found by sorting patch keys;
exact or near-exact copies only, but far above chance where the autocorrelation's peak
drowns in the texture's own correlation at lags near 8 px).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

DUP_MIN_LAG = 6.5
"""Shortest displacement looked at (px): shorter lags hold the tiles' own resampling
patterns (repeats at lags such as (2, 3) and (1, 5) in most released tiles)."""
DUP_MAX_LAG = 36
"""Longest displacement looked at (px)."""
DUP_MIN_SIZE = 96
"""Tiles smaller than this (either side) are not measured (0.0)."""

DUP_HASH_STEP = 8
"""Band sums are quantised in steps of this (DN) for the 2x2 patch keys of :func:`_lags`."""
DUP_HASH_RANGE = 24
"""Only patches whose band sums span at least this (DN) are keyed (smooth patches repeat
everywhere)."""
DUP_HASH_KEEP = 8
"""One patch key in about this many is kept, chosen by the key itself (so a copy keeps the
same patches as its original): an eighth of the sort."""
DUP_HASH_PAIRS = 12
"""A lag is proposed when at least this many equal keys lie one lag apart (released tiles
and traps: <= 9 at any lag; displaced scenes with a copied band: 14-4000, seeds 16 and 17)."""
DUP_HASH_LAGS = 1
"""Lags proposed (the most repeated first) and measured by :func:`_copied`."""
DUP_COPY_TOL = 6
"""A pixel copies the one at the lag when the sums of their bands differ by at most this (DN)."""
DUP_COPY_CONTROL = 2
"""... and it differs (by more than :data:`DUP_COPY_TOL`) from the 4 pixels this far (px)
around that one: smooth surfaces (water, haze) match any lag and are not copies."""
DUP_COPY_CLUMP = 5
"""... and at least this many of its 3x3 neighbourhood (itself included) copy too: a
displaced band is a solid strip, chance matches are scattered."""


@lru_cache(maxsize=1)
def _annulus() -> tuple[np.ndarray, np.ndarray]:
    """(lags inside the annulus as a bool (2R+1, 2R+1) window, 5x5 ring kernel)."""
    r = DUP_MAX_LAG
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    rr = np.hypot(yy, xx)
    ring = np.ones((5, 5), np.uint8)
    ring[1:4, 1:4] = 0
    return (rr >= DUP_MIN_LAG) & (rr <= r), ring


def duplication_profile(rgb: np.ndarray, footprint: np.ndarray | None = None) -> tuple[float, int, int]:
    """(share, dy, dx): the strongest isolated peak of the whitened autocorrelation at
    lags of 6.5-36 px above the next one (see :func:`duplication_share`), and its lag."""
    return analyse(rgb, footprint)[0]


def copy_profile(rgb: np.ndarray, footprint: np.ndarray | None = None) -> tuple[float, int, int]:
    """(share, dy, dx): the share of the tile copying the pixels one lag (dy, dx) of 6.5-36
    px away, at the lag where most textured 2x2 patches repeat (see :func:`analyse`)."""
    return analyse(rgb, footprint)[1]


def analyse(
    rgb: np.ndarray, footprint: np.ndarray | None = None
) -> tuple[tuple[float, int, int], tuple[float, int, int]]:
    """Both duplication measures: ((peak share, dy, dx), (copied share, dy, dx)).

    *Peak share* (:func:`duplication_share`): the strongest isolated peak of the whitened
    autocorrelation at lags of 6.5-36 px above the next one. *Copied share*: textured 2x2
    patches (band sums quantised by :data:`DUP_HASH_STEP`, spanning >= :data:`DUP_HASH_RANGE`;
    one key in :data:`DUP_HASH_KEEP`, chosen by the key) are sorted by key and the lags
    between equal neighbours counted; at the most frequent lag with at least
    :data:`DUP_HASH_PAIRS` repeats, the share of the tile's textured pixels whose band sum
    is within :data:`DUP_COPY_TOL` of the pixel one lag back but not of the 4 pixels
    :data:`DUP_COPY_CONTROL` px around that one (a smooth surface matches any lag), in
    clumps (:data:`DUP_COPY_CLUMP` of 3x3). Released tiles and traps: no lag repeats often
    enough (copied share 0; <= 0.0006 at their own strongest autocorrelation peaks); a
    geometric seam whose displacement points into the displaced side: up to about (shift
    across the line) x (line length) / (tile area), 0.001-0.07 for 8-32 px."""
    none = ((0.0, 0, 0), (0.0, 0, 0))
    rows, cols = rgb.shape[:2]
    if min(rows, cols) < DUP_MIN_SIZE:
        return none
    if rgb.ndim == 3:  # the sum of the bands (3x their mean, exact in 16 bits)
        grey = np.add(np.add(rgb[..., 0], rgb[..., 1], dtype=np.int16), rgb[..., 2], dtype=np.int16)
    else:
        grey = rgb.astype(np.int16)
    lap = cv2.Laplacian(grey, cv2.CV_16S, ksize=1)
    # whitened: the sign of the Laplacian, 0 where it is flat (fill, saturated, smooth; a
    # Laplacian under 2/3 DN of the band mean counts as flat): trunc(clip(lap, -2, 2) / 2)
    w = np.trunc(np.clip(lap, -2, 2).astype(np.float32) * np.float32(0.5))
    if footprint is not None and not footprint.all():
        inner = cv2.erode(footprint.astype(np.uint8), np.ones((5, 5), np.uint8))
        w *= inner
    textured = w != 0
    copied = _copied(grey, textured, _lags(grey, textured, DUP_HASH_LAGS))
    w -= float(w.mean())
    energy = float(np.dot(w.ravel(), w.ravel()))
    if energy <= 0:
        return ((0.0, 0, 0), copied)
    r = DUP_MAX_LAG
    # circular (lags wrap around the tile: cheaper than padding, and the wrapped strips,
    # unrelated content, add no peak); odd sizes padded to a fast DFT size
    pr, pc = cv2.getOptimalDFTSize(rows), cv2.getOptimalDFTSize(cols)
    src = w
    if (pr, pc) != (rows, cols):
        src = np.asarray(cv2.copyMakeBorder(w, 0, pr - rows, 0, pc - cols, cv2.BORDER_CONSTANT, value=0), np.float32)
    f = cv2.dft(src)  # packed (CCS) spectrum of a real image
    ac = cv2.idft(cv2.mulSpectrums(f, f, 0, conjB=True), flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
    # the window of lags -r..r (circular indices)
    idx_r = np.r_[pr - r : pr, 0 : r + 1]
    idx_c = np.r_[pc - r : pc, 0 : r + 1]
    win = np.ascontiguousarray(ac[np.ix_(idx_r, idx_c)]) / energy
    ann, ring = _annulus()
    # an isolated peak: its value above the highest of the 16 lags two steps around it
    # (a straight edge's autocorrelation is a ridge: its own ring holds as high values)
    peak = win - cv2.dilate(win, ring, borderType=cv2.BORDER_REFLECT)
    a = np.where(ann, peak, -1.0)
    i, j = np.unravel_index(int(a.argmax()), a.shape)
    p1 = float(a[i, j])
    # the second peak (not the first's mirror nor its neighbours): periodic texture and the
    # tiles' own resampling patterns make several; a displaced scene one
    for y, x in ((i, j), (2 * r - i, 2 * r - j)):
        a[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3] = -1.0
    p2 = float(a.max())
    return (max(p1 - max(p2, 0.0), 0.0), int(i) - r, int(j) - r), copied


def _lags(grey: np.ndarray, textured: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Up to ``k`` lags (dy, dx; dy > 0, or dy == 0 < dx) of 6.5-36 px at which most
    textured 2x2 patches repeat exactly (band sums quantised by :data:`DUP_HASH_STEP`), each
    with at least :data:`DUP_HASH_PAIRS` repeats: the keys are sorted, and the lags between
    neighbours with equal keys counted."""
    rows, cols = grey.shape
    a, b, c, d = grey[:-1, :-1], grey[:-1, 1:], grey[1:, :-1], grey[1:, 1:]
    span = np.maximum(np.maximum(a, b), np.maximum(c, d)) - np.minimum(np.minimum(a, b), np.minimum(c, d))
    q = DUP_HASH_STEP
    qa, qb, qc, qd = a // q, b // q, c // q, d // q
    keep = (span >= DUP_HASH_RANGE) & textured[:-1, :-1] & ((qa + 3 * qb + 5 * qc + 7 * qd) % DUP_HASH_KEEP == 0)
    idx = np.flatnonzero(keep)  # positions in the (rows - 1, cols - 1) grid
    if idx.size < 2:
        return []
    levels = 766 // q + 1
    key = ((qa.ravel()[idx].astype(np.int64) * levels + qb.ravel()[idx]) * levels + qc.ravel()[idx]) * levels
    key += qd.ravel()[idx]
    bits = int(idx[-1]).bit_length()
    packed = np.sort((key << bits) | idx)  # by key, then position
    same = np.flatnonzero((packed[1:] >> bits) == (packed[:-1] >> bits))
    pos = packed & ((1 << bits) - 1)
    w = cols - 1
    p0, p1 = pos[same], pos[same + 1]
    dy, dx = p1 // w - p0 // w, p1 % w - p0 % w
    flip = (dy < 0) | ((dy == 0) & (dx < 0))  # v and -v are the same repeat
    dy, dx = np.where(flip, -dy, dy), np.where(flip, -dx, dx)
    r = DUP_MAX_LAG
    rr = dy * dy + dx * dx
    ok = (rr >= DUP_MIN_LAG**2) & (rr <= r * r)
    hist = np.bincount(dy[ok] * (2 * r + 1) + dx[ok] + r, minlength=(r + 1) * (2 * r + 1))
    out = []
    for _ in range(k):
        j = int(hist.argmax())
        if hist[j] < DUP_HASH_PAIRS:
            break
        out.append((j // (2 * r + 1), j % (2 * r + 1) - r))
        hist[j] = 0
    return out


def _copied(grey: np.ndarray, textured: np.ndarray, lags: list[tuple[int, int]]) -> tuple[float, int, int]:
    """(share of the tile, dy, dx): the lag of ``lags`` at which most textured pixels copy
    the pixel one lag back: band sums within :data:`DUP_COPY_TOL`, none of the 4 pixels
    :data:`DUP_COPY_CONTROL` px around that one within it, in clumps of
    :data:`DUP_COPY_CLUMP` of 3x3."""
    rows, cols = grey.shape
    pad = DUP_MAX_LAG + DUP_COPY_CONTROL
    # outside the tile nothing matches (band sums are 0-765)
    padded = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=-4096)
    tol = DUP_COPY_TOL
    best = (0.0, 0, 0)
    for dy, dx in lags:

        def near(y: int, x: int) -> np.ndarray:  # where grey matches the pixel (y, x) back
            moved = padded[pad - y : pad - y + rows, pad - x : pad - x + cols]
            return np.asarray(cv2.absdiff(grey, moved) <= tol)

        same = near(dy, dx) & textured
        c = DUP_COPY_CONTROL
        for ey, ex in ((c, 0), (-c, 0), (0, c), (0, -c)):
            same &= ~near(dy + ey, dx + ex)
        m = same.view(np.uint8)
        clumped = cv2.boxFilter(m, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT) >= DUP_COPY_CLUMP
        share = float(np.count_nonzero(clumped & same)) / (rows * cols)
        if share > best[0]:
            best = (share, dy, dx)
    return best


def duplication_share(rgb: np.ndarray, footprint: np.ndarray | None = None) -> float:
    """Share of the tile that repeats other content of it at one displacement of 6.5-36 px.

    The grey image is whitened (sign of its 3x3 Laplacian, 0 where flat) and autocorrelated
    with one FFT. At each lag the value above the highest of the 16 lags two
    steps around it measures an isolated peak (edges make ridges, not peaks); the score is
    the highest such peak minus the next one elsewhere (periodic texture and resampling
    patterns make several peaks, a displaced scene one). Released tiles: <= 0.0021; a
    geometric seam whose displacement points into the displaced side: about
    (shift across the line) x (line length) / (tile area), 0.005-0.07 for 8-32 px; a copy
    resampled at a sub-pixel shift keeps about half of it (13.25 px: 0.008-0.014)."""
    return duplication_profile(rgb, footprint)[0]
