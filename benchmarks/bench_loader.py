"""Is the GPU fed? casdesk's tile loader against a bare rasterio read, and casdesk's training
loop against a bare segmentation_models_pytorch loop.

1. Loader: the same generated uint8 GeoTIFF tiles (image + mask) are read by

   * a bare DataLoader whose dataset only opens both files with rasterio and returns the
     arrays (the floor any loader has to pay), and
   * casdesk's :class:`~casdesk.ml.training.data.TileDataset` with augmentation through
     :func:`~casdesk.ml.training.data.make_loader` (persistent workers, prefetch),

   with the same batch size and worker processes; each is timed over whole passes after
   a warm-up pass, alternating. ``ratio`` = casdesk tiles/s / bare tiles/s (goal >= 0.8).
   ``pipeline_tiles_per_s`` adds the device transform (normalisation + augmentation)
   on ``--device``.
2. Training: casdesk's ``train()`` samples/s against a bare smp loop with the same model,
   batch and workers (``benchmarks/bench_train.py``'s loops; ``--no-train`` skips it).

The last printed line is one JSON object.

    python benchmarks/bench_loader.py --tiles 96 --size 512 --workers 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import rasterio
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))


class BareRead(Dataset):
    """Only the file reads: rasterio image + mask, returned as they are."""

    def __init__(self, pairs: list[tuple[Path, Path]]):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        with rasterio.open(self.pairs[i][0]) as ds:
            image = ds.read()
        with rasterio.open(self.pairs[i][1]) as ds:
            mask = ds.read(1)
        return torch.from_numpy(image), torch.from_numpy(mask)


def _pass(loader: Any, transform: Any = None) -> float:
    t0, n = time.perf_counter(), 0
    for batch in loader:
        if transform is not None:
            x, _ = transform(batch[0], batch[1], batch[2])
            if x.device.type == "cuda":
                torch.cuda.synchronize()
        n += batch[0].shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiles", type=int, default=96)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--augment", default="flips", choices=("none", "flips", "paper"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-train", action="store_true", help="skip the training-loop comparison")
    parser.add_argument("--train-size", type=int, default=128, help="tile size of the training comparison")
    parser.add_argument("--train-tiles", type=int, default=32)
    parser.add_argument("--model", default="smp:Unet")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    from bench_train import bare_loop, casdesk_loop, write_tiles

    from casdesk.core.dataset.splits import make_split
    from casdesk.core.project.catalog import Catalog
    from casdesk.ml.device import resolve_device
    from casdesk.ml.training.data import Normalization, TileDataset, TileRef, make_loader

    device = resolve_device(args.device)
    out: dict[str, Any] = {"benchmark": "loader_and_train", "tile_px": args.size, "tiles": args.tiles,
                           "batch_size": args.batch_size, "workers": args.workers, "augment": args.augment,
                           "device": str(device)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pairs = write_tiles(folder, args.tiles, args.size, 3)
        refs = [TileRef(i, p[0], p[1], args.size, args.size) for i, p in enumerate(pairs)]
        ours_set = TileDataset(refs, Normalization([60.0] * 3, [30.0] * 3), augment=args.augment, seed=0)
        transform = ours_set.transform(device)
        bare = DataLoader(BareRead(pairs), batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                          persistent_workers=args.workers > 0)
        ours = make_loader(ours_set, args.batch_size, torch.randperm(len(refs)).tolist(),
                           num_workers=args.workers)
        _pass(bare), _pass(ours)  # warm-up: worker start, page cache
        b_rates, o_rates, p_rates = [], [], []
        for _ in range(args.repeats):
            b_rates.append(_pass(bare))
            o_rates.append(_pass(ours))
            p_rates.append(_pass(ours, transform))
        b, o = statistics.median(b_rates), statistics.median(o_rates)
        out.update(bare_read_tiles_per_s=round(b, 1), loader_tiles_per_s=round(o, 1),
                   pipeline_tiles_per_s=round(statistics.median(p_rates), 1), ratio=round(o / b, 3),
                   bytes_per_tile={"casdesk_wire": int(3 * args.size**2 + args.size**2),
                                   "float32_int64": int(3 * args.size**2 * 4 + args.size**2 * 8)})
        print(f"loader: bare {b_rates}  casdesk {o_rates}  +device transform {p_rates}", flush=True)
        del bare, ours

        if not args.no_train:
            (folder / "train").mkdir()
            tpairs = write_tiles(folder / "train", args.train_tiles, args.train_size, 3)
            project = folder / "bench.casdesk"
            with Catalog.create(project) as cat:
                cat.add_tiles([{"name": p[0].stem, "subdataset": "bench", "image_path": p[0], "mask_path": p[1],
                                "width": args.train_size, "height": args.train_size} for p in tpairs])
                ids = [t.id for t in cat.tiles()]
                make_split(cat, "random", "bench", val_fraction=2 / len(ids), tile_ids=ids)
            targs = argparse.Namespace(model=args.model, encoder=args.encoder, bands=3, batch_size=args.batch_size,
                                       workers=args.workers, epochs=args.epochs, amp="off")
            bare_r = bare_loop(targs, tpairs[:-2], device, None)[1:]
            ours_r = casdesk_loop(targs, project, device)[1:]
            print(f"train: bare {bare_r}  casdesk {ours_r}", flush=True)
            bt, ot = statistics.median(bare_r), statistics.median(ours_r)
            out.update(train_tile_px=args.train_size, bare_train_samples_per_s=round(bt, 2),
                       casdesk_train_samples_per_s=round(ot, 2), train_ratio=round(ot / bt, 3))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
