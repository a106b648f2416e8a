"""Run core job generators off the GUI thread and report by signals.

A core job is a generator yielding :class:`~casdesk.core.jobs.Progress` and checking a
:class:`~casdesk.core.jobs.CancelToken`. :class:`JobRunner` drives one in a ``QThread``:
the same code path the CLI drives with a progress bar. The factory is called *in the
worker thread*, so it can open its own :class:`Catalog` there.

Usage::

    runner = JobRunner(lambda token: compute_metrics(project_path, cancel=token), parent=self)
    runner.progress.connect(self._on_progress)
    runner.finished.connect(self._on_done)
    runner.failed.connect(self._on_error)
    runner.start()
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from casdesk.core.errors import Cancelled, CasdeskError
from casdesk.core.jobs import CancelToken, Job
from casdesk.gui.kit.gil import lower_thread_priority

log = logging.getLogger(__name__)

JobFactory = Callable[[CancelToken], Job]


class _Worker(QObject):
    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()

    def __init__(self, factory: JobFactory, token: CancelToken, lower_priority: bool = True):
        super().__init__()
        self._factory = factory
        self._token = token
        self._lower_priority = lower_priority

    @Slot()
    def run(self) -> None:
        """Drive the job. Cancelling is the job's own business: every core job polls its
        token between steps and raises Cancelled or returns a consistent partial result
        (a training run saves its checkpoint first), so the generator is never closed
        from outside.

        The thread runs below the GUI thread (:func:`~casdesk.gui.kit.gil.lower_thread_priority`),
        and so do the processes it starts (a training run's tile loaders inherit it): on a
        busy machine the window's thread gets a core first."""
        if self._lower_priority:
            lower_thread_priority()
        try:
            job = self._factory(self._token)
            while True:
                try:
                    event = next(job)
                except StopIteration as stop:
                    result = stop.value
                    break
                self.progress.emit(event)
        except Cancelled:
            self.cancelled.emit()
        except CasdeskError as exc:
            log.warning("job failed: %s", exc)
            self.failed.emit(str(exc), traceback.format_exc())
        except Exception as exc:  # noqa: BLE001 - reported to the user, logged in full
            log.exception("job crashed")
            self.failed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            self.finished.emit(result)


class JobRunner(QObject):
    """One background job in its own QThread. Signals arrive on the GUI thread."""

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str, str)  # short message, details
    cancelled = Signal()
    done = Signal()  # after any of finished/failed/cancelled, once the thread has ended

    def __init__(self, factory: JobFactory, parent: QObject | None = None, name: str = "job",
                 lower_priority: bool = True):
        super().__init__(parent)
        self.name = name
        self.token = CancelToken()
        self._thread = QThread()
        self._thread.setObjectName(f"casdesk-{name}")
        self._worker = _Worker(factory, self.token, lower_priority)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.progress.connect(self.progress)
        self._worker.finished.connect(self.finished)
        self._worker.failed.connect(self.failed)
        self._worker.cancelled.connect(self.cancelled)
        for signal in (self._worker.finished, self._worker.failed, self._worker.cancelled):
            signal.connect(self._thread.quit)
        self._thread.finished.connect(self._on_thread_finished)
        self._running = False
        self._after: JobRunner | None = None  # started, its thread waiting for this job to end
        self._closed = False

    def start(self, after: JobRunner | None = None) -> None:
        """Run the job: now or, while ``after`` runs, once it has ended (running from now on,
        as far as :meth:`is_running` says). A job that imports torch waits for a torch
        import running elsewhere anyway, and a thread made while another thread loads a
        large library waits for the loader, on the GUI thread (:mod:`casdesk.gui.kit.pools`:
        up to ~50 ms for the first training run's thread while torch was imported)."""
        self._running = True
        if after is not None and after is not self and after.is_running():
            self._after = after
            after.done.connect(self._start_after)
        else:
            self._thread.start()

    def _start_after(self) -> None:
        if self._after is None:
            return
        self._after.done.disconnect(self._start_after)
        self._after = None
        if not self._closed:
            self._thread.start()

    def cancel(self) -> None:
        self.token.cancel()

    def is_running(self) -> bool:
        return self._running

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until the thread ends (used on shutdown and in tests); False for a job still
        waiting for another to end (its thread starts from the GUI thread's event loop)."""
        if self._after is not None:
            return False
        return self._thread.wait(msecs)

    def _on_thread_finished(self) -> None:
        self._running = False
        self.done.emit()

    def shutdown(self, msecs: int = 30_000) -> None:
        """Cancel and wait: nothing may outlive the window that owns the job (one still
        waiting to start never starts)."""
        self._closed = True
        if self._after is not None:
            self._after.done.disconnect(self._start_after)
            self._after = None
            self._running = False
        if self._thread.isRunning():
            self.token.cancel()
            self._thread.quit()
            self._thread.wait(msecs)


def run_in_background(
    factory: JobFactory,
    parent: QObject,
    on_finished: Callable[[Any], None] | None = None,
    on_failed: Callable[[str, str], None] | None = None,
    on_progress: Callable[[Any], None] | None = None,
    name: str = "job",
) -> JobRunner:
    runner = JobRunner(factory, parent, name=name)
    if on_progress:
        runner.progress.connect(on_progress)
    if on_finished:
        runner.finished.connect(on_finished)
    if on_failed:
        runner.failed.connect(on_failed)
    runner.start()
    return runner
