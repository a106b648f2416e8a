"""The casdesk command line: the same core functions as the GUI, for batch and cluster work.

Each workflow area registers its subcommands from a module in :mod:`casdesk.commands`.
Errors a user can act on (:class:`CasdeskError`) are printed on one line, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from casdesk import __version__
from casdesk.core.errors import Cancelled, CasdeskError
from casdesk.logsetup import setup_logging

COMMAND_MODULES = [
    "casdesk.commands.project",
    "casdesk.commands.qc",
    "casdesk.commands.labels",
    "casdesk.commands.ml",
    "casdesk.commands.predict",
    "casdesk.commands.experiments",
    "casdesk.commands.selftest",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="casdesk",
        description="Landslide mapping: GeoTIFF scenes to CAS-layout datasets, QC, labels, models.",
    )
    parser.add_argument("--version", action="version", version=f"casdesk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(verbose=args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        result = args.func(args)
    except Cancelled as exc:
        print(f"casdesk {args.command}: {exc}", file=sys.stderr)
        return 130
    except CasdeskError as exc:
        print(f"casdesk {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"casdesk {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
