"""One thread pool for the window's background calls, its threads made early and kept.

Making a thread waits for whatever library another thread is loading: the C library's
loader lock is held while ``dlopen`` maps and relocates a library, and a new thread needs it
to set up its thread-local storage. torch's libraries take 0.1-1 s to load, so a thread
started by the GUI thread while a worker imported torch stalled the window: 75-110 ms for
one ``QThreadPool.start`` or ``threading.Thread.start`` with torch's files not yet cached, up
to 34 ms with them cached (measured on a 2-core machine; with no import running, 0.1 ms).
Each :class:`~casdesk.gui.browser.loader.LatestCall` had a pool of its own whose thread
expired after 5 s idle, so the next click made one.

:func:`call_pool` is shared by every ``LatestCall`` of the process: :data:`CALL_THREADS`
threads are made when the first is built (with the window, before anything imports torch)
and never expire; more are made only when more calls than that run at once, up to
:data:`MAX_CALL_THREADS`, and are kept too. The number of threads does not grow with the
number of windows, panels or dialogs made.
"""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import QRunnable, QThreadPool

CALL_THREADS = 4
"""Threads made with the pool (a project's open runs 4-6 calls at once, most short)."""
MAX_CALL_THREADS = 16

_calls: QThreadPool | None = None


class _Hold(QRunnable):
    """Occupies a pool thread until ``release`` is set, so that the next task needs a new one."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self._release = release

    def run(self) -> None:
        self._release.wait(5.0)


def make_threads(pool: QThreadPool, count: int) -> None:
    """Have ``pool`` make ``count`` threads now (it keeps them while its expiry allows);
    returns with the pool idle (not through ``waitForDone``, which ends the threads)."""
    release = threading.Event()
    for _ in range(count):
        pool.start(_Hold(release))
    release.set()
    deadline = time.monotonic() + 5.0
    while pool.activeThreadCount() and time.monotonic() < deadline:
        time.sleep(0.0002)  # the GIL released: the held threads finish


def call_pool() -> QThreadPool:
    """The process's pool for background calls (made at the first call, on the GUI thread)."""
    global _calls
    if _calls is None:
        pool = QThreadPool()
        pool.setMaxThreadCount(MAX_CALL_THREADS)
        pool.setExpiryTimeout(-1)
        make_threads(pool, CALL_THREADS)
        _calls = pool
    return _calls
