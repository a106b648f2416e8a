"""``casdesk split``, ``casdesk train`` and ``casdesk evaluate``.

torch is imported inside the command functions only, so ``casdesk --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from casdesk.commands.common import float_range, int_range, interruptible, open_project, print_json


def register(sub: argparse._SubParsersAction) -> None:
    _register_split(sub)
    _register_train(sub)
    _register_evaluate(sub)


# --------------------------------------------------------------------------- split
def _register_split(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "split",
        help="make a named train/validation split of the project's tiles",
        description="Make a reproducible train/validation split and store it in the project. "
        "random: seeded 7:3 per subdataset (the paper); spatial: whole spatial blocks of a "
        "scene go to one side, so overlapping tiles never straddle the split; holdout: the "
        "named subdatasets are the validation set.",
    )
    p.add_argument("project", help="the project file (.casdesk)")
    p.add_argument("--kind", choices=("random", "spatial", "holdout"), default="random")
    p.add_argument("--val-fraction", type=float_range(0, 1, "validation fraction", lo_open=True, hi_open=True),
                   default=0.3, help="validation share, between 0 and 1 (default 0.3)")
    p.add_argument("--holdout", nargs="+", default=[], metavar="NAME", help="subdatasets held out for validation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--block-px", type=int_range(8, None, "block size"), default=None,
                   help="spatial block side in pixels, 8 or more (default 4 tiles)")
    p.add_argument("--name", default=None, help="split name (default e.g. random-70-30-s0)")
    p.add_argument("--overwrite", action="store_true", help="replace a split of the same name")
    p.add_argument("--list", action="store_true", help="list the project's splits and exit")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_split)


def cmd_split(args: argparse.Namespace) -> int:
    from casdesk.core.dataset.splits import list_splits, make_split

    with open_project(args.project) as catalog:
        if not args.list:
            make_split(
                catalog, args.kind, args.name, args.val_fraction, args.seed, args.holdout,
                block_px=args.block_px, overwrite=args.overwrite,
            )
        splits = list_splits(catalog)
    shown = splits if args.list else splits[-1:]
    if args.json:
        print_json(shown if args.list else shown[0])
        return 0
    for s in shown:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(s["counts"].items()))
        print(f"{s['name']}  ({s['kind']}; {counts})")
    return 0


# --------------------------------------------------------------------------- train
TRAIN_FLAGS: dict[str, dict[str, Any]] = {
    "--model": {"help": "fcn, unet, deeplabv3plus, mffenet or smp:<Arch> (default deeplabv3plus)"},
    "--encoder": {"help": "encoder name (default: resnet50; vgg16 for fcn)"},
    "--encoder-weights": {"help": "none, imagenet (download) or a local weight file"},
    "--classes": {"type": int, "help": "1 (sigmoid, default) or 2 (softmax)"},
    "--split": {"help": "split name (default: the newest split, or a new random 7:3 split)"},
    "--epochs": {"type": int_range(1, None, "epochs"), "help": "default 50"},
    "--batch-size": {"type": int_range(1, None, "batch size"), "help": "default 8"},
    "--lr": {"type": float_range(0, float("inf"), "learning rate", lo_open=True), "help": "learning rate (default 0.01)"},
    "--optimizer": {"choices": ("sgd", "adamw"), "help": "default sgd (momentum 0.9, wd 5e-4)"},
    "--momentum": {"type": float},
    "--weight-decay": {"type": float},
    "--schedule": {"choices": ("poly", "cosine", "constant"), "help": "default poly"},
    "--loss": {"help": "dice (default), bce, focal, lovasz, dice+bce"},
    "--amp": {"choices": ("auto", "off", "bf16", "fp16"),
              "help": "precision on CUDA (default auto: bf16 from compute capability 8.0, fp16 below, fp32 on CPU)"},
    "--recipe": {"choices": ("custom", "paper"),
                 "help": "paper: the authors' settings for the model (explicit flags still win)"},
    "--normalization": {"choices": ("dataset", "imagenet"),
                        "help": "dataset: band mean/std of the training tiles (default); imagenet: /255 then ImageNet mean/std"},
    "--augment": {"choices": ("none", "flips", "paper"),
                  "help": "flips (default: flips, 90 degree turns, jitter), paper (flip, scale-crop, blur) or none"},
    "--head-lr-mult": {"type": float, "help": "learning-rate factor of the decoder/head (the authors use 10)"},
    "--grad-accum": {"type": int, "help": "batches per optimizer step"},
    "--early-stopping": {"type": int, "metavar": "EPOCHS", "help": "stop after this many epochs without val mIoU gain"},
    "--seed": {"type": int},
    "--device": {"help": "auto (default), cpu, cuda, cuda:N, mps"},
    "--workers": {"type": int_range(0, 64, "workers"), "dest": "num_workers", "help": "DataLoader worker processes, 0 to 64 (default 2)"},
    "--threshold": {"type": float_range(0, 1, "threshold"), "help": "landslide probability threshold (default 0.5)"},
    "--name": {"help": "run name"},
    "--out": {"dest": "out_dir", "metavar": "RUN_DIR", "help": "run folder (default inside the project folder)"},
}
BOOL_FLAGS = {
    "--channels-last": ("channels_last", True, "use channels-last memory format"),
    "--deterministic": ("deterministic", True, "reproducible kernels (slower on GPU)"),
    "--no-augment": ("augment", "none", "no augmentation (same as --augment none)"),
    "--drop-last": ("drop_last", True, "drop the last incomplete training batch (the authors do)"),
    "--no-sync-bn": ("sync_bn", False, "per-process BatchNorm under torchrun (default: SyncBatchNorm on GPUs)"),
    "--all-tiles": ("qc_accepted_only", False, "also train on tiles QC rejected"),
}


def _register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a segmentation model on the project's tiles",
        description="Train a landslide segmentation model (defaults as in the CAS Landslide paper: "
        "SGD lr 0.01, momentum 0.9, weight decay 5e-4, Dice loss). Settings come from the "
        "defaults, then --config FILE.toml, then the flags. Ctrl+C stops after the current "
        "batch and leaves a checkpoint: continue with --resume RUN_DIR. Run under "
        "`torchrun --nproc_per_node N` for multi-GPU (DistributedDataParallel).",
    )
    p.add_argument("project", help="the project file (.casdesk)")
    for flag, kwargs in TRAIN_FLAGS.items():
        p.add_argument(flag, default=None, **kwargs)
    for flag, (dest, value, text) in BOOL_FLAGS.items():
        p.add_argument(flag, dest=dest, action="store_const", const=value, default=None, help=text)
    p.add_argument("--config", metavar="FILE.toml", help="settings file (keys as TrainConfig fields)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a stopped run from its last checkpoint with its saved settings "
                   "(only --device, --workers may be given to change them)")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.set_defaults(func=cmd_train)


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = [kw.get("dest", flag[2:].replace("-", "_")) for flag, kw in TRAIN_FLAGS.items()]
    keys += [dest for dest, _, _ in BOOL_FLAGS.values()]
    values = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if str(values.get("encoder_weights", "")).lower() == "none":
        values["encoder_weights"] = None
    return values


def _explicit_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the user gave: the --config file's, then the flags."""
    values: dict[str, Any] = {}
    if args.config:
        import tomllib
        from pathlib import Path

        from casdesk.ml.errors import TrainingError

        path = Path(args.config)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise TrainingError("config file not found", path) from exc
        except tomllib.TOMLDecodeError as exc:
            raise TrainingError(f"not valid TOML ({exc})", path) from exc
        values.update(data.get("train", data))
        if isinstance(values.get("encoder_weights"), str) and values["encoder_weights"].lower() == "none":
            values["encoder_weights"] = None
    values.update(_train_overrides(args))
    return values


