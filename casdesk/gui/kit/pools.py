"""Thread pools whose threads are made once, when the window is built, and kept.

Making a thread waits for whatever library another thread is loading: the C library's
loader lock is held while ``dlopen`` maps and relocates a library, and a new thread needs it
to set up its thread-local storage. torch's libraries take 0.1-1 s to load, so a thread
started by the GUI thread while a worker imported torch stalled the window: 75-110 ms for
one ``QThreadPool.start`` or ``threading.Thread.start`` with torch's files not yet cached, up
to 34 ms with them cached (measured on a 2-core machine; with no import running, 0.1 ms). A
pool that let its idle threads expire after 5 s made a new one at the next click.
"""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import QObject, QRunnable, QThreadPool


class _Hold(QRunnable):
    """Occupies a pool thread until ``release`` is set, so that the next task needs a new one."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self._release = release

    def run(self) -> None:
        self._release.wait(5.0)


def kept_pool(parent: QObject | None, threads: int) -> QThreadPool:
    """A pool of ``threads`` threads, all made now and never expiring; the pool (a child of
    ``parent``) ends them when it is destroyed."""
    pool = QThreadPool(parent)
    pool.setMaxThreadCount(threads)
    pool.setExpiryTimeout(-1)
    release = threading.Event()
    for _ in range(threads):
        pool.start(_Hold(release))
    release.set()
    # idle on return (not waitForDone: it also ends the pool's threads)
    deadline = time.monotonic() + 5.0
    while pool.activeThreadCount() and time.monotonic() < deadline:
        time.sleep(0.0002)
    return pool
