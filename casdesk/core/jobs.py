"""Progress events and cancellation shared by the CLI and the GUI workers.

Long jobs are generators that yield :class:`Progress` events and check a
:class:`CancelToken` between steps. The CLI drives them with a progress bar; a GUI worker
drives the same generator in a thread and forwards the events as signals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from casdesk.core.errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One step of a long job: ``done`` of ``total`` units (``total`` 0 when unknown)."""

    done: int
    total: int
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class CancelToken:
    """Thread-safe flag a GUI button or a Ctrl+C handler sets and a job polls."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


Job = Generator[Progress, None, Any]


def run_job(job: Job, on_event: Callable[[Progress], None] | None = None) -> Any:
    """Drive a job generator to the end, passing each event to ``on_event``; return the
    job's return value."""
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)


def iter_job(job: Job) -> Iterator[Progress]:
    """Iterate a job's progress events (the return value is dropped)."""
    yield from job
