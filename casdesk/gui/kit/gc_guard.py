"""Python's cyclic garbage collector runs on the GUI thread only.

The collector runs in whichever thread happens to allocate when a generation fills up. When
that is a worker thread (a QThreadPool task reading SQLite, a training job) and the garbage
holds Qt objects (a closed dialog in a reference cycle), their C++ destructors run on the
worker while the GUI thread may be deleting widgets too: the two wait on each other's locks
(Qt's object mutex and Python's GIL) and the app freezes. Seen in the test suite: a worker's
``fetchall`` triggered a collection that destroyed a QMenu while the GUI thread deleted a
window. The cure is the usual one for Qt apps: switch automatic collection off and collect
from a GUI-thread timer instead.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class GuiThreadGarbageCollector(QObject):
    """Disable automatic collection; collect on the GUI thread every ``interval_ms``, doing
    only as much as the generation counts ask for (a young collection is microseconds)."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = 500) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.check)
        self._timer.start(interval_ms)

    def check(self) -> None:
        counts = gc.get_count()
        if counts[0] <= self._thresholds[0]:
            return
        generation = 0
        if counts[1] > self._thresholds[1]:
            generation = 2 if counts[2] > self._thresholds[2] else 1
        gc.collect(generation)

    def stop(self) -> None:
        """Give automatic collection back (when the app quits)."""
        self._timer.stop()
        gc.enable()
