"""Start-up time: casdesk's main window vs a bare PySide6 QMainWindow, same machine, same run.

    python benchmarks/bench_startup.py [--runs 5]

Each sample is a fresh ``python -c`` process (cold interpreter, warm disk cache), timed
from spawning it to the moment it prints that its window is shown (``show()`` done and
events processed), so interpreter start, imports and window construction all count.
Offscreen Qt platform unless ``--display``. The target: casdesk's window in < 2 s, which
holds only while torch is not imported at start-up (the child reports whether it was).
The last line is JSON: medians in seconds, the ratio, and the torch check.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BASELINE = """
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([])
w = QMainWindow(); w.resize(1400, 900); w.show(); app.processEvents()
print("shown", flush=True)
"""

CASDESK = """
import sys
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from casdesk.gui.shell.main_window import MainWindow
app = QApplication([])
w = MainWindow(settings=QSettings(sys.argv[1], QSettings.Format.IniFormat)); w.show(); app.processEvents()
print("shown", "torch" in sys.modules, flush=True)
"""


def sample(code: str, env: dict[str, str], settings: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, settings], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    _, err = proc.communicate(timeout=120)
    if not line.startswith("shown"):
        raise SystemExit(f"the child did not show its window:\n{err[-3000:]}")
    return elapsed, line.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--display", action="store_true", help="use the real display, not offscreen")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if not args.display:
        env["QT_QPA_PLATFORM"] = "offscreen"
    with tempfile.TemporaryDirectory() as tmp:
        settings = str(Path(tmp) / "settings.ini")
        sample(CASDESK, env, settings)  # warm the disk cache and __pycache__ once
        base, app, torch_seen = [], [], False
        for _ in range(args.runs):  # interleaved, so load changes hit both alike
            base.append(sample(BASELINE, env, settings)[0])
            t, line = sample(CASDESK, env, settings)
            app.append(t)
            torch_seen |= line.endswith("True")
    b, a = statistics.median(base), statistics.median(app)
    print(f"bare QMainWindow: median {b:.3f} s  ({', '.join(f'{x:.2f}' for x in base)})")
    print(f"casdesk MainWindow: median {a:.3f} s  ({', '.join(f'{x:.2f}' for x in app)})")
    print(f"casdesk / bare: {a / b:.2f}x; torch imported at start-up: {torch_seen}; target < 2 s: "
          f"{'met' if a < 2.0 and not torch_seen else 'NOT met'}")
    print(json.dumps({"bench": "startup", "runs": args.runs, "baseline_s": round(b, 3),
                      "casdesk_s": round(a, 3), "ratio": round(a / b, 2),
                      "torch_imported": torch_seen, "target_met": a < 2.0 and not torch_seen}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
