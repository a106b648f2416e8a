"""`casdesk labels export|import|regenerate|from-prediction`: polygons to and from
GeoPackage / Shapefile / GeoJSON (whole scenes, scene CRS; GeoJSON in WGS-84) and LabelMe
JSON (one file per tile, one folder per subdataset); masks rebuilt from the stored labels."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from casdesk.commands.common import drive, open_project, print_json
from casdesk.core.errors import LabelError
from casdesk.core.labels.exchange import (
    export_labelme_folder,
    export_vector,
    import_labelme_folder,
    import_vector,
)
from casdesk.core.labels.store import finish_pending, pending_tiles, regenerate_masks

VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("labels", help="export or import label polygons")
    lsub = p.add_subparsers(dest="labels_command", metavar="ACTION", required=True)

    e = lsub.add_parser("export", help="scene polygons to OUT.gpkg|OUT.shp|OUT.geojson, or LabelMe JSON per tile")
    e.add_argument("project")
    e.add_argument("out", nargs="?", help="vector file (.gpkg, .shp, .geojson)")
    e.add_argument("--labelme", metavar="DIR", help="write one LabelMe JSON per labelled tile into DIR")
    e.add_argument("--scene", type=int, action="append", dest="scenes", metavar="ID", help="scene id (repeatable; default: all)")
    e.add_argument("--overwrite", action="store_true", help="replace existing LabelMe files (such as the ones the labels came from)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.set_defaults(func=cmd_export)

    i = lsub.add_parser("import", help="add polygons from a vector file, or LabelMe JSON (file or folder) onto tiles")
    i.add_argument("project")
    i.add_argument("source", help="vector file, LabelMe .json, or a folder of LabelMe .json")
    i.add_argument("--scene", type=int, action="append", dest="scenes", metavar="ID", help="scene id for vector files (default: every scene they overlap)")
    i.add_argument("--label-name", action="append", dest="label_names", metavar="NAME", help="keep only these labels (repeatable; default: all)")
    i.add_argument("--label-field", help="attribute holding the label name in a vector file")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_import)

    r = lsub.add_parser("regenerate", help="rebuild tile masks from the stored labels (the repair after a crash)")
    r.add_argument("project")
    r.add_argument("--tiles", type=int, nargs="+", metavar="ID", help="tile ids (default: every tile)")
    r.add_argument("--pending", action="store_true", help="only the tiles left stale by an interrupted edit or import")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_regenerate)

    f = lsub.add_parser("from-prediction", help="predicted tiles (predict-tiles) or a scene's predicted mask -> editable labels")
    f.add_argument("project")
    f.add_argument("--model", help="model name whose stored tile predictions to accept (see `casdesk predict-tiles`)")
    f.add_argument("--tile", type=int, action="append", dest="tiles", metavar="ID", help="tile id (repeatable; default: every predicted tile)")
    f.add_argument("--scene", type=int, metavar="ID", help="scene id, with --mask: a scene prediction's mask GeoTIFF")
    f.add_argument("--mask", help="0/1 mask GeoTIFF written by `casdesk predict` for --scene")
    f.add_argument("--threshold", type=float, help="threshold the stored probability instead of using the stored mask")
    f.add_argument("--min-area", type=float, default=4.0, metavar="PX", help="drop polygons smaller than this (pixels; default 4)")
    f.add_argument("--label-name", default="landslide", help="name of the new labels (default landslide)")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_from_prediction)


def _report(rep: Any, as_json: bool, verb: str) -> None:
    data = {"labels": rep.labels, "files": [str(p) for p in rep.written], "tiles_updated": len(set(rep.tiles)),
            "messages": rep.messages, "skipped": [{"file": f, "reason": why} for f, why in rep.skipped]}
    if as_json:
        print_json(data)
        return
    for m in rep.messages:
        print(m)
    print(f"{verb} {rep.labels} polygon(s)" + (f" to {len(rep.written)} file(s)" if rep.written else ""))


def cmd_export(args: argparse.Namespace) -> int:
    if bool(args.out) == bool(args.labelme):
        raise LabelError("give either an output vector file or --labelme DIR")
    with open_project(args.project, readonly=True) as cat:
        if args.labelme:
            rep = export_labelme_folder(cat, args.labelme, overwrite=args.overwrite)
        else:
            if Path(args.out).suffix.lower() not in VECTOR_SUFFIXES:
                raise LabelError("unknown vector format", args.out, "use .gpkg, .shp or .geojson")
            rep = export_vector(cat, args.out, args.scenes)
    _report(rep, args.json, "exported")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    src = Path(args.source)
    if not src.exists():
        raise LabelError("file not found", src, "check the path")
    with open_project(args.project) as cat:
        if pending_tiles(cat):  # an earlier edit or import was interrupted: finish it first
            drive(finish_pending(cat), "masks", quiet=args.json)
        if src.is_dir() or (src.suffix.lower() == ".json" and _is_labelme(src)):
            rep = import_labelme_folder(cat, src, args.label_names)
        else:
            rep = import_vector(cat, src, args.scenes, args.label_names, args.label_field)
        if rep.tiles:
            drive(regenerate_masks(cat, sorted(set(rep.tiles))), "masks", quiet=args.json)
    _report(rep, args.json, "imported")
    return 0


def cmd_regenerate(args: argparse.Namespace) -> int:
    with open_project(args.project) as cat:
        if args.pending:
            ids = pending_tiles(cat)
        elif args.tiles:
            known = {t.id for t in cat.tiles(ids=args.tiles)}
            missing = sorted(set(args.tiles) - known)
            if missing:
                raise LabelError(f"no tile with id {missing[0]}", cat.path, "see `casdesk info`")
            ids = list(args.tiles)
        else:
            ids = [t.id for t in cat.tiles()]
        before = {t.id: t.modified for t in cat.tiles(ids=ids)} if ids else {}
        done = drive(regenerate_masks(cat, ids), "masks", quiet=args.json) if ids else {}
        changed = sum(1 for t in cat.tiles(ids=ids) if t.modified != before.get(t.id)) if ids else 0
        left = len(pending_tiles(cat))
    data = {"tiles": len(done), "changed": changed, "landslide_pixels": int(sum(done.values())), "pending": left}
    if args.json:
        print_json(data)
    else:
        print(f"regenerated {data['tiles']} tile mask(s): {changed} changed, {len(done) - changed} already matched their labels")
    return 0


def cmd_from_prediction(args: argparse.Namespace) -> int:
    from casdesk.core.labels.from_prediction import accept_scene_prediction, accept_tile_predictions

    if (args.scene is None) == (args.model is None) or (args.scene is not None) != (args.mask is not None):
        raise LabelError("give either --model NAME (stored tile predictions) or --scene ID --mask FILE")
    with open_project(args.project) as cat:
        if args.scene is not None:
            reports = [accept_scene_prediction(cat, args.scene, args.mask, args.label_name, args.min_area)]
        else:
            reports = accept_tile_predictions(cat, args.model, args.tiles, args.threshold, args.label_name, args.min_area)
        tiles = sorted({t for r in reports for t in r.tiles})
        if tiles:
            drive(regenerate_masks(cat, tiles), "masks", quiet=args.json)
    data = {"labels": sum(r.added for r in reports), "replaced": sum(r.removed for r in reports),
            "targets": len(reports), "tiles_updated": len(tiles)}
    if args.json:
        print_json(data)
    else:
        print(f"accepted {data['labels']} predicted polygon(s) on {data['targets']} target(s)"
              f" (replaced {data['replaced']} earlier predicted), {data['tiles_updated']} mask(s) updated")
    return 0


def _is_labelme(path: Path) -> bool:
    import json

    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "shapes" in data