def build_train_config(explicit: dict[str, Any]) -> Any:
    """TrainConfig from defaults, then the recipe (``recipe = "paper"``), then ``explicit``."""
    from dataclasses import fields, replace

    from casdesk.ml.training import config as config_module
    from casdesk.ml.training.config import TrainConfig

    cfg = TrainConfig.from_dict(explicit)
    if cfg.recipe != "paper":
        return cfg
    apply = getattr(config_module, "apply_recipe", None)
    if callable(apply):
        based = apply(cfg)
        return replace(based if isinstance(based, TrainConfig) else cfg, **explicit)
    recipe = getattr(config_module, "PAPER_RECIPE", None)
    if isinstance(recipe, dict):
        names = {f.name for f in fields(TrainConfig)}
        model_recipe = recipe.get(cfg.model)
        per_model: dict[str, Any] = model_recipe if isinstance(model_recipe, dict) else recipe
        base = {k: v for k, v in per_model.items() if k in names}
        return replace(TrainConfig(), **{**base, **explicit})
    from casdesk.ml.errors import TrainingError

    raise TrainingError("the paper recipe is not available in this casdesk", hint="use --recipe custom")


def cmd_train(args: argparse.Namespace) -> int:
    from casdesk.core.evaluation.metrics import format_table

    explicit = _explicit_settings(args)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    from casdesk.ml.training.trainer import train

    with open_project(args.project) as catalog, interruptible() as token:
        if args.resume:  # the saved settings, changed only where the user said so
            job = train(catalog, None, cancel=token if main_rank else None, resume=args.resume,
                        overrides=explicit)
        else:
            job = train(catalog, build_train_config(explicit), cancel=token if main_rank else None)
        result = _drive_training(job, quiet=args.quiet or not main_rank)
    if not main_rank:
        return 0
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"run {result.run_id}: {result.status} after {result.epochs_done} epoch(s) on {result.device} "
              f"({result.precision})")
        if result.best_metrics:
            print(f"best epoch {result.best_epoch} (validation):")
            print(format_table(result.best_metrics))
        print(f"model file: {result.model_path}")
    if result.status == "cancelled":
        print(f"stopped; continue with: casdesk train {args.project} --resume {result.run_dir}", file=sys.stderr)
        return 130
    return 0


