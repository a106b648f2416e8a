"""Geometric mosaic seams seen as duplicated content (see :func:`duplication_share`).

Where two scenes of a mosaic are misregistered by a shift ``v`` and the shift points into
the displaced side, a band of that side along the whole seamline (as wide as the shift's
component across the line) repeats the content of the other side at displacement ``v``.
The autocorrelation of a whitened image then has an isolated peak at ``v`` whose height is
about the duplicated share of the tile; natural imagery's whitened autocorrelation is a
narrow peak at 0 and smooth elsewhere. One FFT of the tile finds it, wherever the line is.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

DUP_MIN_LAG = 6.5
"""Shortest displacement looked at (px): shorter lags hold the tiles' own resampling
patterns (peaks at lags such as (2, 3) and (1, 5) in most released tiles)."""
DUP_MAX_LAG = 36
"""Longest displacement looked at (px)."""
DUP_MIN_SIZE = 96
"""Tiles smaller than this (either side) are not measured (0.0)."""


@lru_cache(maxsize=1)
def _annulus() -> tuple[np.ndarray, np.ndarray]:
    """(lags inside the annulus as a bool (2R+1, 2R+1) window, 5x5 ring kernel)."""
    r = DUP_MAX_LAG
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    rr = np.hypot(yy, xx)
    ring = np.ones((5, 5), np.uint8)
    ring[1:4, 1:4] = 0
    return (rr >= DUP_MIN_LAG) & (rr <= r), ring


DUP_COPY_LAGS = 4
"""Lags (the highest isolated autocorrelation peaks, one of each mirror pair) checked for
copied pixels (:func:`copy_profile`)."""
DUP_COPY_TOL = 6
"""A pixel copies the one at the lag when the sums of their bands differ by at most this (DN)."""
DUP_COPY_CONTROL = 2
"""... and it differs (by more than :data:`DUP_COPY_TOL`) from the 4 pixels this far (px)
around that one: smooth surfaces (water, haze) match any lag and are not copies."""
DUP_COPY_CLUMP = 5
"""... and at least this many of its 3x3 neighbourhood (itself included) copy too: a
displaced band is a solid strip, chance matches are scattered."""


def duplication_profile(rgb: np.ndarray, footprint: np.ndarray | None = None) -> tuple[float, int, int]:
    """(share, dy, dx): the strongest isolated peak of the whitened autocorrelation at
    lags of 6.5-36 px above the next one (see :func:`duplication_share`), and its lag."""
    return analyse(rgb, footprint)[0]


def copy_profile(rgb: np.ndarray, footprint: np.ndarray | None = None) -> tuple[float, int, int]:
    """(share, dy, dx): the largest share of the tile whose pixels copy the pixels one lag
    away, over the :data:`DUP_COPY_LAGS` highest isolated peaks of the whitened
    autocorrelation (see :func:`analyse`)."""
    return analyse(rgb, footprint)[1]


def analyse(
    rgb: np.ndarray, footprint: np.ndarray | None = None
) -> tuple[tuple[float, int, int], tuple[float, int, int]]:
    """Both duplication measures from one autocorrelation: ((peak share, dy, dx), (copied
    share, dy, dx)).

    *Peak share*: the strongest isolated peak of the whitened autocorrelation at lags of
    6.5-36 px above the next one (:func:`duplication_share`). *Copied share*: at the few
    highest isolated peaks, the share of the tile (textured pixels inside the footprint)
    whose band sum equals, within :data:`DUP_COPY_TOL`, that of the pixel one lag away but
    none of the 4 pixels :data:`DUP_COPY_CONTROL` px around it (a smooth surface matches
    every lag), in clumps (:data:`DUP_COPY_CLUMP`). A displaced scene's repeated band is
    such a solid strip of copies, however weak its autocorrelation peak against the rest of
    the tile's texture; natural tiles hold scattered chance matches (released tiles <=
    0.0005 of the tile, traps <= 0.0006 on seeds 16 and 17)."""
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
    w -= float(w.mean())
    energy = float(np.dot(w.ravel(), w.ravel()))
    if energy <= 0:
        return none
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
    half = a.copy()  # one lag of each mirror pair (v and -v compare the same pixels)
    half[:r] = -1.0
    half[r, : r + 1] = -1.0
    i, j = np.unravel_index(int(a.argmax()), a.shape)
    p1 = float(a[i, j])
    # the second peak (not the first's mirror nor its neighbours): periodic texture and the
    # tiles' own resampling patterns make several; a displaced scene one
    for y, x in ((i, j), (2 * r - i, 2 * r - j)):
        a[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3] = -1.0
    p2 = float(a.max())
    lags = []
    for _ in range(DUP_COPY_LAGS):
        y, x = np.unravel_index(int(half.argmax()), half.shape)
        if half[y, x] <= 0:
            break
        lags.append((int(y) - r, int(x) - r))
        half[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3] = -1.0
    return (max(p1 - max(p2, 0.0), 0.0), int(i) - r, int(j) - r), _copied(grey, textured, lags)


def _copied(grey: np.ndarray, textured: np.ndarray, lags: list[tuple[int, int]]) -> tuple[float, int, int]:
    """(share of the tile, dy, dx): the lag of ``lags`` at which most textured pixels copy
    the pixel one lag away (see :func:`analyse`)."""
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
    (shift across the line) x (line length) / (tile area), 0.005-0.07 for 8-32 px."""
    return duplication_profile(rgb, footprint)[0]
