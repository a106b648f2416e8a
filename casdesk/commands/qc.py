"""``casdesk qc`` (measure tiles, apply rules, print counts) and ``casdesk qc-report``."""

from __future__ import annotations

import argparse
from typing import Any

from casdesk.commands.common import (
    drive,
    float_range,
    int_range,
    interruptible,
    open_project,
    print_json,
)
from casdesk.core.qc import rules as qc

_FLAGS = (
    ("fill_max", "fill_fraction", "reject tiles with more boundary fill than this (0-1; paper 0.30)"),
    ("label_min", "label_fraction", "reject tiles with fewer landslide pixels than this (0-1; paper 0.001)"),
    ("cloud_max", "cloud_fraction", "reject satellite tiles with more cloud than this (0-1; paper 0.80)"),
    ("seam_max", "seam_score", f"reject tiles whose seam score exceeds this (DN; default {qc.SEAM_DEFAULT:g})"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "qc",
        help="measure QC metrics, apply the rules, print accept/reject counts",
        description="Computes missing QC metrics (fill, labelled, cloud, seam, ...) in worker processes "
        "over every core, applies the project's working rules (what the QC panel's sliders show; the "
        "paper defaults until changed) with any thresholds given here, and prints "
        "accepted/rejected/flagged counts per subdataset.",
    )
    p.add_argument("project", help="the .casdesk project file")
    for dest, _metric, text in _FLAGS:
        limit = float_range(0, 1, "--" + dest.replace("_", "-")) if dest != "seam_max" else float_range(
            0, float("inf"), "--seam-max")
        p.add_argument("--" + dest.replace("_", "-"), dest=dest, type=limit, metavar="X", help=text)
    p.add_argument("--preset", help="rules from this saved preset (default: the project's working rules)")
    p.add_argument("--workers", type=int_range(1, 64, "workers"),
                   help="worker processes, 1 to 64 (default: every core)")
    p.add_argument("--no-compute", action="store_true", help="use stored metrics only")
    p.add_argument("--json", action="store_true", help="print counts as JSON")
    p.set_defaults(func=run_qc)

    r = sub.add_parser("qc-report", help="write a CSV with one row per tile: metrics, state, failed rules")
    r.add_argument("project", help="the .casdesk project file")
    r.add_argument("out", help="CSV file to write (replaced atomically)")
    r.add_argument("--preset", help="rules from this saved preset (default: the project's working rules)")
    r.set_defaults(func=run_report)


def _rules(catalog: Any, args: argparse.Namespace) -> list[qc.Rule]:
    rules = qc.load_preset(catalog, args.preset) if args.preset else qc.current_rules(catalog)
    for dest, metric, _text in _FLAGS:
        value = getattr(args, dest, None)
        if value is not None:
            rules = qc.with_threshold(rules, metric, value)
    return rules


def run_qc(args: argparse.Namespace) -> int:
    with open_project(args.project) as catalog:
        rules = _rules(catalog, args)
        if not args.no_compute:
            with interruptible() as token:
                drive(
                    qc.compute_metrics(catalog, workers=args.workers, cancel=token),
                    "QC metrics",
                    quiet=args.json,
                )
        table = qc.load_table(catalog)
        states, _ = qc.evaluate(table, rules)
        counts = qc.count_states(table, states)
    if args.json:
        counts["rules"] = [r.to_dict() for r in rules]
        print_json(counts)
    else:
        _print_table(counts, rules)
    return 0


def _print_table(counts: dict[str, Any], rules: list[qc.Rule]) -> None:
    keys = ["tiles", "accepted", "rejected", "flagged", "manual_accept", "manual_reject", "pending", "kept"]
    heads = ["tiles", "accepted", "rejected", "flagged", "man.acc", "man.rej", "pending", "kept"]
    rows = [(name, c) for name, c in counts["subdatasets"].items()] + [("TOTAL", counts["total"])]
    width = max([len("subdataset"), *(len(n) for n, _ in rows)])
    print("rules: " + ", ".join(r.describe() + ("" if r.enabled else " (off)") for r in rules))
    print(f"{'subdataset':<{width}} " + " ".join(f"{h:>8}" for h in heads))
    for name, c in rows:
        print(f"{name:<{width}} " + " ".join(f"{c[k]:>8}" for k in keys))


def run_report(args: argparse.Namespace) -> int:
    with open_project(args.project, readonly=True) as catalog:
        rules = qc.load_preset(catalog, args.preset) if args.preset else qc.current_rules(catalog)
        n = qc.write_report(catalog, args.out, rules)
    print(f"wrote {n} rows to {args.out}")
    return 0
