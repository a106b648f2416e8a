"""Cropping throughput and peak memory.

Compares ``casdesk crop`` with a plain rasterio loop (read a window, write image, mask and
label tiles) on the same generated scene, in the same run, and measures peak RSS of the
crop for a scene and a 4x larger one (each in a fresh subprocess).

Goals: throughput ratio >= 1.0; peak RSS grows < 20 % for the 4x scene.
Prints a JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.windows import Window


def write_scene(path: Path, size: int, block: int = 1024) -> list:
    """A size x size 3-band uint8 scene written block by block (never whole in memory)."""
    rng = np.random.default_rng(0)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32648", "transform": Affine(0.5, 0, 500000, 0, -0.5, 3300000),
               "nodata": 0, "tiled": True, "blockxsize": 256, "blockysize": 256}
    base = rng.integers(40, 200, size=(3, block, block), dtype=np.uint8)
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(0, size, block):
            for c in range(0, size, block):
                dst.write(np.roll(base, (r + c) // 7, axis=2), window=Window(c, r, block, block))
    # a grid of landslide polygons, in map coordinates
    t = profile["transform"]
    polys = []
    for r in range(200, size, 700):
        for c in range(200, size, 700):
            px = shapely.Point(c, r).buffer(120)
            polys.append(shapely.affinity.affine_transform(px, [t.a, t.b, t.d, t.e, t.c, t.f]))
    return polys


def baseline_crop(scene: Path, out: Path, size: int) -> int:
    """What a user would write by hand: windows read and written one after another."""
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with rasterio.open(scene) as src:
        for r in range(0, src.height - size + 1, size):
            for c in range(0, src.width - size + 1, size):
                w = Window(c, r, size, size)
                data = src.read(window=w)
                prof = {"driver": "GTiff", "width": size, "height": size, "crs": src.crs,
                        "transform": src.window_transform(w)}
                with rasterio.open(out / f"img_{r}_{c}.tif", "w", count=3, dtype="uint8", nodata=0, **prof) as d:
                    d.write(data)
                mask = np.zeros((1, size, size), np.uint8)
                with rasterio.open(out / f"mask_{r}_{c}.tif", "w", count=1, dtype="uint8", **prof) as d:
                    d.write(mask)
                with rasterio.open(out / f"label_{r}_{c}.tif", "w", count=3, dtype="uint8", **prof) as d:
                    d.write(np.full((3, size, size), 255, np.uint8))
                n += 1
    return n


def casdesk_crop(scene: Path, labels: Path, project: Path, size: int) -> tuple[int, float]:
    from casdesk.core.dataset.scenes import add_scene
    from casdesk.core.dataset.tiling import CropParams, crop_scene
    from casdesk.core.jobs import run_job
    from casdesk.core.project.catalog import Catalog

    with Catalog.create(project) as cat:
        sid = add_scene(cat, scene, labels=labels).scene_id
        t0 = time.perf_counter()
        ids = run_job(crop_scene(cat, sid, CropParams(size, size, "drop")))
        return len(ids), time.perf_counter() - t0


def _child(scene: str, labels: str, project: str, size: int) -> None:
    n, dt = casdesk_crop(Path(scene), Path(labels), Path(project), size)
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"tiles": n, "seconds": dt, "peak_rss_mb": rss_kb / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=4096, help="scene side in pixels (the large one is 2x)")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--child", nargs=4)
    args = ap.parse_args()
    if args.child:
        _child(*args.child[:3], int(args.child[3]))
        return
    from casdesk.core.labels.io import write_vector_labels

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        results = {}
        for name, side in (("scene", args.size), ("scene4x", args.size * 2)):
            scene = tmp_path / f"{name}.tif"
            polys = write_scene(scene, side)
            wkt = rasterio.crs.CRS.from_epsg(32648).to_wkt()
            labels = write_vector_labels(polys, tmp_path / f"{name}.gpkg", wkt, {"label": ["landslide"] * len(polys)})
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(scene), str(labels), str(tmp_path / f"{name}.casdesk"),
                 str(args.tile)], capture_output=True, text=True, check=True)
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            results[name]["pixels"] = side * side
        # throughput: baseline and casdesk alternately in this process; best of 3 each
        scene = tmp_path / "scene.tif"
        labels = tmp_path / "scene.gpkg"
        t_base, t_ours = [], []
        for rep in range(3):
            t0 = time.perf_counter()
            nb = baseline_crop(scene, tmp_path / f"baseline{rep}", args.tile)
            t_base.append(time.perf_counter() - t0)
            n_ours, dt = casdesk_crop(scene, labels, tmp_path / f"ours{rep}.casdesk", args.tile)
            t_ours.append(dt)
        ours = results["scene"]
        tps_base = nb / min(t_base)
        tps_ours = n_ours / min(t_ours)
        growth = results["scene4x"]["peak_rss_mb"] / results["scene"]["peak_rss_mb"] - 1
        summary = {
            "benchmark": "crop",
            "cpus": os.cpu_count(),
            "scene_px": args.size,
            "tiles": ours["tiles"],
            "casdesk_tiles_per_s": round(tps_ours, 1),
            "baseline_tiles_per_s": round(tps_base, 1),
            "throughput_ratio": round(tps_ours / tps_base, 3),
            "peak_rss_mb": round(results["scene"]["peak_rss_mb"], 1),
            "peak_rss_4x_mb": round(results["scene4x"]["peak_rss_mb"], 1),
            "rss_growth_4x": round(growth, 3),
            "goal_met": tps_ours / tps_base >= 1.0 and growth < 0.2,
        }
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
