"""Scene inference throughput and peak memory.

1. Throughput: ``predict_scene`` on a generated scene (reading, normalising, blending,
   writing the GeoTIFFs; polygons off) against a bare loop of model forwards on the same
   number of windows and batch size (random tensors already in memory): the ceiling any
   tiled inference can reach. Goal: ratio (bare time / scene time) >= 0.9.
2. Peak RSS of ``predict_scene`` (polygons on) for a scene and one 4x larger (2x each
   side), each in a fresh subprocess. Goal: growth < 20 %. By default this runs with a
   tiny brightness "model" (fast on a CPU, realistic masks; the model's own memory does
   not change with the scene); ``--rss-model file`` uses the registry model of the
   throughput part (random weights: noisy masks, many polygons, slow polygonisation).

Prints a JSON line last. Example: ``python benchmarks/bench_predict.py --threads 2``.
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
from affine import Affine
from rasterio.windows import Window


def write_scene(path: Path, width: int, height: int, block: int = 512) -> None:
    """A 3-band uint8 scene with bright scars on texture, written block by block."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:block, 0:block]
    base = rng.integers(30, 90, (3, block, block)).astype(np.uint8)
    scar = np.zeros((block, block), bool)
    for _ in range(6):
        cy, cx, r = rng.uniform(40, block - 40), rng.uniform(40, block - 40), rng.uniform(10, 35)
        scar |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    base[:, scar] = 210
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32648", "transform": Affine(0.5, 0, 500000, 0, -0.5, 3300000),
               "nodata": 0, "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(0, height, block):
            for c in range(0, width, block):
                w = Window(c, r, min(block, width - c), min(block, height - r))
                dst.write(base[:, : w.height, : w.width], window=w)


def make_model_file(path: Path, arch: str, encoder: str, tile: int) -> None:
    import torch

    from casdesk.ml.modelfile import save_model_file
    from casdesk.ml.models.registry import create_model

    torch.manual_seed(0)
    model = create_model(arch, encoder=encoder, in_channels=3, classes=1)
    save_model_file(path, model, {
        "architecture": arch, "encoder": encoder, "in_channels": 3, "bands": 3, "classes": 1,
        "threshold": 0.5, "tile_size": [tile, tile],
        "normalization": {"mean": [60.0] * 3, "std": [40.0] * 3},
    })


