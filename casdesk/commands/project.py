"""Project subcommands: init, add-scene, crop, import-dataset, info, export, demo, gui."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from casdesk.commands.common import drive, int_range, interruptible, open_project, print_json
from casdesk.core.dataset.limits import MAX_TILE_SIZE, MAX_WORKERS
from casdesk.core.errors import CasdeskError
from casdesk.core.project.catalog import Catalog


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="create an empty project (PROJECT.casdesk + data folder)")
    p.add_argument("project", help="path of the new project file")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("add-scene", help="add a GeoTIFF scene and its landslide labels")
    p.add_argument("project")
    p.add_argument("scene", help="GeoTIFF / COG (any bands, dtype, CRS)")
    p.add_argument("--labels", help="vector file (shp, gpkg, geojson), label raster or LabelMe JSON")
    p.add_argument("--label-name", action="append", dest="label_names", metavar="NAME",
                   help="keep only labels with this name (repeatable); default: all")
    p.add_argument("--label-field", help="attribute holding the label name in a vector file")
    p.add_argument("--subdataset", help="subdataset name (default: the scene's file name)")
    p.add_argument("--sensor", choices=["SAT", "UAV"])
    p.add_argument("--resolution", type=float, help="ground resolution in metres")
    p.add_argument("--acquired", help="acquisition date (YYYY-MM-DD)")
    p.add_argument("--source", help="data source / provider")
    p.add_argument("--licence")
    p.add_argument("--name", help="scene name, used in tile names (default: the file name, made unique)")
    p.add_argument("--allow-duplicate", action="store_true",
                   help="add a file that is already a scene of the project again")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_add_scene)

    p = sub.add_parser("crop", help="crop scenes into tiles in the CAS layout")
    p.add_argument("project")
    p.add_argument("--size", type=int_range(8, MAX_TILE_SIZE, "tile size"), default=512,
                   help=f"tile size in pixels, 8 to {MAX_TILE_SIZE} (default 512)")
    p.add_argument("--stride", type=int_range(1, MAX_TILE_SIZE, "stride"), default=None,
                   help="step between tiles (default: the size; the CAS production code used 256; "
                   "larger than the size leaves gaps)")
    p.add_argument("--edge", choices=["shift", "pad", "drop"], default="shift",
                   help="last tile of a row/column: shift back to the edge, pad with nodata, or drop")
    p.add_argument("--scene", type=int, action="append", dest="scenes", metavar="ID",
                   help="scene id to crop (repeatable; default: all)")
    p.add_argument("--out", help="tile folder (default: inside the project's data folder)")
    p.add_argument("--workers", type=int_range(1, MAX_WORKERS, "workers"), default=None,
                   help=f"writer threads, 1 to {MAX_WORKERS} (default: up to 4)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_crop)

    p = sub.add_parser("import-dataset", help="import a dataset folder (CAS layout, pairs, LabelMe)")
    p.add_argument("project")
    p.add_argument("folder")
    p.add_argument("--format", choices=["auto", "cas", "pairs", "labelme"], default="auto")
    p.add_argument("--subdataset", help="subdataset name for pairs / LabelMe folders")
    p.add_argument("--label-name", action="append", dest="label_names", metavar="NAME",
                   help="LabelMe labels that are landslides (repeatable; default: all)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("info", help="scenes, subdatasets, tile counts, labelled fraction")
    p.add_argument("project")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("export", help="export tiles in the CAS layout")
    p.add_argument("project")
    p.add_argument("out_dir")
    p.add_argument("--accepted-only", action="store_true",
                   help="only the tiles QC keeps under the project's working rules (what the QC panel shows)")
    p.add_argument("--subdataset", action="append", dest="subdatasets", metavar="NAME")
    p.add_argument("--link", choices=["hard", "symlink", "copy"], default="hard",
                   help="how tile files get into the export: hard links (default; no extra disk space, "
                   "copies where the file system cannot link), symbolic links, or copies")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", help="build a demo project from a synthetic scene and open the app")
    p.add_argument("--dir", default=None, help="folder for the demo project (default: ./casdesk-demo)")
    p.add_argument("--no-gui", action="store_true", help="build only; print the summary")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("gui", help="open the desktop application")
    p.add_argument("project", nargs="?")
    p.set_defaults(func=cmd_gui)


def cmd_init(args: argparse.Namespace) -> int:
    with Catalog.create(args.project) as cat:
        print(f"created {cat.path} (data in {cat.data_dir})")
    return 0


def cmd_add_scene(args: argparse.Namespace) -> int:
    from casdesk.core.dataset.scenes import add_scene

    with open_project(args.project) as cat:
        added = add_scene(
            cat,
            args.scene,
            labels=args.labels,
            label_names=args.label_names,
            label_field=args.label_field,
            subdataset=args.subdataset,
            sensor=args.sensor,
            resolution_m=args.resolution,
            acquired=args.acquired,
            source=args.source,
            licence=args.licence,
            name=args.name,
            allow_duplicate=args.allow_duplicate,
        )
    info = added.info
    result = {
        "scene_id": added.scene_id,
        "size": [info.width, info.height],
        "bands": info.count,
        "dtype": info.dtype,
        "labels": added.labels,
        "messages": added.messages,
    }
    if args.json:
        print_json(result)
    else:
        print(f"scene {added.scene_id}: {info.width}x{info.height}, {info.count} x {info.dtype}, "
              f"{added.labels} label polygon(s)")
        for m in added.messages:
            print(f"  {m}")
    return 0


def cmd_crop(args: argparse.Namespace) -> int:
    from casdesk.core.dataset.tiling import CropParams, check_memory, check_workers, crop_scene

    params = CropParams(args.size, args.stride if args.stride is not None else args.size, args.edge)
    workers = check_workers(args.workers)
    if params.gaps:
        print(f"casdesk crop: warning: the stride ({params.stride}) is larger than the tile size "
              f"({params.size}): strips {params.stride - params.size} pixels wide are in no tile", file=sys.stderr)
    results: dict[str, Any] = {}
    with open_project(args.project) as cat, interruptible() as token:
        scene_ids = args.scenes or [s.id for s in cat.scenes()]
        if not scene_ids:
            raise CasdeskError("the project has no scene", cat.path, "add one with `casdesk add-scene`")
        scenes = [cat.scene(sid) for sid in scene_ids]
        for scene in scenes:  # every scene's options are checked before the first tile
            check_memory(scene, params, workers)
        for scene in scenes:
            job = crop_scene(cat, scene.id, params, out_root=Path(args.out) if args.out else None,
                             workers=workers, cancel=token)
            ids = drive(job, f"crop {scene.name}")
            tiles = cat.tiles(ids=ids) if ids else []
            labelled = sum(1 for t in tiles if (t.label_pixels or 0) > 0)
            extra = {
                "replaced_tiles": getattr(ids, "dropped_tiles", 0),
                "dropped_decisions": getattr(ids, "dropped_decisions", 0),
                "dropped_split_tiles": getattr(ids, "dropped_split_tiles", 0),
                "resumed_tiles": getattr(ids, "resumed", 0),
                "warnings": [w for w in getattr(ids, "warnings", []) if "stride" not in w],
            }
            # what a re-crop replaced or resumed, only when it did (the plain result stays two keys)
            results[scene.name] = {"tiles": len(ids), "labelled_tiles": labelled,
                                   **{k: v for k, v in extra.items() if v}}
    if args.json:
        print_json(results)
    else:
        for name, r in results.items():
            print(f"{name}: {r['tiles']} tiles ({r['labelled_tiles']} with landslide pixels)")
            for w in r.get("warnings", []):
                print(f"  warning: {w}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from casdesk.core.dataset.importers import IMPORTERS, detect_format

    fmt = detect_format(args.folder) if args.format == "auto" else args.format
    kwargs: dict[str, Any] = {}
    if fmt in ("pairs", "labelme") and args.subdataset:
        kwargs["subdataset"] = args.subdataset
    if fmt == "labelme" and args.label_names:
        kwargs["label_names"] = args.label_names
    with open_project(args.project) as cat, interruptible() as token:
        n = drive(IMPORTERS[fmt](cat, args.folder, cancel=token, **kwargs), f"import {fmt}")
        summary = cat.summary()
    skipped = [{"file": f, "reason": why} for f, why in getattr(n, "skipped", [])]  # files reported, not imported
    if args.json:
        print_json({"format": fmt, "tiles": int(n), "subdatasets": summary["subdatasets"], "skipped": skipped})
    else:
        for s in skipped:
            print(f"skipped {s['file']}: {s['reason']}")
        print(f"imported {n} tiles ({fmt} layout)" + (f", {len(skipped)} file(s) skipped" if skipped else ""))
    # a batch keeps going past bad files but says so in its status: 1 = imported with skips
    return 1 if skipped else 0


def cmd_info(args: argparse.Namespace) -> int:
    with open_project(args.project, readonly=True) as cat:
        summary = cat.summary()
        meta = {d["name"]: d for d in cat.subdatasets()}
    for d in summary["subdatasets"]:  # the full metadata (released CAS subdatasets: the paper's)
        extra = meta.get(d["name"], {})
        for key in ("trigger", "source", "licence", "notes"):
            d.setdefault(key, extra.get(key))
    if args.json:
        print_json(summary)
        return 0
    print(f"project {summary['project']} (schema {summary['schema_version']})")
    print(f"{len(summary['scenes'])} scene(s), {summary['tiles']} tile(s), "
          f"{100 * summary['labelled_fraction']:.3f} % of valid pixels labelled")
    for s in summary["scenes"]:
        print(f"  scene {s['id']} {s['name']}: {s['size'][0]}x{s['size'][1]} {s['bands']}x{s['dtype']} "
              f"{s['crs'] or 'no CRS'}, {s['labels']} labels, {s['tiles']} tiles")
        if s.get("crop") in ("running", "interrupted"):
            print(f"    crop {s['crop']}: the tiles above are from the last complete crop; "
                  "crop again with the same options to resume")
    if summary["subdatasets"]:
        print(f"  {'subdataset':32s} {'sensor':6s} {'res m':>6s} {'tiles':>7s} {'labelled':>8s} {'lab %':>7s}")
        for d in summary["subdatasets"]:
            res = "" if d["resolution_m"] is None else f"{d['resolution_m']:g}"
            print(f"  {d['name'][:32]:32s} {d['sensor'] or '':6s} {res:>6s} {d['tiles']:7d} "
                  f"{d['labelled_tiles']:8d} {100 * d['labelled_fraction']:7.3f}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from casdesk.core.dataset.export import MANIFEST, export_dataset

    with open_project(args.project, readonly=True) as cat, interruptible() as token:
        ids: list[int] | None = None
        if args.accepted_only:
            from casdesk.core.qc.rules import accepted_tile_ids

            ids = accepted_tile_ids(cat)
        if args.subdatasets:
            wanted = {t.id for s in args.subdatasets for t in cat.tiles(subdataset=s)}
            ids = sorted(wanted if ids is None else wanted & set(ids))
        n = drive(export_dataset(cat, args.out_dir, ids, cancel=token, link=args.link), "export")
    how = getattr(n, "how", {})
    fallback = getattr(n, "fallback", None)
    if args.json:
        print_json({"out_dir": str(Path(args.out_dir).absolute()), "tiles": int(n), "files": how,
                    "fallback": fallback, "manifest": str(getattr(n, "manifest", ""))})
    else:
        words = {"hard": ("hard link", "hard links"), "symlink": ("symbolic link", "symbolic links"),
                 "copy": ("copy", "copies"), "written": ("converted file", "converted files")}
        files = ", ".join(f"{v} {words.get(k, (k, k))[v != 1]}" for k, v in sorted(how.items()))
        print(f"exported {n} tiles to {args.out_dir} ({files or 'no files'}; list in {MANIFEST})")
        if fallback:
            print(f"  note: no hard links: {fallback}")
    return 0


def build_demo(folder: str | Path, quiet: bool = True) -> Path:
    """Build (or rebuild) the demo project in ``folder``; return the project file."""
    from casdesk.core.dataset.scenes import add_scene
    from casdesk.core.dataset.synthetic import make_scene
    from casdesk.core.dataset.tiling import CropParams, crop_scene
    from casdesk.core.labels.io import write_vector_labels
    from casdesk.core.project.lock import holder

    root = Path(folder).absolute()
    root.mkdir(parents=True, exist_ok=True)
    project = root / "demo.casdesk"
    in_use = holder(project)
    if in_use is not None:  # deleting its files (the WAL above all) under a running app loses its work
        raise CasdeskError(f"the demo project is open in casdesk: {in_use.describe()}", project,
                           "close that window first, or build the demo in another folder with --dir")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{project}{suffix}").unlink(missing_ok=True)
    import shutil

    shutil.rmtree(root / "demo.casdesk.d", ignore_errors=True)
    scene = make_scene(root / "demo_scene.tif", width=2048, height=2048, seed=7)
    labels = write_vector_labels(
        scene.scars_crs, root / "demo_landslides.gpkg", _crs_wkt(scene.crs),
        {"label": ["landslide"] * len(scene.scars_px)},
    )
    with Catalog.create(project) as cat:
        added = add_scene(cat, scene.path, labels=labels, subdataset="Demo UAV (0.5m)", sensor="UAV",
                          source="casdesk synthetic demo", licence="CC0")
        drive(crop_scene(cat, added.scene_id, CropParams(512, 256, "shift")), "crop demo", quiet=quiet)
        from casdesk.core.qc.rules import compute_metrics

        drive(compute_metrics(cat), "QC metrics", quiet=quiet)
    return project


def _crs_wkt(crs: str) -> str:
    from rasterio.crs import CRS

    return CRS.from_user_input(crs).to_wkt()


def cmd_demo(args: argparse.Namespace) -> int:
    folder = Path(args.dir) if args.dir else Path.cwd() / "casdesk-demo"
    project = build_demo(folder, quiet=False)
    with Catalog.open(project, readonly=True) as cat:
        s = cat.summary()
    print(f"demo project: {project}: {len(s['scenes'])} scene, {s['tiles']} tiles, "
          f"{100 * s['labelled_fraction']:.2f} % of valid pixels labelled")
    if args.no_gui or not _has_display():
        if not args.no_gui:
            print("no display found: not opening the app (use `casdesk gui PROJECT` on a desktop)")
        return 0
    from casdesk.gui.shell.app import run_app

    return run_app(project)


def _has_display() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        return False
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def cmd_gui(args: argparse.Namespace) -> int:
    from casdesk.gui.shell.app import run_app

    return run_app(args.project)