def _drive_training(job: Any, quiet: bool) -> Any:
    """Live progress: a tqdm bar over the batches on a terminal, one line per epoch."""
    from tqdm import tqdm

    from casdesk.core.jobs import run_job

    bar = tqdm(unit="batch", disable=quiet or not sys.stderr.isatty(), file=sys.stderr, leave=False)

    def show(event: Any) -> None:
        kind = event.data.get("event")
        if kind == "batch":
            bar.total = event.total
            bar.n = event.done
            bar.set_postfix(loss=f"{event.data['loss']:.4f}", sps=f"{event.data['samples_per_s']:.1f}",
                            refresh=False)
            bar.refresh()
        elif kind in ("epoch", "start", "oom", "note") and not quiet:
            bar.clear()
            print(event.message, file=sys.stderr)

    try:
        return run_job(job, show)
    finally:
        bar.close()


# --------------------------------------------------------------------------- evaluate
def _register_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a model file (or a run's best.ckpt/last.ckpt) on a project's split",
        description="Compute precision, recall, IoU and F1 of the landslide class, background "
        "IoU/F1, mIoU, the class-averaged F1 (the paper's 'F1 score') and overall accuracy, "
        "from one confusion matrix over all evaluated tiles.",
    )
    p.add_argument("model_file", help="a model.pt, best.ckpt or last.ckpt written by `casdesk train` (or its run folder)")
    p.add_argument("project", help="the project file (.casdesk)")
    p.add_argument("--split", default=None, help="split name (default: the model's split, else all tiles)")
    p.add_argument("--part", default="val", choices=("train", "val", "test"))
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int_range(1, None, "batch size"), default=4)
    p.add_argument("--workers", type=int_range(0, 64, "workers"), default=0, dest="num_workers")
    p.add_argument("--all-tiles", action="store_true", help="include tiles QC rejected")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from casdesk.commands.common import drive
    from casdesk.core.evaluation.metrics import format_table
    from casdesk.ml.training.evaluate import evaluate

    with open_project(args.project) as catalog, interruptible() as token:
        job = evaluate(
            args.model_file, catalog, args.split, args.part, device=args.device,
            batch_size=args.batch_size, num_workers=args.num_workers,
            qc_accepted_only=not args.all_tiles, cancel=token,
        )
        result = drive(job, "evaluate", quiet=args.json)
    if args.json:
        print_json(result.to_dict())
        return 0
    where = f"split {result.split}, {result.part}" if result.split else "all tiles"
    print(f"{result.tiles} tiles ({where}) on {result.device}")
    print(format_table(result.metrics))
    return 0
