"""Training throughput: casdesk's training loop vs a bare segmentation_models_pytorch loop.

Both train the same model on the same generated GeoTIFF tiles with the same batch size,
optimizer, loss and DataLoader workers, in this one process; each measures samples/s of
its training phase (data loading included, validation excluded), the first epoch is
warm-up. Runs alternate (bare, casdesk, bare, casdesk...) so machine load hits both.
The last printed line is JSON with ``ratio`` = casdesk / bare (goal >= 0.95).

    python benchmarks/bench_train.py --model smp:Unet --encoder resnet18 --size 256
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from torch.utils.data import DataLoader, Dataset


def write_tiles(folder: Path, n: int, size: int, bands: int) -> list[tuple[Path, Path]]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    pairs = []
    for i in range(n):
        cy, cx, r = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.7) * size, rng.uniform(0.1, 0.2) * size
        mask = (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).astype(np.uint8)
        image = rng.integers(20, 90, (bands, size, size)).astype(np.uint8)
        image[:, mask > 0] += 120
        paths = (folder / f"t{i}.tif", folder / f"t{i}_m.tif")
        for path, arr in ((paths[0], image), (paths[1], mask[None])):
            with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=arr.shape[0],
                               dtype="uint8", transform=Affine(1, 0, 0, 0, -1, size), crs="EPSG:32633") as ds:
                ds.write(arr)
        pairs.append(paths)
    return pairs


class BareDataset(Dataset):
    """What a hand-written loop does: read with rasterio, standardise, return tensors."""

    def __init__(self, pairs: list[tuple[Path, Path]], mean: np.ndarray, std: np.ndarray):
        self.pairs, self.mean, self.std = pairs, mean[:, None, None], std[:, None, None]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        with rasterio.open(self.pairs[i][0]) as ds:
            image = ds.read().astype(np.float32)
        with rasterio.open(self.pairs[i][1]) as ds:
            mask = ds.read(1).astype(np.int64)
        return torch.from_numpy((image - self.mean) / self.std), torch.from_numpy(mask)


def bare_loop(args: argparse.Namespace, pairs: list[tuple[Path, Path]], device: torch.device,
              amp: torch.dtype | None) -> list[float]:
    import segmentation_models_pytorch as smp

    from casdesk.ml.training.losses import dice_loss

    torch.manual_seed(0)
    arch = args.model.removeprefix("smp:")
    model = smp.create_model(arch, encoder_name=args.encoder, encoder_weights=None, in_channels=args.bands,
                             classes=1).to(device)
    stack = np.stack([rasterio.open(p[0]).read().astype(np.float64) for p in pairs])
    mean, std = stack.mean(axis=(0, 2, 3)).astype(np.float32), stack.std(axis=(0, 2, 3)).astype(np.float32)
    loader = DataLoader(BareDataset(pairs, mean, std), batch_size=args.batch_size, shuffle=True,
                        num_workers=args.workers, pin_memory=device.type == "cuda", drop_last=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    rates = []
    for _ in range(args.epochs):
        model.train()
        t0, n = time.perf_counter(), 0
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp) if amp else torch.autocast(device.type, enabled=False):
                logits = model(x)
            loss = dice_loss(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += x.shape[0]
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(n / (time.perf_counter() - t0))
    return rates


def casdesk_loop(args: argparse.Namespace, project: Path, device: torch.device) -> list[float]:
    from casdesk.core.jobs import run_job
    from casdesk.ml.training.config import TrainConfig
    from casdesk.ml.training.trainer import train

    cfg = TrainConfig(model=args.model, encoder=args.encoder, epochs=args.epochs, batch_size=args.batch_size,
                      num_workers=args.workers, device=str(device), augment=False, amp=args.amp,
                      schedule="constant")
    result = run_job(train(project, cfg))
    return [h["train"]["samples_per_s"] for h in result.history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smp:Unet")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--tiles", type=int, default=48)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--bands", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from casdesk.core.dataset.splits import make_split
    from casdesk.core.project.catalog import Catalog
    from casdesk.ml.device import resolve_device

    device = resolve_device(args.device)
    amp = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pairs = write_tiles(folder, args.tiles, args.size, args.bands)
        project = folder / "bench.casdesk"
        with Catalog.create(project) as cat:
            cat.add_tiles([{"name": p[0].stem, "subdataset": "bench", "image_path": p[0], "mask_path": p[1],
                            "width": args.size, "height": args.size} for p in pairs])
            # train on every tile (like the bare loop); a small val part is required
            ids = [t.id for t in cat.tiles()]
            make_split(cat, "random", "bench", val_fraction=2 / len(ids), tile_ids=ids)
        n_train = len(pairs) - 2
        bare_pairs = pairs[:n_train]
        bare, ours = [], []
        for _ in range(args.repeats):
            bare += bare_loop(args, bare_pairs, device, amp)[1:]
            ours += casdesk_loop(args, project, device)[1:]
            print(f"bare {[round(r, 2) for r in bare]}  casdesk {[round(r, 2) for r in ours]}", flush=True)
    b, c = statistics.median(bare), statistics.median(ours)
    print(json.dumps({
        "benchmark": "train_samples_per_s", "model": args.model, "encoder": args.encoder,
        "tile_px": args.size, "train_tiles": n_train, "batch_size": args.batch_size, "workers": args.workers,
        "device": str(device), "amp": args.amp, "bare_samples_per_s": round(b, 3),
        "casdesk_samples_per_s": round(c, 3), "ratio": round(c / b, 3),
    }))


if __name__ == "__main__":
    main()
