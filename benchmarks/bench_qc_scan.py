"""QC scan speed: compute every metric for N generated 512x512 RGB GeoTIFF tiles on disk,
against only reading the same tiles (sequentially, and with the same thread pool).

Usage: python benchmarks/bench_qc_scan.py [N] [WORKERS]. Prints a JSON line last; goal:
scan / read <= 1.5.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import rasterio
from rasterio.transform import from_origin

from casdesk.core.jobs import run_job
from casdesk.core.project.catalog import Catalog
from casdesk.core.qc.rules import compute_metrics
from casdesk.core.raster.io import read_window


def make_tiles(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        base = cv2.resize(rng.random((18, 18)).astype(np.float32), (512, 512), interpolation=cv2.INTER_CUBIC)
        grey = 60 + 120 * base + rng.normal(0, 15, (512, 512))
        img = np.clip(np.stack([grey * 0.8, grey, grey * 0.7]), 0, 255).astype(np.uint8)
        if i % 5 == 0:
            img[:, :, : 40 + i % 100] = 255  # a fill strip on some tiles
        p = folder / f"t{i:05d}.tif"
        with rasterio.open(
            p, "w", driver="GTiff", width=512, height=512, count=3, dtype="uint8",
            transform=from_origin(0, 512, 1, 1), crs="EPSG:32650",
        ) as ds:
            ds.write(img)
        paths.append(p)
    return paths


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_tiles(folder, n)
        cat = Catalog.create(folder / "bench.casdesk")
        cat.add_tiles(
            [{"name": p.stem, "subdataset": "bench", "image_path": p, "width": 512, "height": 512} for p in paths]
        )
        for p in paths[:20]:  # warm the OS cache and lazy imports alike for both sides
            read_window(p)
        t0 = time.perf_counter()
        for p in paths:
            read_window(p)
        read_seq = time.perf_counter() - t0
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(read_window, paths))
        read_par = time.perf_counter() - t0
        t0 = time.perf_counter()
        done = run_job(compute_metrics(cat, workers=workers))
        scan = time.perf_counter() - t0
        cat.close()
    result = {
        "bench": "qc_scan",
        "tiles": n,
        "workers": workers,
        "read_seq_s": round(read_seq, 3),
        "read_pool_s": round(read_par, 3),
        "scan_s": round(scan, 3),
        "ms_per_tile_scan": round(1000 * scan / n, 2),
        "ratio_vs_seq_read": round(scan / read_seq, 2),
        "ratio_vs_pool_read": round(scan / read_par, 2),
        "goal": 1.5,
        "measured": done,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
