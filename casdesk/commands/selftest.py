"""``casdesk selftest``: check an installation end to end (see :mod:`casdesk.selftest`)."""

from __future__ import annotations

import argparse
import sys
import time

from casdesk.commands.common import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "selftest",
        help="run a tiny scene through the whole workflow and report PASS/FAIL per step",
        description="Check this installation without a display and without your data: "
        "libraries and their data files, the main window (offscreen), a synthetic scene "
        "imported with labels, cropped, QC-measured, one training step of a tiny model and "
        "a prediction. Runs in a temporary folder. Exit status 0 only when every step passes.",
    )
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N, mps")
    p.add_argument("--no-gui", dest="gui", action="store_false", help="skip the main-window step")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_selftest)


def cmd_selftest(args: argparse.Namespace) -> int:
    from casdesk import __version__
    from casdesk.selftest import StepResult, run_selftest

    def show(result: StepResult) -> None:
        if not args.json:
            print(result.line(), flush=True)

    frozen = " (frozen app)" if getattr(sys, "frozen", False) else ""
    if not args.json:
        print(f"casdesk {__version__} selftest{frozen}", flush=True)
    start = time.perf_counter()
    folder = None
    if args.keep:
        import tempfile

        folder = tempfile.mkdtemp(prefix="casdesk-selftest-")
    results = run_selftest(device=args.device, gui=args.gui, folder=folder, on_result=show)
    passed = sum(r.ok for r in results)
    if args.json:
        print_json([r.__dict__ for r in results])
    else:
        verdict = "PASS" if passed == len(results) else "FAIL"
        print(f"selftest {verdict}: {passed}/{len(results)} steps passed in "
              f"{time.perf_counter() - start:.1f} s" + (f"; files kept in {folder}" if folder else ""))
    return 0 if passed == len(results) else 1
