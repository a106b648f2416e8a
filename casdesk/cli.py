"""The casdesk command line: the same core functions as the GUI, for batch and cluster work.

Each workflow area registers its subcommands from a module in :mod:`casdesk.commands`.
Errors a user can act on (:class:`CasdeskError`) are printed on one line, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence

from casdesk import __version__
from casdesk.core.errors import Cancelled, CasdeskError
from casdesk.core.project.catalog import DatabaseOperationalError
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


@contextlib.contextmanager
def quiet_library_warnings() -> Iterator[None]:
    """Library warnings as log lines, not pages of text per file.

    rasterio warns ``NotGeoreferencedWarning`` for every released CAS tile (plain images
    without a georeference, as published): one info line says so, once per command. NumPy's
    RuntimeWarnings (empty or all-NaN tiles in statistics) go to the log file only.
    """
    from rasterio.errors import NotGeoreferencedWarning

    log = logging.getLogger("casdesk")
    told = False
    previous = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: object = None, line: str | None = None) -> None:
        nonlocal told
        if issubclass(category, NotGeoreferencedWarning):
            if not told:
                told = True
                print("casdesk: info: some rasters have no georeference (as the released CAS tiles): "
                      "pixel coordinates are used for them", file=sys.stderr)
            return
        if issubclass(category, RuntimeWarning):
            log.debug("%s:%s: %s", filename, lineno, message)
            return
        previous(message, category, filename, lineno, file, line)  # type: ignore[arg-type]

    with warnings.catch_warnings():  # the filters stay as they are (DeprecationWarnings stay hidden)
        warnings.showwarning = show
        yield


def _os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Every error ends in one line on stderr: exit 2 for errors (never a
    traceback, unless ``-v``), 130 for a cancel."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(verbose=args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    prefix = f"casdesk {args.command}"
    try:
        with quiet_library_warnings():
            result = args.func(args)
    except Cancelled as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return 130
    except CasdeskError as exc:
        print(f"{prefix}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except DatabaseOperationalError as exc:
        if "readonly" in str(exc):
            print(f"{prefix}: error: the project is read-only here (an archive or a read-only share): "
                  f"this command writes to it ({exc})", file=sys.stderr)
            return 2
        return _unexpected(prefix, exc, args.verbose)
    except MemoryError:
        print(f"{prefix}: error: not enough memory for this command (use smaller tiles or batches, "
              "or fewer workers)", file=sys.stderr)
        return 2
    except OSError as exc:
        if args.verbose:
            raise
        print(f"{prefix}: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug must still end in one line, not a traceback
        return _unexpected(prefix, exc, args.verbose)
    return int(result or 0)


def _unexpected(prefix: str, exc: BaseException, verbose: bool) -> int:
    logging.getLogger("casdesk").info("unexpected error in %s", prefix, exc_info=exc)  # traceback: log file only
    if verbose:
        import traceback

        traceback.print_exception(exc)
        return 2
    text = str(exc).strip().splitlines()
    print(f"{prefix}: error: unexpected {type(exc).__name__}"
          f"{': ' + text[0] if text else ''} (a bug: please report it with the log file; "
          "`casdesk -v` shows the details)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
