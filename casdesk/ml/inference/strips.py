"""Streaming a scene through the model one strip (a row of windows) at a time.

* :class:`StripReader` reads, normalises and reflect-pads a strip (in a prefetch thread);
* :class:`Grid` is the window grid and how its windows are batched (windows without a
  valid pixel are skipped);
* :class:`Blender` accumulates ``sum(w * p)`` and ``sum(w)`` with weights that fall
  towards each window's edges (:func:`casdesk.core.raster.outputs.blend_weights`) in a
  buffer one window tall and one scene wide, and divides, thresholds and writes the rows
  no later window touches;
* :func:`predict_strips_local` (one process, the next strip read ahead) and
  :func:`predict_strips_distributed` (strips dealt round-robin to the ``torchrun``
  processes, blended in order by process 0) drive them.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from affine import Affine
from rasterio.windows import Window

from casdesk.core.jobs import CancelToken, Progress
from casdesk.core.labels.io import rasterize_polygons
from casdesk.core.raster.io import read_window
from casdesk.core.raster.outputs import MASK_NODATA, StripWriter, blend_weights, encode_probability
from casdesk.ml.inference.predictor import Predictor, infer_windows
from casdesk.ml.training.data import Normalization
from casdesk.ml.training.distributed import DistContext


@dataclass
class Strip:
    image: np.ndarray  # (bands, th, padded width) float32, normalised, reflect padded
    valid: np.ndarray  # (th, padded width) bool: in scene, valid data, inside the AOI
    rows: tuple[int, int]  # scene rows [a, b) it holds


class StripReader:
    """Reads, normalises and pads one strip of windows (runs in a prefetch thread)."""

    def __init__(self, ds: Any, norm: Normalization, tile: tuple[int, int], col_lo: int,
                 padded_width: int, aoi: list[Any] | None):
        self.ds = ds
        self.norm = norm
        self.tile = tile
        self.col_lo = col_lo
        self.padded_width = padded_width
        self.aoi = aoi

    def read(self, r0: int) -> Strip:
        th, _ = self.tile
        height, width = self.ds.height, self.ds.width
        a, b = max(r0, 0), min(r0 + th, height)
        data, valid = read_window(self.ds, Window(0, a, width, b - a))
        if self.aoi is not None:
            valid &= rasterize_polygons(self.aoi, valid.shape, Affine.translation(0, a)).astype(bool)
        image = data.astype(np.float32)  # normalised in place: one strip-sized copy, not three
        image -= np.asarray(self.norm.mean, dtype=np.float32)[:, None, None]
        image /= np.asarray(self.norm.std, dtype=np.float32)[:, None, None]
        image[:, ~valid] = 0.0
        pads = ((a - r0, r0 + th - b), (-self.col_lo, self.col_lo + self.padded_width - width))
        image = np.pad(image, ((0, 0), *pads), mode="reflect")
        valid = np.pad(valid, pads, mode="constant", constant_values=False)
        return Strip(np.ascontiguousarray(image), valid, (a, b))


@dataclass(frozen=True)
class Grid:
    """The window grid of a scene and how its windows are batched."""

    rows: list[int]
    cols: list[int]
    col_lo: int
    tile: tuple[int, int]
    width: int
    batch_size: int
    tta: bool

    def step(self, k: int) -> int:
        """Scene rows that strip ``k`` finishes (no later window touches them)."""
        return self.rows[k + 1] - self.rows[k] if k + 1 < len(self.rows) else self.tile[0]

    def todo(self, strip: Strip) -> list[int]:
        tw = self.tile[1]
        return [c for c in self.cols if strip.valid[:, c - self.col_lo : c - self.col_lo + tw].any()]


def _infer_strip(predictor: Predictor, strip: Strip, todo: list[int], grid: Grid,
                 token: CancelToken) -> Generator[tuple[list[int], np.ndarray], None, None]:
    """(window columns, probabilities) of a strip, one batch at a time. The batches are
    the same wherever the strip is predicted, so the numbers are too."""
    tw = grid.tile[1]
    for i in range(0, len(todo), grid.batch_size):
        token.raise_if_cancelled()
        chunk = todo[i : i + grid.batch_size]
        batch = np.stack([strip.image[:, :, c - grid.col_lo : c - grid.col_lo + tw] for c in chunk])
        yield chunk, infer_windows(predictor, batch, grid.tta)


class Blender:
    """The accumulators of blended probabilities and the writers (the writing process only)."""

    def __init__(self, tile: tuple[int, int], padded_width: int, overlap: int, col_lo: int, width: int,
                 threshold: float, writers: list[StripWriter], prob_dtype: str):
        th, tw = tile
        self.tile = tile
        self.weights = blend_weights(th, tw, overlap)
        self.acc_p = np.zeros((th, padded_width), dtype=np.float32)
        self.acc_w = np.zeros((th, padded_width), dtype=np.float32)
        self.col_lo = col_lo
        self.width = width
        self.threshold = threshold
        self.writers = writers
        self.prob_dtype = prob_dtype
        self.landslide = self.valid_total = self.skipped = 0

    def add(self, chunk: Sequence[int], probs: np.ndarray) -> None:
        tw = self.tile[1]
        for c, p in zip(chunk, probs):
            sl = slice(c - self.col_lo, c - self.col_lo + tw)
            self.acc_p[:, sl] += p * self.weights
            self.acc_w[:, sl] += self.weights

    def finish(self, strip: Strip, r0: int, step: int) -> None:
        th = self.tile[0]
        n_l, n_v = _finish_rows(self.acc_p, self.acc_w, strip, r0, step, self.col_lo, self.width,
                                self.threshold, self.writers, self.prob_dtype)
        self.landslide += n_l
        self.valid_total += n_v
        for acc in (self.acc_p, self.acc_w):
            acc[: th - step] = acc[step:]
            acc[th - step :] = 0

    def commit(self) -> None:
        for w in self.writers:
            w.commit()

    def abort(self) -> None:
        for w in self.writers:
            w.abort()


def predict_strips_local(predictor: Predictor, reader: StripReader, grid: Grid, blender: Blender,
                          token: CancelToken, name: str) -> Generator[Progress, None, None]:
    """One process: strips read one ahead in a thread, predicted and blended in order."""
    rows, total = grid.rows, len(grid.rows) * len(grid.cols)
    done = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="casdesk-predict-read") as pool:
        nxt: Future[Strip] = pool.submit(reader.read, rows[0])
        for k, r0 in enumerate(rows):
            strip = nxt.result()
            if k + 1 < len(rows):
                nxt = pool.submit(reader.read, rows[k + 1])
            todo = grid.todo(strip)
            blender.skipped += len(grid.cols) - len(todo)
            done += len(grid.cols) - len(todo)
            for chunk, probs in _infer_strip(predictor, strip, todo, grid, token):
                blender.add(chunk, probs)
                done += len(chunk)
                yield Progress(done, total, f"{name}: window {done}/{total}", {"stage": "infer"})
            blender.finish(strip, r0, grid.step(k))


_StripPayload = tuple[int, np.ndarray, tuple[int, int], list[int], np.ndarray]


def predict_strips_distributed(predictor: Predictor, reader: StripReader, grid: Grid,
                                blender: Blender | None, token: CancelToken, name: str,
                                ctx: DistContext) -> Generator[Progress, None, None]:
    """Strip ``k`` is predicted by process ``k % world``; each round of ``world`` strips is
    gathered on process 0, which blends and writes them in scene order."""
    rows, total = grid.rows, len(grid.rows) * len(grid.cols)
    done = 0
    for start in range(0, len(rows), ctx.world_size):
        k = start + ctx.rank
        payload: _StripPayload | None = None
        if k < len(rows):
            strip = reader.read(rows[k])
            todo = grid.todo(strip)
            pieces = list(_infer_strip(predictor, strip, todo, grid, token))
            probs = (np.concatenate([p for _, p in pieces]) if pieces
                     else np.zeros((0, *grid.tile), dtype=np.float32))
            payload = (k, strip.valid, strip.rows, todo, probs)
        gathered = ctx.gather_object(payload)
        if blender is None or gathered is None:
            continue
        payloads = cast(list[_StripPayload | None], gathered)  # what the processes sent above
        for item in sorted((g for g in payloads if g is not None), key=lambda g: g[0]):
            k, valid, strip_rows, todo, probs = item
            blender.skipped += len(grid.cols) - len(todo)
            blender.add(todo, probs)
            blender.finish(Strip(np.empty((0, 0, 0), dtype=np.float32), valid, strip_rows), rows[k], grid.step(k))
            done += len(grid.cols)
        yield Progress(done, total, f"{name}: window {done}/{total} ({ctx.world_size} processes)",
                       {"stage": "infer"})


def _finish_rows(
    acc_p: np.ndarray, acc_w: np.ndarray, strip: Strip, r0: int, step: int, col_lo: int,
    width: int, threshold: float, writers: Sequence[StripWriter], prob_dtype: str,
) -> tuple[int, int]:
    """Divide, threshold and write the scene rows of ``[r0, r0 + step)`` no later window
    touches; return (landslide pixels, valid pixels) among them."""
    lo = max(r0, 0)
    hi = min(r0 + step, strip.rows[1])
    if hi <= lo:
        return 0, 0
    rs = slice(lo - r0, hi - r0)
    cs = slice(-col_lo, -col_lo + width)
    w = acc_w[rs, cs]
    valid = strip.valid[rs, cs] & (w > 0)
    prob = np.divide(acc_p[rs, cs], w, out=np.zeros_like(w), where=w > 0)
    mask = (prob > threshold).astype(np.uint8)
    mask[~valid] = MASK_NODATA
    writers[0].write_rows(encode_probability(prob, valid, prob_dtype))
    writers[1].write_rows(mask)
    return int((mask == 1).sum()), int(valid.sum())
