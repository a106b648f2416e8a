"""Per-detector QC cost on the released tiles, against reading the same files (issue 16).

    python benchmarks/bench_qc_detectors.py [--public PATH] [--repeat 7] [--seam]

For each released tile (``evalset.find_sources``: the CAS tiles and the Hokkaido tiles with
their masks) on one core, as in a scan worker (OpenCV limited to one thread, freed memory
kept for the next tile, one rasterio environment):

* ``read``: opening and reading the image and its mask (what ``bench_qc_scan.py`` times as
  the reading side; the baseline),
* ``load_tile``: :func:`casdesk.core.qc.detectors.load_tile` (the scan's reading side),
* each metric *alone* on a fresh :class:`TileData` (including the shared arrays it needs,
  e.g. cloud pays for the fill mask and the display RGB),
* each metric *in scan order* (registry order, shared arrays cached by earlier metrics:
  what a scan pays per metric), ``scan``: load_tile + every metric measured (what one tile
  costs in a scan worker, without the process overhead), and ``scan-load_tile``: the
  metrics' part of it (on a tile just read, as in a scan).

The runs go round all the tiles ``--repeat`` times (a tile's runs are not back to back, as
in a scan); per tile the fastest run is kept (timer noise on a loaded machine only adds
time); the JSON line reports the median, the mean and the worst tile, in ms, and the
ratios to ``read`` measured in the same run (``mean_ratio_to_read``: total over total, what
a scan of many such tiles pays). The seam metric is left out unless ``--seam``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import rasterio  # noqa: E402

from casdesk.core.qc import evalset  # noqa: E402
from casdesk.core.qc.detectors import METRICS, TileData, load_tile  # noqa: E402
from casdesk.core.qc.scan import keep_freed_memory  # noqa: E402
from casdesk.core.raster.io import open_raster, read_window  # noqa: E402

DEFAULT_PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "public"


def mask_for(image: Path) -> Path | None:
    """The label of a released tile, when the data set ships one (``images/`` -> ``masks/``)."""
    if image.parent.name == "images":
        m = image.parent.parent / "masks" / image.name
        if m.exists():
            return m
    return None


def read_pair(image: Path, mask: Path | None) -> None:
    """The baseline: read the image (data + validity) and the mask, nothing else."""
    read_window(image)
    if mask is not None:
        with open_raster(mask) as ds:
            ds.read(1)


def fresh(tile: TileData) -> TileData:
    """The same pixels without the cached derived arrays."""
    return TileData(tile.data, tile.valid, tile.has_mask, tile.mask, tile.sensor, tile.fill_values)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--public", type=Path, default=DEFAULT_PUBLIC)
    ap.add_argument("--repeat", type=int, default=7, help="runs per tile; the fastest counts")
    ap.add_argument("--seam", action="store_true", help="include the seam metric (slow)")
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (a scan worker uses 1)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(args.threads)
    keep_freed_memory()  # as a scan worker: no page faults for each tile's fresh arrays
    with rasterio.Env():  # as a scan worker reads a chunk: one rasterio environment
        return run(args)


def run(args: argparse.Namespace) -> int:
    sources = evalset.find_sources(args.public)
    if not sources:
        print(f"no released tiles under {args.public}", file=sys.stderr)
        return 2
    names = [n for n in METRICS if args.seam or n != "seam_score"]
    pairs = [(image, mask_for(image)) for image in sources]
    for image, mask in pairs:
        read_pair(image, mask)  # warm the OS cache and lazy imports
    # rounds over all the tiles (a tile's runs are not back to back, so no run finds the
    # previous run's arrays in the CPU caches: as in a scan); per tile the fastest run counts
    best: dict[str, list[float]] = {}

    def add(key: str, i: int, ms: float) -> None:
        row = best.setdefault(key, [math.inf] * len(pairs))
        row[i] = min(row[i], ms)

    def clock(fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        fn()
        return 1000.0 * (time.perf_counter() - t0)

    loaded = [load_tile(image, mask, "SAT") for image, mask in pairs]
    for _ in range(args.repeat):
        for i, (image, mask) in enumerate(pairs):
            add("read", i, clock(partial(read_pair, image, mask)))
            add("load_tile", i, clock(partial(load_tile, image, mask, "SAT")))
            tile = loaded[i]
            for name in names:
                add(f"alone:{name}", i, clock(partial(METRICS[name].func, fresh(tile))))
            t = fresh(tile)
            for name in names:
                add(f"scan:{name}", i, clock(partial(METRICS[name].func, t)))
            t0 = time.perf_counter()
            t = load_tile(image, mask, "SAT")
            t1 = time.perf_counter()
            for name in names:
                METRICS[name].func(t)
            t2 = time.perf_counter()
            add("scan", i, 1000.0 * (t2 - t0))
            add("scan-load_tile", i, 1000.0 * (t2 - t1))
    times = best
    read_med = statistics.median(times["read"])
    result: dict[str, object] = {
        "bench": "qc_detectors",
        "tiles": len(sources),
        "repeat": args.repeat,
        "metrics": names,
        "median_ms": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "mean_ms": {k: round(statistics.fmean(v), 3) for k, v in times.items()},
        "worst_ms": {k: round(max(v), 3) for k, v in times.items()},
        "ratio_to_read": {k: round(statistics.median(v) / read_med, 2) for k, v in times.items()},
        "mean_ratio_to_read": {
            k: round(statistics.fmean(v) / statistics.fmean(times["read"]), 2) for k, v in times.items()
        },
        "goal": "every detector <= 0.5 x read; scan <= 1.5 x read",
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
