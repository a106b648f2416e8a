"""Live recount speed: evaluate the paper rules and count states per subdataset for
100,000 tiles after a threshold move, from metrics in memory (what the QC panel does while
a slider is dragged). Prints a JSON line last; goal: <= 5 ms per recount.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from casdesk.core.qc import rules as qc


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rng = np.random.default_rng(0)
    metrics = {
        "fill_fraction": rng.beta(0.3, 3, n),
        "label_fraction": rng.beta(0.5, 20, n),
        "cloud_fraction": rng.beta(0.3, 4, n),
        "seam_score": rng.gamma(4, 3.5, n),
        "blur_score": rng.gamma(2, 1000, n),
        "valid_fraction": np.ones(n),
    }
    metrics["label_fraction"][rng.random(n) < 0.1] = np.nan
    subs = rng.choice([f"sub{i:02d}" for i in range(11)], n)
    table = qc.QCTable.from_arrays(subs, metrics, sensors=rng.choice(["SAT", "UAV"], n))
    table.manual[rng.random(n) < 0.01] = 1
    rules = qc.paper_defaults()
    rules[0] = qc.Rule("fill_fraction", "max", 0.3, margin=0.05, overrides={"sub03": 0.5})
    qc.count_states(table, qc.evaluate(table, rules)[0])
    times = []
    for thr in np.linspace(0.05, 0.95, 200):
        moved = qc.with_threshold(rules, "fill_fraction", float(thr))
        t0 = time.perf_counter()
        states, _ = qc.evaluate(table, moved)
        qc.count_states(table, states)
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    print(
        json.dumps(
            {
                "bench": "qc_counts",
                "tiles": n,
                "rules": len(rules),
                "median_ms": round(float(np.median(ms)), 3),
                "p95_ms": round(float(np.percentile(ms, 95)), 3),
                "max_ms": round(float(ms.max()), 3),
                "goal_ms": 5.0,
            }
        )
    )


if __name__ == "__main__":
    main()