def tiny_predictor(tile: int):  # a Predictor (torch imported lazily)
    import torch
    from torch import nn

    from casdesk.ml.inference.scene import Predictor

    class Bright(nn.Module):
        """Bright (scar) pixels are landslide, smoothed 5x5: masks like a real model's."""

        def __init__(self) -> None:
            super().__init__()
            self.pool = nn.AvgPool2d(5, stride=1, padding=2, count_include_pad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.pool(6.0 * (x.mean(dim=1, keepdim=True) - 1.5))

    net = Bright()
    meta = {"architecture": "tiny", "in_channels": 3, "classes": 1, "threshold": 0.5,
            "tile_size": [tile, tile], "normalization": {"mean": [60.0] * 3, "std": [40.0] * 3}}
    return Predictor(net.eval(), meta, torch.device("cpu"), "tiny")


def bare_forwards(model_file: Path, windows: int, batch: int, tile: int, device: str) -> float:
    """Seconds for ``windows`` forwards (in batches) of random in-memory tensors."""
    import torch

    from casdesk.ml.inference.scene import load_predictor

    pred = load_predictor(model_file, device)
    x = torch.randn(batch, 3, tile, tile)
    with torch.inference_mode():
        pred.probabilities(x.to(pred.device)).cpu()  # warm up
        t = time.perf_counter()
        done = 0
        while done < windows:
            n = min(batch, windows - done)
            pred.probabilities(x[:n].to(pred.device)).float().cpu().numpy()
            done += n
        return time.perf_counter() - t


def scene_run(model_file: Path, scene: Path, out: Path, overlap: int, batch: int, device: str) -> tuple[float, int]:
    from casdesk.core.jobs import run_job
    from casdesk.ml.inference.scene import load_predictor, predict_scene

    pred = load_predictor(model_file, device)
    import torch

    with torch.inference_mode():  # warm up, as the bare loop does
        tile = pred.tile_size
        pred.probabilities(torch.zeros(batch, 3, *tile, device=pred.device)).cpu()
    t = time.perf_counter()
    res = run_job(predict_scene(pred, scene, out, overlap=overlap, batch_size=batch, vector=None))
    return time.perf_counter() - t, res.windows - res.windows_skipped


def peak_rss_bytes() -> int:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the
    parent across fork/exec, so a child of a big process would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from casdesk.core.jobs import run_job
    from casdesk.ml.inference.scene import load_predictor, predict_scene

    pred = tiny_predictor(args.tile) if args.rss_model == "tiny" else load_predictor(args.model_file, args.device)
    t = time.perf_counter()
    res = run_job(predict_scene(pred, args.scene, args.out, overlap=args.overlap, batch_size=args.batch))
    print(json.dumps({"rss_bytes": peak_rss_bytes(),
                      "windows": res.windows, "polygons": res.polygons,
                      "seconds": time.perf_counter() - t}))


def peak_rss(args: argparse.Namespace, scene: Path, out: Path, model_file: Path) -> dict:
    cmd = [sys.executable, __file__, "--rss-child", "--scene", str(scene), "--out", str(out),
           "--model-file", str(model_file), "--rss-model", args.rss_model, "--tile", str(args.tile),
           "--overlap", str(args.overlap), "--batch", str(args.batch), "--threads", str(args.threads),
           "--device", args.device]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="unet")
    ap.add_argument("--encoder", default="mobilenet_v2")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--overlap", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=768, help="throughput scene side (pixels)")
    ap.add_argument("--rss-size", type=int, default=2048, help="RSS scene side; the large one is 2x")
    ap.add_argument("--rss-model", choices=("tiny", "file"), default="tiny")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--model-file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args.rss_child:
        rss_child(args)
        return
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="casdesk-bench-predict-") as tmp:
        d = Path(tmp)
        model_file = d / "model.pt"
        make_model_file(model_file, args.arch, args.encoder, args.tile)
        scene = d / "scene.tif"
        write_scene(scene, args.size, args.size)
        scene_t, bare_t = [], []
        windows = 0
        for i in range(args.repeats):
            s, windows = scene_run(model_file, scene, d / f"out{i}", args.overlap, args.batch, args.device)
            scene_t.append(s)
            bare_t.append(bare_forwards(model_file, windows, args.batch, args.tile, args.device))
            print(f"run {i}: scene {s:.2f} s, bare forwards {bare_t[-1]:.2f} s ({windows} windows)",
                  file=sys.stderr)
        ratio = min(bare_t) / min(scene_t)
        small, big = d / "small.tif", d / "big.tif"
        write_scene(small, args.rss_size, args.rss_size)
        write_scene(big, 2 * args.rss_size, 2 * args.rss_size)
        a = peak_rss(args, small, d / "rs", model_file)
        b = peak_rss(args, big, d / "rb", model_file)
        growth = b["rss_bytes"] / a["rss_bytes"] - 1.0
        result = {
            "bench": "predict", "device": args.device, "threads": args.threads,
            "model": f"{args.arch}/{args.encoder}", "tile": args.tile, "overlap": args.overlap,
            "batch": args.batch, "scene": [args.size, args.size], "windows": windows,
            "scene_s": round(min(scene_t), 3), "bare_forward_s": round(min(bare_t), 3),
            "windows_per_s": round(windows / min(scene_t), 2),
            "throughput_ratio": round(ratio, 3), "throughput_goal": 0.9,
            "rss_model": args.rss_model,
            "rss_scene": [args.rss_size, args.rss_size], "rss_mib": round(a["rss_bytes"] / 2**20, 1),
            "rss_scene_4x": [2 * args.rss_size, 2 * args.rss_size],
            "rss_4x_mib": round(b["rss_bytes"] / 2**20, 1),
            "rss_growth": round(growth, 3), "rss_growth_goal": 0.2,
            "rss_seconds": [round(a["seconds"], 1), round(b["seconds"], 1)],
        }
        print(json.dumps(result))


if __name__ == "__main__":
    main()
