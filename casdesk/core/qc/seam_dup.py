"""Geometric mosaic seams seen as duplicated content (see :func:`duplication_share`).

Where two scenes of a mosaic are misregistered by a shift ``v`` and the shift points into
the displaced side, a band of that side along the whole seamline (as wide as the shift's
component across the line) repeats the content of the other side at displacement ``v``:
a solid strip of pixels that copy the pixels one lag ``v`` away. The lag is found by
sorting small patch keys (a copied band repeats thousands of textured 2x2 patches at one
lag; natural imagery a handful at any lag), and the copied strip is then measured pixel
by pixel at that lag, wherever the line is.
"""

from __future__ import annotations

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


def duplication_profile(rgb: np.ndarray, footprint: np.ndarray | None = None) -> tuple[float, int, int]:
    """(share, dy, dx): the share of the tile copying the pixels one lag (dy, dx) of 6.5-36
    px away, at the lag where most textured patches repeat (see :func:`duplication_share`)."""
    rows, cols = rgb.shape[:2]
    if min(rows, cols) < DUP_MIN_SIZE:
        return (0.0, 0, 0)
    if rgb.ndim == 3:  # the sum of the bands (3x their mean, exact in 16 bits)
        grey = np.add(np.add(rgb[..., 0], rgb[..., 1], dtype=np.int16), rgb[..., 2], dtype=np.int16)
    else:
        grey = rgb.astype(np.int16)
    # textured: a 3x3 Laplacian of at least 2/3 DN of the band mean (flat fill, saturated
    # and smooth pixels are not), inside the footprint eroded by 2 px
    textured = np.abs(cv2.Laplacian(grey, cv2.CV_16S, ksize=1)) >= 2
    if footprint is not None and not footprint.all():
        textured &= cv2.erode(footprint.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return _copied(grey, textured, _lags(grey, textured, DUP_HASH_LAGS))


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
    """Share of the tile that copies other content of it at one displacement of 6.5-36 px.

    The lag: textured 2x2 patches (band sums quantised by 8 DN, spanning >= 24 DN; one key
    in 8, chosen by the key) are sorted by key, and the lags between equal neighbours
    counted; the most frequent lag with at least :data:`DUP_HASH_PAIRS` repeats is measured.
    The share: textured pixels whose band sum is within 6 DN of the pixel one lag back but
    not of the 4 pixels 2 px around that one (a smooth surface matches any lag), in clumps
    (5 of 3x3). Released tiles and traps: 0 (no lag repeats often enough; <= 0.0005 at
    their own strongest autocorrelation peaks); a geometric seam whose displacement points
    into the displaced side: up to about (shift across the line) x (line length) / (tile
    area), 0.001-0.07 for 8-32 px."""
    return duplication_profile(rgb, footprint)[0]
