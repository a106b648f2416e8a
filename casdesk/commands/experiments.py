"""CLI: the paper's experiments (``casdesk experiment``) and the model list (``casdesk models``).

``casdesk experiment table5|table6|table7 PROJECT`` plans the table's runs
(:mod:`casdesk.core.evaluation.experiments`, the same planning as the GUI's presets),
stores each run's split, trains the runs one after the other with the same trainer as
``casdesk train`` (so ``torchrun --nproc_per_node N -m casdesk experiment ...`` trains each
run on N GPUs), and writes a Markdown table of casdesk's numbers next to the paper's.
torch is imported inside the command functions only, so ``casdesk --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from casdesk.commands.common import interruptible, open_project, print_json

TABLE_CHOICES = ("table5", "table6", "table7")


def register(sub: argparse._SubParsersAction) -> None:
    _register_experiment(sub)
    _register_models(sub)


# --------------------------------------------------------------------------- experiment
def _register_experiment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiment",
        help="run the paper's Table 5, 6 or 7 experiment and compare with its numbers",
        description="Run a CAS Landslide Dataset paper experiment on a project holding the released "
        "CAS subdatasets. table5: fcn, unet, deeplabv3plus and mffenet on UAV, SAT and UAV+SAT tiles, "
        "seeded random 7:3 split per subdataset (12 runs). table6: deeplabv3plus on the SAT tiles QC "
        "keeps vs all SAT tiles (2 runs). table7: deeplabv3plus trained on the UAV, SAT and UAV+SAT "
        "tiles outside Moxitaidi, validated on the three Moxitaidi subdatasets (3 runs). Runs use "
        "the paper recipe unless --recipe custom. A finished experiment writes a Markdown table "
        "(casdesk vs paper, with the difference) into the project folder. Under `torchrun` every "
        "run trains on all processes.",
    )
    p.add_argument("table", choices=TABLE_CHOICES, help="the paper table to reproduce")
    p.add_argument("project", help="the project file (.casdesk)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 50)")
    p.add_argument("--recipe", choices=("paper", "custom"), default="paper",
                   help="training recipe (default paper: 2 classes, Dice, SGD 0.01/0.9/5e-4, ImageNet "
                   "encoders and normalisation, the authors' augmentation, drop_last)")
    p.add_argument("--only", nargs="+", metavar="TEXT", default=None,
                   help="run only the runs whose name contains one of these texts (e.g. 'mffenet', 'UAV+SAT')")
    p.add_argument("--seed", type=int, default=0, help="split and training seed (default 0)")
    p.add_argument("--batch-size", type=int, default=None, help="default 8")
    p.add_argument("--encoder-weights", default=None,
                   help="imagenet (the paper recipe's default), none, or a local weight file")
    p.add_argument("--head-lr-mult", type=float, default=None,
                   help="learning-rate factor of the decoder/head (default 1; the authors' DeepLab code uses 10)")
    p.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default=None)
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--workers", type=int, default=None, dest="num_workers", help="DataLoader workers (default 2)")
    p.add_argument("--out", metavar="FILE.md", default=None,
                   help="where to write the comparison table (default <project>.casdesk.d/experiments/)")
    p.add_argument("--dry-run", action="store_true", help="print the planned runs and tile counts; train nothing")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing; write the table from the newest finished runs of this experiment")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.set_defaults(func=cmd_experiment)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The experiment-wide training settings the user gave (None: the recipe's/defaults)."""
    values = {
        "epochs": args.epochs, "batch_size": args.batch_size, "encoder_weights": args.encoder_weights,
        "head_lr_mult": args.head_lr_mult, "amp": args.amp, "device": args.device,
        "num_workers": args.num_workers, "seed": args.seed,
    }
    return {k: v for k, v in values.items() if v is not None}


def _select(runs: list[Any], only: list[str] | None) -> list[Any]:
    from casdesk.core.evaluation.experiments import ExperimentError

    if not only:
        return runs
    chosen = [r for r in runs if any(o.lower() in r.name.lower() for o in only)]
    if not chosen:
        raise ExperimentError(f"no run matches {', '.join(only)}",
                              hint="runs: " + "; ".join(r.name for r in runs))
    return chosen


def cmd_experiment(args: argparse.Namespace) -> int:
    from casdesk.core.evaluation import experiments as ex

    with open_project(args.project, readonly=args.dry_run or args.report_only) as catalog:
        runs = _select(ex.plan_experiment(catalog, args.table), args.only)
        plan = ex.describe_plan(catalog, runs, seed=args.seed)
        if args.dry_run:
            _print_plan(plan, args)
            return 0
        if args.report_only:
            found = ex.latest_results(catalog, runs)
            rows = _rows(plan, found)
            path = _write_report(catalog, args, rows, {"recipe": args.recipe})
            _print_rows(rows, path, args)
            return 0
        ex.check_plan(plan, catalog)
        return _run_experiment(catalog, runs, plan, args)


def _configs(runs: list[Any], plan: dict[str, Any], args: argparse.Namespace) -> list[Any]:
    """One validated TrainConfig per run (split filled in later); weights checked first."""
    from casdesk.core.evaluation.experiments import run_settings
    from casdesk.ml.training.config import TrainConfig

    configs = [TrainConfig.from_recipe(args.recipe, **{**_settings(args), **run_settings(run, "")}).validate()
               for run in runs]
    _check_weights(configs)
    return configs


