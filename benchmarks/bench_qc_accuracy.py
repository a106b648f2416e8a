"""QC detector accuracy on real released tiles and defects made from them (issue 16).

    python benchmarks/bench_qc_accuracy.py [--public ../shared/data/public] [--rounds 1] [--seed 16] [--json]

Clean cases are the released tiles (they passed the authors' QC); defects are seams,
fills and clouds pasted into them, and traps (roads, fields, rivers, scars, shadows) must
stay clean. Prints, per detector at the paper rules (project defaults): the share of clean
tiles and traps rejected / flagged, the share of severe seams (>= 15 DN or >= 8 px) caught
(flagged or rejected), and for fill and cloud the share measured within +-0.03 / +-0.1
of the truth. See casdesk/core/qc/evalset.py and docs/qc.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from casdesk.core.qc import evalset  # noqa: E402
from casdesk.core.qc.rules import PAPER_DEFAULTS  # noqa: E402

DEFAULT_PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "public"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--public", type=Path, default=DEFAULT_PUBLIC)
    ap.add_argument("--rounds", type=int, default=1, help="defect rounds per released tile")
    ap.add_argument("--seed", type=int, default=16,
                    help="the defects' random seed (16: the tests' set; another seed checks that a"
                    " detector is not fitted to that one)")
    ap.add_argument("--resampled", action="store_true",
                    help="geometric seams shifted a further 0.1-0.9 px and resampled bilinearly, as a"
                    " reprojected scene of a real mosaic is (a stress variant; the default set is exact shifts)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--list", action="store_true", help="print every case's values")
    args = ap.parse_args(argv)
    sources = evalset.find_sources(args.public)
    if not sources:
        print(f"no released tiles under {args.public}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    cases = list(evalset.build_cases(sources, seed=args.seed, per_source=args.rounds, resampled=args.resampled))
    t1 = time.perf_counter()
    values = evalset.measure_cases(cases)
    t2 = time.perf_counter()
    summary = evalset.summarise(cases, values, PAPER_DEFAULTS)
    if args.list:
        for c, v in zip(cases, values, strict=True):
            print(
                f"{c.kind:6s} {c.name:45s} " + " ".join(f"{k}={x:.3f}" for k, x in v.items()),
                c.truth,
            )
    if args.json:
        print(
            json.dumps({"sources": len(sources), "cases": len(cases), "seed": args.seed,
                        "resampled": args.resampled, "summary": summary}, indent=1)
        )
        return 0
    print(
        f"{len(sources)} released tiles, {len(cases)} cases, seed {args.seed}"
        f"{', geometric seams resampled' if args.resampled else ''} (built {t1 - t0:.1f} s, measured {t2 - t1:.1f} s,"
        f" {1000 * (t2 - t1) / len(cases):.1f} ms/tile)"
    )
    rules = {r.metric: r for r in PAPER_DEFAULTS}
    for metric, row in summary.items():
        r = rules[metric]
        print(f"\n{metric}  (rule {r.describe()}, margin {r.margin:g})")
        print(
            f"  clean released tiles: rejected {row['clean_rejected']:.1%}, flagged {row['clean_flagged']:.1%}"
            f" (n={row['clean_n']:.0f})"
        )
        print(
            f"  traps:                rejected {row['trap_rejected']:.1%}, flagged {row['trap_flagged']:.1%}"
            f" (n={row['trap_n']:.0f})"
        )
        if "severe_caught" in row:
            print(
                f"  seams >= 15 DN or >= 8 px caught: {row['severe_caught']:.1%} (n={row['severe_n']:.0f});"
                f" radiometric {row['radiometric_severe_caught']:.1%}, geometric {row['geometric_severe_caught']:.1%};"
                f" weak seams caught {row['weak_caught']:.1%}"
            )
        if "within_goal" in row:
            goal = 0.03 if metric == "fill_fraction" else 0.1
            print(
                f"  defects within +-{goal:g} of truth: {row['within_goal']:.1%} (n={row['defects_n']:.0f});"
                f" median error {row['median_error']:.3f}, worst {row['max_error']:.3f}"
            )
    scene = evalset.scene_fill_cases(args.public)
    if scene:
        got = evalset.measure_cases(scene, ("fill_fraction",))
        err = np.array([abs(v["fill_fraction"] - c.truth["fill"]) for c, v in zip(scene, got, strict=True)])
        with_fill = sum(c.truth["fill"] > 0.05 for c in scene)
        print(
            f"\nfill_fraction on real boundary fill ({len(scene)} windows of {evalset.SCENE_FILL_SOURCE}, nodata flag"
            f" dropped; {with_fill} hold more than 5 % fill): within +-0.03 {(err <= 0.03).mean():.1%},"
            f" worst {err.max():.3f}"
        )
    jpeg = evalset.jpeg_cases(sources)
    got = evalset.measure_cases(jpeg, ("fill_fraction",))
    err = np.array([abs(v["fill_fraction"] - c.truth["fill"]) for c, v in zip(jpeg, got, strict=True)])
    missed = sum(c.truth["fill"] > 0.03 and v["fill_fraction"] < c.truth["fill"] - 0.03 for c, v in zip(jpeg, got, strict=True))
    false = sum(c.truth["fill"] <= 0.03 and v["fill_fraction"] > c.truth["fill"] + 0.03 for c, v in zip(jpeg, got, strict=True))
    print(
        f"fill_fraction on the released tiles JPEG-compressed (quality {', '.join(map(str, evalset.JPEG_QUALITIES))};"
        f" {len(jpeg)} cases): within +-0.03 {(err <= 0.03).mean():.1%}, fill lost {missed}, false fill {false},"
        f" worst {err.max():.3f}"
    )
    fills = [c for c in cases if c.kind == "fill"]
    for q in (90, 75):
        copies = evalset.jpeg_copies(fills, q)
        got = evalset.measure_cases(copies, ("fill_fraction",))
        err = np.array([abs(v["fill_fraction"] - c.truth["fill"]) for c, v in zip(copies, got, strict=True)])
        print(
            f"fill_fraction on the pasted fills JPEG-compressed at quality {q} ({len(copies)} cases): within +-0.03"
            f" {(err <= 0.03).mean():.1%}, median error {np.median(err):.3f}, worst {err.max():.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
