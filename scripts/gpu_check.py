"""A GPU check anyone with a card can run (under 8 minutes on one GPU):

1. trains each paper model (fcn, unet, deeplabv3plus, mffenet) a few hundred steps on
   generated 512 px tiles with the precision casdesk chooses for the card, and prints
   samples/s, peak GPU memory, the loader wait fraction and the precision;
2. forces a real CUDA out-of-memory error (most of the card is reserved first) and shows
   the engine halving the batch and finishing;
3. runs DDP with NCCL on the GPUs present (``torchrun --nproc_per_node <GPUs>``; with one
   GPU a single-process NCCL group checks the backend);
4. predicts a generated scene with the trained U-Net (and under torchrun with 2+ GPUs,
   comparing the files with the single-process ones).

``--cpu-smoke`` runs the same steps tiny on the CPU (gloo instead of NCCL), so the
script itself is tested without a GPU. The last line is one JSON object.

    python scripts/gpu_check.py                 # on a machine with a CUDA GPU
    python scripts/gpu_check.py --cpu-smoke     # seconds, anywhere
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from affine import Affine

PAPER_MODELS = ("fcn", "unet", "deeplabv3plus", "mffenet")
GPU = {"size": 512, "tiles": 160, "epochs": 12, "batch": 8, "workers": 6, "encoder": None, "scene": 3072}
SMOKE = {"size": 64, "tiles": 8, "epochs": 1, "batch": 2, "workers": 0, "encoder": "resnet18", "scene": 160}


def log(message: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def write_project(folder: Path, n: int, size: int) -> Path:
    """``n`` uint8 tiles with bright elliptic scars (labels) and a catalog; a 80/20 split."""
    from casdesk.core.dataset.splits import make_split
    from casdesk.core.project.catalog import Catalog

    rng = np.random.default_rng(0)
    tiles = folder / "tiles"
    tiles.mkdir(parents=True)
    yy, xx = np.mgrid[0:size, 0:size]
    rows = []
    transform = Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0)
    for i in range(n):
        mask = np.zeros((size, size), dtype=np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.uniform(0.15, 0.85, 2) * size
            ry, rx = rng.uniform(0.05, 0.2, 2) * size
            mask |= (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1).astype(np.uint8)
        image = rng.integers(30, 110, (3, size, size)).astype(np.uint8)
        image[:, mask > 0] = rng.integers(170, 240, (3, int(mask.sum()))).astype(np.uint8)
        paths = tiles / f"t{i:04d}.tif", tiles / f"t{i:04d}_mask.tif"
        for path, arr in zip(paths, (image, mask[None])):
            with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=arr.shape[0],
                               dtype="uint8", transform=transform, crs="EPSG:32633") as ds:
                ds.write(arr)
        rows.append({"name": paths[0].stem, "subdataset": "check", "image_path": paths[0],
                     "mask_path": paths[1], "width": size, "height": size})
    project = folder / "check.casdesk"
    with Catalog.create(project) as cat:
        cat.add_tiles(rows)
        make_split(cat, "random", "check", 0.2, 0)
    return project


def train_model(project: Path, out: Path, model: str, p: dict[str, Any], device: str,
                **extra: Any) -> dict[str, Any]:
    from casdesk.core.jobs import run_job
    from casdesk.ml.training.config import TrainConfig
    from casdesk.ml.training.trainer import train

    cfg = TrainConfig(model=model, encoder=p["encoder"] if model != "fcn" else None, epochs=p["epochs"],
                      batch_size=extra.pop("batch_size", p["batch"]), num_workers=p["workers"], device=device,
                      split="check", out_dir=str(out), log_every=25, schedule="poly", **extra)
    waits: list[float] = []
    ooms: list[str] = []
    notes: list[str] = []
    steps = [0]

    def on_event(ev: Any) -> None:
        kind = ev.data.get("event")
        if kind == "batch":
            steps[0] += 1
        if kind == "batch" and ev.data["batch"] == ev.data["batches"]:
            waits.append(float(ev.data["loader_wait"]))
        elif kind == "oom":
            ooms.append(ev.message)
            log(f"  {ev.message}")
        elif kind == "note":
            notes.append(ev.message)

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if torch.cuda.is_available():  # every device-to-host wait becomes a warning
            torch.cuda.set_sync_debug_mode("warn")
        try:
            result = run_job(train(project, cfg), on_event)
        finally:
            if torch.cuda.is_available():
                torch.cuda.set_sync_debug_mode("default")
    syncs = sum(1 for w in caught if "synchroniz" in str(w.message).lower())
    rates = [h["train"]["samples_per_s"] for h in result.history]
    return {
        "model": model, "status": result.status, "precision": result.precision,
        "steps": steps[0],
        # device syncs over the whole run (log points, epoch ends, validation included)
        "host_syncs_per_step": round(syncs / max(steps[0], 1), 2) if torch.cuda.is_available() else None,
        "samples_per_s": round(float(np.median(rates[1:] or rates)), 2),
        "loader_wait": round(float(np.median(waits[1:] or waits)), 3) if waits else None,
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None,
        "val_miou": round(float(result.best_metrics.get("miou", float("nan"))), 4),
        "batch_size": result.batch_size, "seconds": round(time.perf_counter() - t0, 1),
        "oom": ooms, "notes": notes, "run_dir": str(result.run_dir),
    }


def force_oom(project: Path, out: Path, p: dict[str, Any], device: str, smoke: bool) -> dict[str, Any]:
    """A real CUDA OOM: reserve most of the free memory, train with a large batch."""
    if smoke:  # no CUDA: inject the error the way the tests do
        import casdesk.ml.training.trainer as trainer

        real = trainer.get_loss

        def get_loss(name: str) -> Any:
            fn = real(name)

            def wrapped(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
                if logits.shape[0] >= 4:
                    raise torch.OutOfMemoryError("CUDA out of memory (injected by --cpu-smoke)")
                return fn(logits, target)

            return wrapped

        trainer.get_loss = get_loss
        try:
            return train_model(project, out, "deeplabv3plus", dict(p, epochs=1), device, batch_size=4)
        finally:
            trainer.get_loss = real
    free, _ = torch.cuda.mem_get_info()
    block = torch.empty(max(0, free - 6 * 2**30), dtype=torch.uint8, device="cuda")  # leave ~6 GiB
    try:
        return train_model(project, out, "deeplabv3plus", dict(p, epochs=1), device, batch_size=128)
    finally:
        del block
        torch.cuda.empty_cache()


def torchrun(nproc: int, args: list[str], env_extra: dict[str, str] | None = None,
             timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


NCCL_PROBE = """
import os, torch, torch.distributed as dist
dist.init_process_group("nccl")
torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
t = torch.ones(1, device="cuda")
dist.all_reduce(t)
print("nccl all_reduce", t.item(), "world", dist.get_world_size())
dist.destroy_process_group()
"""


def ddp_check(project: Path, out: Path, p: dict[str, Any], smoke: bool) -> dict[str, Any]:
    gpus = torch.cuda.device_count()
    if smoke:
        nproc, device, backend = 2, "cpu", "gloo"
    elif gpus >= 2:
        nproc, device, backend = gpus, "cuda", "nccl"
    else:
        probe = out / "nccl_probe.py"
        out.mkdir(parents=True, exist_ok=True)
        probe.write_text(NCCL_PROBE, encoding="utf-8")
        proc = torchrun(1, [str(probe)])
        return {"backend": "nccl", "processes": 1, "ok": proc.returncode == 0,
                "note": "one GPU: DDP training needs two; checked a single-process NCCL all-reduce",
                "output": (proc.stdout + proc.stderr)[-400:]}
    encoder = ["--encoder", p["encoder"]] if p["encoder"] else []
    t0 = time.perf_counter()
    proc = torchrun(nproc, ["-m", "casdesk", "train", str(project), "--model", "unet", *encoder,
                            "--split", "check", "--epochs", str(max(1, p["epochs"] // 3)),
                            "--batch-size", str(p["batch"]), "--workers", str(p["workers"]),
                            "--device", device, "--out", str(out), "--json", "--quiet"])
    ok = proc.returncode == 0
    result = json.loads(proc.stdout[proc.stdout.index("{"):]) if ok and "{" in proc.stdout else {}
    return {"backend": backend, "processes": nproc, "ok": ok, "seconds": round(time.perf_counter() - t0, 1),
            "device": result.get("device"), "precision": result.get("precision"),
            "val_miou": result.get("best_metrics", {}).get("miou"),
            "error": None if ok else proc.stderr[-1500:]}


def predict_check(model_file: Path, folder: Path, p: dict[str, Any], device: str, smoke: bool,
                  torchrun_too: bool = True) -> dict[str, Any]:
    from casdesk.core.dataset.synthetic import make_scene
    from casdesk.core.jobs import run_job
    from casdesk.ml.inference.scene import PredictOptions, predict_scene

    scene = make_scene(folder / "scene.tif", width=p["scene"], height=p["scene"], seed=1, resolution=0.5).path
    opts = PredictOptions(device=device, batch_size=8 if not smoke else 2, overlap=64 if not smoke else 16,
                          check_values=False, tile_size=p["size"])
    t0 = time.perf_counter()
    res = run_job(predict_scene(model_file, scene, folder / "pred1", opts))
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"windows": res.windows, "seconds": round(seconds, 2),
                           "windows_per_s": round(res.windows / max(seconds, 1e-9), 2),
                           "polygons": res.polygons, "device": res.device}
    nproc = 2 if smoke else torch.cuda.device_count()
    if nproc >= 2 and torchrun_too:
        proc = torchrun(nproc, ["-m", "casdesk", "predict", str(model_file), str(scene), "--out",
                                str(folder / "pred2"), "--device", device, "--tile-size", str(p["size"]),
                                "--overlap", str(opts.overlap), "--batch-size", str(opts.batch_size),
                                "--no-value-check"])
        same = proc.returncode == 0
        if same:
            for name in ("scene_prob.tif", "scene_mask.tif"):
                with rasterio.open(folder / "pred1" / name) as a, rasterio.open(folder / "pred2" / name) as b:
                    same = same and np.array_equal(a.read(), b.read())
        out.update(torchrun_processes=nproc, torchrun_same_files=same,
                   torchrun_error=None if proc.returncode == 0 else proc.stderr[-800:])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (tests the script)")
    parser.add_argument("--models", nargs="+", default=list(PAPER_MODELS), choices=PAPER_MODELS)
    parser.add_argument("--skip", nargs="+", default=[], choices=("oom", "ddp", "predict"),
                        help="leave out checks (ddp also leaves out the torchrun prediction)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    smoke = args.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU is visible (check nvidia-smi and the torch build); "
              "use --cpu-smoke to test the script on the CPU", file=sys.stderr)
        return 2
    p = SMOKE if smoke else GPU
    device = "cpu" if smoke else "cuda"
    started = time.perf_counter()
    summary: dict[str, Any] = {"torch": torch.__version__, "cpu_smoke": smoke}
    if not smoke:
        from casdesk.ml.device import device_precision

        props = torch.cuda.get_device_properties(0)
        summary["gpu"] = {"name": props.name, "count": torch.cuda.device_count(),
                          "capability": f"{props.major}.{props.minor}",
                          "memory_gib": round(props.total_memory / 2**30, 1),
                          "precision": device_precision(torch.device("cuda", 0))}
        log(f"GPU {props.name} x{torch.cuda.device_count()}, compute capability {props.major}.{props.minor}, "
            f"precision {summary['gpu']['precision']}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        log(f"writing {p['tiles']} tiles of {p['size']} px")
        project = write_project(folder / "project", p["tiles"], p["size"])
        models = []
        for model in args.models:
            log(f"training {model}")
            r = train_model(project, folder / f"run-{model}", model, p, device)
            models.append(r)
            log(f"  {model}: {r['status']}, {r['steps']} steps, {r['samples_per_s']} samples/s, loader wait "
                f"{r['loader_wait']}, peak GPU {r['peak_gpu_mib']} MiB, precision {r['precision']}, "
                f"host syncs/step {r['host_syncs_per_step']}, val mIoU {r['val_miou']}, {r['seconds']} s")
        summary["train"] = models
        if "oom" not in args.skip:
            log("forcing a CUDA out-of-memory error")
            oom = force_oom(project, folder / "run-oom", p, device, smoke)
            summary["oom"] = {"recovered": oom["status"] == "finished" and bool(oom["oom"]),
                              "messages": oom["oom"], "final_batch_size": oom["batch_size"]}
            log(f"  recovered: {summary['oom']['recovered']}, final batch size {oom['batch_size']}")
        if "ddp" not in args.skip:
            log("DDP")
            summary["ddp"] = ddp_check(project, folder / "run-ddp", p, smoke)
            log(f"  {summary['ddp']}")
        unet = next((m for m in models if m["model"] == "unet"), models[0] if models else None)
        if unet is not None and "predict" not in args.skip:
            log("predicting a scene")
            summary["predict"] = predict_check(Path(unet["run_dir"]) / "model.pt", folder, p, device, smoke,
                                               torchrun_too="ddp" not in args.skip)
            log(f"  {summary['predict']}")
    summary["seconds"] = round(time.perf_counter() - started, 1)
    ok = all(m["status"] == "finished" for m in summary["train"]) \
        and summary.get("oom", {}).get("recovered", True) and summary.get("ddp", {}).get("ok", True) \
        and summary.get("predict", {}).get("torchrun_same_files", True) is not False
    summary["ok"] = bool(ok)
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