def _check_weights(configs: list[Any]) -> None:
    """Fail before any split or training when pretrained weights are missing (offline)."""
    from casdesk.ml.errors import ModelError
    from casdesk.ml.models import weights
    from casdesk.ml.models.registry import resolve_spec

    seen: set[tuple[str, str]] = set()
    for cfg in configs:
        if cfg.encoder_weights is None:
            continue
        encoder = cfg.encoder or resolve_spec(cfg.model).default_encoder
        if (encoder, str(cfg.encoder_weights)) in seen:
            continue
        seen.add((encoder, str(cfg.encoder_weights)))
        if str(cfg.encoder_weights).lower() == "imagenet":
            if weights.has_imagenet_file(encoder):
                weights.imagenet_file(encoder)  # cached, downloaded, or WeightsUnavailable
        elif not Path(cfg.encoder_weights).expanduser().is_file():
            raise ModelError("encoder weight file not found", cfg.encoder_weights, "check the path")


def _run_experiment(catalog: Any, runs: list[Any], plan: dict[str, Any], args: argparse.Namespace) -> int:
    from dataclasses import replace

    from casdesk.core.evaluation import experiments as ex
    from casdesk.ml.training import distributed
    from casdesk.ml.training.trainer import train

    configs = _configs(runs, plan, args)
    # under torchrun: one process group for the whole experiment; rank 0 writes the splits
    ctx, _device = distributed.setup(configs[0].device)
    try:
        splits: Any = None
        if ctx.is_main:
            splits = [ex.prepare_split(catalog, run, seed=args.seed) for run in runs]
        ctx.barrier()
        splits = ctx.broadcast_object(splits)
        results: dict[str, dict[str, Any]] = {}
        quiet = args.quiet or args.json or not ctx.is_main
        status = 0
        with interruptible() as token:
            for i, (run, config, split) in enumerate(zip(runs, configs, splits), start=1):
                if not quiet:
                    print(f"[{i}/{len(runs)}] {run.name}: split {split}", file=sys.stderr)
                job = train(catalog, replace(config, split=split), cancel=token if ctx.is_main else None)
                result = _drive(job, quiet)
                results[run.name] = {"run_id": result.run_id, "status": result.status,
                                     "metrics": result.best_metrics or None}
                if result.status == "cancelled":
                    status = 130
                    break
        if not ctx.is_main:
            return 0
        rows = _rows(plan, results)
        shown = {"recipe": args.recipe, "epochs": configs[0].epochs, "batch size": configs[0].batch_size,
                 "encoder weights": configs[0].encoder_weights or "none", "seed": args.seed}
        path = _write_report(catalog, args, rows, shown)
        _print_rows(rows, path, args)
        if status:
            print("stopped; the table holds the runs finished so far", file=sys.stderr)
        return status
    finally:
        ctx.close()


def _drive(job: Any, quiet: bool) -> Any:
    from casdesk.core.jobs import run_job

    def show(event: Any) -> None:
        if not quiet and event.data.get("event") in ("epoch", "start", "oom", "note"):
            print(event.message, file=sys.stderr)

    return run_job(job, show)


def _rows(plan: dict[str, Any], results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for run in plan["runs"]:
        found = results.get(run["name"], {})
        rows.append({**run, "metrics": found.get("metrics"), "run_id": found.get("run_id"),
                     "status": found.get("status")})
    return rows


def _write_report(catalog: Any, args: argparse.Namespace, rows: list[dict[str, Any]],
                  settings: dict[str, Any]) -> Path:
    from casdesk.core.evaluation.experiments import experiment_report
    from casdesk.core.project.catalog import utc_now

    text = experiment_report(args.table, rows, settings)
    if args.out:
        path = Path(args.out).expanduser()
    else:
        stamp = utc_now().replace(":", "").replace("-", "")[:15]
        path = catalog.data_dir / "experiments" / f"{args.table}-{stamp}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _print_plan(plan: dict[str, Any], args: argparse.Namespace) -> None:
    if args.json:
        print_json(plan)
        return
    for run in plan["runs"]:
        print(f"{run['name']:<44} {run['model']:<14} train {run['train_tiles']:>6}  val {run['val_tiles']:>6}"
              f"  split {run['split']}")
    for note in plan["notes"]:
        print(f"note: {note}")


def _print_rows(rows: list[dict[str, Any]], path: Path, args: argparse.Namespace) -> None:
    if args.json:
        print_json({"table": args.table, "report": str(path), "runs": rows})
        return
    print(path.read_text(encoding="utf-8"))
    print(f"written to {path}")


# --------------------------------------------------------------------------- models
def _register_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the models with their parameter counts and the references they follow",
        description="List the registered models: parameter count (3 bands, 2 classes, default "
        "encoder), encoder, and the reference each follows with its published size.",
    )
    p.add_argument("--smp", action="store_true", help="also list every segmentation_models_pytorch architecture")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from casdesk.ml.models.registry import describe_models

    models = describe_models(include_smp=args.smp)
    if args.json:
        print_json({"models": models})
        return 0

    def millions(n: int | None) -> str:
        return "-" if n is None else f"{n / 1e6:.2f} M"

    print(f"{'model':<16} {'encoder':<10} {'parameters':>11} {'reference':>10}  follows")
    for m in models:
        print(f"{m['name']:<16} {m['default_encoder']:<10} {millions(m['parameters']):>11} "
              f"{millions(m['reference_parameters']):>10}  {m['reference']}")
        for enc, v in m["variants"].items():
            if enc != m["default_encoder"]:
                print(f"{'':<16} {enc:<10} {millions(v['parameters']):>11} "
                      f"{millions(v['reference_parameters']):>10}")
    print("parameters: 3 bands, 2 classes; reference: the size of the network it follows, where known")
    return 0
