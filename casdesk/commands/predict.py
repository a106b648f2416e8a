"""``casdesk predict``, ``casdesk predict-tiles`` and ``casdesk suspects``.

torch is imported inside the command functions only, so ``casdesk --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from casdesk.commands.common import (
    drive,
    float_range,
    int_range,
    interruptible,
    open_project,
    print_json,
)
from casdesk.core.errors import CasdeskError


def register(sub: argparse._SubParsersAction) -> None:
    _register_predict(sub)
    _register_predict_tiles(sub)
    _register_suspects(sub)


# --------------------------------------------------------------------------- predict
def _register_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict landslides on whole scenes: probability/mask GeoTIFFs and polygons",
        description="Predict one scene, or every raster in a folder, window by window with "
        "blended overlaps (memory does not grow with the scene). Writes SCENE_prob.tif "
        "(uint8: probability x 254, nodata 255), SCENE_mask.tif (0/1, nodata 255) with the "
        "scene's CRS and grid, and SCENE_landslides.gpkg (area_m2, mean_prob, scene, model, date). "
        "Under `torchrun --nproc_per_node N` the scenes (or the windows of a scene) are shared by N "
        "processes and the same files are written once.",
    )
    p.add_argument("model_file", help="a model file written by `casdesk train` (model.pt, best.ckpt, last.ckpt)")
    p.add_argument("scene", help="a GeoTIFF scene, or a folder of them")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overlap", type=int_range(0, None, "overlap"), default=128, help="pixels shared by neighbouring windows (default 128)")
    p.add_argument("--tile-size", type=int_range(8, 32768, "tile size"), default=None, help="window size in pixels (default: the model's)")
    p.add_argument("--threshold", type=float_range(0, 1, "threshold"), default=None, help="landslide probability threshold (default: the model's, 0.5)")
    p.add_argument("--tta", action="store_true", help="average flips and a 90 degree rotation (4x slower)")
    p.add_argument("--aoi", default=None, help="polygon file: predict only inside it")
    p.add_argument("--vector", choices=("gpkg", "shp", "geojson", "none"), default="gpkg",
                   help="polygon format (default gpkg; geojson is WGS-84)")
    p.add_argument("--min-area", type=float_range(0, float("inf"), "minimum area"), default=0.0, help="drop polygons smaller than this (m2)")
    p.add_argument("--simplify", type=float, default=0.0, help="polygon simplification tolerance (map units)")
    p.add_argument("--float", dest="prob_float", action="store_true", help="write probabilities as float32 (NaN nodata)")
    p.add_argument("--no-value-check", action="store_true",
                   help="predict even when the scene's values look unlike the training data's")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--batch-size", type=int_range(1, None, "batch size"), default=4, help="windows per forward pass (default 4)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from casdesk.ml.inference.scene import (
        PredictOptions,
        estimate_memory,
        load_predictor,
        predict_scenes,
        scene_files,
    )
    from casdesk.ml.training import distributed

    scene = Path(args.scene)
    paths = scene_files(scene) if scene.is_dir() else [scene]
    # under torchrun: one process per GPU (or CPU process with gloo), outputs written once
    ctx, device = distributed.setup(args.device) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else (None, None)
    try:
        predictor = load_predictor(args.model_file, device if device is not None else args.device)
        main_rank = ctx is None or ctx.is_main
        if paths and main_rank:
            procs = f" x{ctx.world_size} processes" if ctx is not None and ctx.enabled else ""
            try:
                est = estimate_memory(predictor, paths[0], overlap=args.overlap, batch_size=args.batch_size,
                                      tta=args.tta, tile_size=args.tile_size).describe()
            except CasdeskError:  # a bad first scene is reported with the others at the end
                est = "unknown"
            print(f"casdesk predict: {len(paths)} scene(s) on {predictor.device}{procs} ({predictor.precision}); "
                  f"peak memory {est}", file=sys.stderr)
        options = PredictOptions(
            overlap=args.overlap, tile_size=args.tile_size, threshold=args.threshold, tta=args.tta,
            aoi=args.aoi, vector=args.vector, batch_size=args.batch_size, min_area_m2=args.min_area,
            simplify=args.simplify, prob_dtype="float32" if args.prob_float else "uint8",
            check_values=not args.no_value_check,
        )
        failures: list[tuple[Path, str]] = []  # a folder: every good scene is predicted, failures listed
        with interruptible() as token:
            results = drive(
                predict_scenes(predictor, paths if paths else scene, args.out, cancel=token, dist=ctx,
                               options=options, failures=failures if len(paths) > 1 else None),
                "predict", quiet=not main_rank,
            )
    finally:
        if ctx is not None:
            ctx.close()
    if not main_rank:
        return _report_failures(failures, len(paths), len(results))
    if args.json:
        print_json([r.to_dict() for r in results])
        return _report_failures(failures, len(paths), len(results))
    for r in results:
        area = f", {r.landslide_area_m2 / 1e4:.2f} ha" if r.landslide_area_m2 == r.landslide_area_m2 else ""
        share = r.landslide_pixels / r.valid_pixels if r.valid_pixels else 0.0
        print(f"{r.scene.name}: {r.polygons} polygons, {100 * share:.2f} % landslide{area} "
              f"({r.windows} windows, {r.seconds:.1f} s on {r.device})")
        for path in (r.prob_path, r.mask_path, r.vector_path):
            if path is not None:
                print(f"  {path}")
        for w in r.warnings:
            print(f"  warning: {w}")
    return _report_failures(failures, len(paths), len(results))


def _report_failures(failures: list[tuple[Path, str]], scenes: int, predicted: int) -> int:
    """The scenes of a folder that failed, after the results; exit 2 when any did."""
    if not failures:
        return 0
    for path, reason in failures:
        print(f"casdesk predict: failed: {path.name}: {reason}", file=sys.stderr)
    print(f"casdesk predict: error: {len(failures)} of {scenes} scenes failed (listed above); "
          f"{predicted} predicted", file=sys.stderr)
    return 2


# --------------------------------------------------------------------------- predict-tiles
def _register_predict_tiles(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict-tiles",
        help="predict the project's tiles and store them for the browser and `casdesk suspects`",
        description="Predict every tile of the project (or one split's validation part) and store "
        "per-tile mask and probability GeoTIFFs, confidence and IoU against the label in the project.",
    )
    p.add_argument("model_file", help="a model file written by `casdesk train` (model.pt)")
    p.add_argument("project", help="the project file (.casdesk)")
    p.add_argument("--split", default=None, help="only this split's tiles")
    p.add_argument("--part", choices=("train", "val", "test", "all"), default="val",
                   help="with --split: which part (default val)")
    p.add_argument("--tta", action="store_true", help="average flips and a 90 degree rotation")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--batch-size", type=int_range(1, None, "batch size"), default=8, help="tiles per forward pass (default 8)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_predict_tiles)


def cmd_predict_tiles(args: argparse.Namespace) -> int:
    from casdesk.ml.inference.tiles import predict_tiles

    with open_project(args.project) as catalog, interruptible() as token:
        summary = drive(
            predict_tiles(
                args.model_file, catalog, split=args.split, part=None if args.part == "all" else args.part,
                device=args.device, batch_size=args.batch_size, tta=args.tta, cancel=token,
            ),
            "predict-tiles",
        )
    if args.json:
        print_json(summary.to_dict())
        return 0
    iou = "n/a" if summary.mean_iou is None else f"{summary.mean_iou:.3f}"
    print(f"{summary.tiles} tiles predicted with {summary.model} ({summary.skipped} skipped); "
          f"mean tile IoU {iou}; files in {summary.out_dir}")
    return 0


# --------------------------------------------------------------------------- suspects
def _register_suspects(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "suspects",
        help="rank tiles whose label a confident model disagrees with (label-error finder)",
        description="Compare stored tile predictions (`casdesk predict-tiles`) with the labels; "
        "rank missed landslides, false labels and misaligned polygons; put the top N in the QC "
        "review queue as 'suspect label'. Score: see docs/predict.md.",
    )
    p.add_argument("project", help="the project file (.casdesk)")
    p.add_argument("--model", default=None, help="whose predictions (default: the most recent)")
    p.add_argument("--top", type=int_range(1, None, "top"), default=100, help="how many tiles to queue (default 100)")
    p.add_argument("--json", action="store_true", help="print the suspects as JSON")
    p.set_defaults(func=cmd_suspects)


def cmd_suspects(args: argparse.Namespace) -> int:
    from casdesk.core.qc.suspects import find_suspects

    with open_project(args.project) as catalog, interruptible() as token:
        suspects = drive(find_suspects(catalog, model=args.model, top=args.top, cancel=token), "suspects")
    if args.json:
        print_json([s.to_dict() for s in suspects])
        return 0
    if not suspects:
        print("no suspect labels: the model agrees with every label")
        return 0
    print(f"{len(suspects)} suspect tiles (queued for QC review as 'suspect label'):")
    for s in suspects:
        print(f"  {s.score:.3f}  {s.kind:<17} {s.subdataset}/{s.name}")
    return 0
