"""Per-detector QC cost on the released tiles, against reading the same files (issue 16).

    python benchmarks/bench_qc_detectors.py [--public PATH] [--repeat 7] [--seam]

For each released tile (``evalset.find_sources``: the CAS tiles and the Hokkaido tiles with
their masks) on one core (OpenCV limited to one thread, as in a scan worker):

* ``read``: opening and reading the image and its mask (what ``bench_qc_scan.py`` times as
  the reading side; the baseline),
* ``load_tile``: :func:`casdesk.core.qc.detectors.load_tile` (the scan's reading side),
* each metric *alone* on a fresh :class:`TileData` (including the shared arrays it needs,
  e.g. cloud pays for the fill mask and the display RGB),
* each metric *in scan order* (registry order, shared arrays cached by earlier metrics:
  what a scan pays per metric), and ``scan``: load_tile + every metric measured (what one
  tile costs in a scan worker, without the process overhead).

Per tile the fastest of ``--repeat`` runs is kept (timer noise on a loaded machine only
adds time); the JSON line reports the median, the mean and the worst tile, in ms, and the
ratios to ``read`` measured in the same run (``mean_ratio_to_read``: total over total, what
a scan of many such tiles pays). The seam metric is left out unless ``--seam``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

from casdesk.core.qc import evalset  # noqa: E402
from casdesk.core.qc.detectors import METRICS, TileData, load_tile  # noqa: E402
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


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1000.0 * best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--public", type=Path, default=DEFAULT_PUBLIC)
    ap.add_argument("--repeat", type=int, default=7, help="runs per tile; the fastest counts")
    ap.add_argument("--seam", action="store_true", help="include the seam metric (slow)")
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (a scan worker uses 1)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(args.threads)
    sources = evalset.find_sources(args.public)
    if not sources:
        print(f"no released tiles under {args.public}", file=sys.stderr)
        return 2
    names = [n for n in METRICS if args.seam or n != "seam_score"]
    times: dict[str, list[float]] = {}

    def add(key: str, ms: float) -> None:
        times.setdefault(key, []).append(ms)

    for image in sources:
        mask = mask_for(image)
        read_pair(image, mask)  # warm the OS cache and lazy imports
        add("read", best_ms(partial(read_pair, image, mask), args.repeat))
        add("load_tile", best_ms(partial(load_tile, image, mask, "SAT"), args.repeat))
        tile = load_tile(image, mask, "SAT")
        for name in names:
            func = METRICS[name].func

            def alone(func: Callable[[TileData], float] = func, tile: TileData = tile) -> float:
                return func(fresh(tile))

            add(f"alone:{name}", best_ms(alone, args.repeat))
        in_order = {n: float("inf") for n in names}
        total = float("inf")
        for _ in range(args.repeat):
            t = fresh(tile)
            t_all = time.perf_counter()
            for name in names:
                t0 = time.perf_counter()
                METRICS[name].func(t)
                in_order[name] = min(in_order[name], 1000.0 * (time.perf_counter() - t0))
            total = min(total, 1000.0 * (time.perf_counter() - t_all))
        for name in names:
            add(f"scan:{name}", in_order[name])
        add("metrics", total)

        def whole(image: Path = image, mask: Path | None = mask) -> None:
            t = load_tile(image, mask, "SAT")
            for name in names:
                METRICS[name].func(t)

        add("scan", best_ms(whole, args.repeat))
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
