"""Helpers shared by the CLI subcommands: progress bars, JSON output, opening projects."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from casdesk.core.jobs import CancelToken, Job, Progress, run_job
from casdesk.core.project.catalog import Catalog


def int_range(lo: int, hi: int | None = None, what: str = "value") -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[lo, hi]``; the error names the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lo or (hi is not None and value > hi):
            upper = f" to {hi}" if hi is not None else " or more"
            raise argparse.ArgumentTypeError(f"{what} {value} is out of range: {lo}{upper}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


def float_range(lo: float, hi: float, what: str = "value", lo_open: bool = False, hi_open: bool = False
                ) -> Callable[[str], float]:
    """An argparse ``type``: a number in ``[lo, hi]`` (``(`` / ``)`` when open)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        bad = (value != value or value < lo or value > hi or (lo_open and value == lo)
               or (hi_open and value == hi))
        if bad:
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            raise argparse.ArgumentTypeError(f"{what} {text} is out of range {left}{lo:g}, {hi:g}{right}")
        return value

    parse.__name__ = what
    return parse


def open_project(path: str | Path, readonly: bool = False) -> Catalog:
    """Open a project for a command; first remove what killed processes left behind
    (:func:`casdesk.core.project.cleanup.cleanup_project`)."""
    from casdesk.core.project.cleanup import cleanup_project

    cat = Catalog.open(path, readonly=readonly)
    cleaned = cleanup_project(cat)
    if cleaned:
        print(f"casdesk: {cleaned.describe()}", file=sys.stderr)
    return cat


def print_json(obj: Any) -> None:
    """JSON on stdout; names stay UTF-8 (no ``\\u`` escapes)."""
    print(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


@contextmanager
def interruptible() -> Any:
    """A cancel token set by Ctrl+C, so a job stops cleanly between steps."""
    token = CancelToken()
    previous = signal.getsignal(signal.SIGINT)

    def _handler(signum: int, frame: Any) -> None:
        if token.cancelled:  # second Ctrl+C: stop now
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        print("\nstopping after the current step (Ctrl+C again to abort)...", file=sys.stderr)
        token.cancel()

    try:
        signal.signal(signal.SIGINT, _handler)
    except ValueError:  # not the main thread
        pass
    try:
        yield token
    finally:
        try:
            signal.signal(signal.SIGINT, previous)
        except ValueError:
            pass


def drive(job: Job, desc: str, quiet: bool = False, on_event: Callable[[Any], None] | None = None) -> Any:
    """Run a job generator with a tqdm progress bar on stderr; return the job's result."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="step", disable=quiet or not sys.stderr.isatty(), file=sys.stderr)

    def show(event: Progress) -> None:
        if event.total and bar.total != event.total:
            bar.total = event.total
        bar.n = event.done
        if event.message:
            bar.set_postfix_str(event.message[:40], refresh=False)
        bar.refresh()
        if on_event is not None:
            on_event(event)

    try:
        return run_job(job, show)
    finally:
        bar.close()
