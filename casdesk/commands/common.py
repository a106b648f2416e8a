"""Helpers shared by the CLI subcommands: progress bars, JSON output, opening projects."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from casdesk.core.jobs import CancelToken, Job, Progress, run_job
from casdesk.core.project.catalog import Catalog


def open_project(path: str | Path, readonly: bool = False) -> Catalog:
    return Catalog.open(path, readonly=readonly)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


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
