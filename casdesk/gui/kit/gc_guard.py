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

BUSY_YOUNG = 5_000
"""Young objects alive beyond which a collection waits (see :meth:`GuiThreadGarbageCollector.check`)."""
MAX_POSTPONED = 6
"""Checks in a row a collection may wait for them (3 s at the default interval)."""
LONG_LIVED_YOUNG = 50_000
"""Young objects still alive after the wait beyond which they are frozen, not walked."""
MAX_FREEZES = 3
"""Such freezes per session (each may keep a cycle alive that existed at that moment)."""


class GuiThreadGarbageCollector(QObject):
    """Disable automatic collection; collect on the GUI thread every ``interval_ms``, doing
    only as much as the generation counts ask for (a young collection is microseconds).

    A young collection walks every young object still alive. While a worker holds what it
    is reading (60k SQLite rows of a 20k-tile project's QC metrics) that is 50-150k objects
    and 20-90 ms of the GUI thread, for objects reference counting frees a moment later. So
    beyond :data:`BUSY_YOUNG` young objects the collection waits, at most
    :data:`MAX_POSTPONED` checks in a row (cyclic garbage still goes within seconds).

    More than :data:`LONG_LIVED_YOUNG` young objects still alive after that wait are what an
    import left (``import torch`` in a worker: ~250k objects, a 150-260 ms young collection
    on the GUI thread, then every full collection walks them again): they are frozen like
    the startup objects (:func:`freeze_long_lived`), at most :data:`MAX_FREEZES` times."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = 500) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        self.postponed = 0  # checks in a row that waited for a worker's objects to go
        self.freezes = 0  # long-lived bursts frozen instead of walked
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.check)
        self._timer.start(interval_ms)

    def check(self) -> None:
        counts = gc.get_count()
        if counts[0] <= self._thresholds[0]:
            self.postponed = 0
            return
        if counts[0] > BUSY_YOUNG and self.postponed < MAX_POSTPONED:
            self.postponed += 1
            return
        self.postponed = 0
        if counts[0] > LONG_LIVED_YOUNG and self.freezes < MAX_FREEZES:
            self.freezes += 1
            gc.freeze()
            return
        generation = 0
        if counts[1] > self._thresholds[1]:
            generation = 2 if counts[2] > self._thresholds[2] else 1
        gc.collect(generation)

    def stop(self) -> None:
        """Give automatic collection back (when the app quits)."""
        self._timer.stop()
        gc.enable()


def freeze_long_lived() -> int:
    """Move every object alive now to the collector's permanent generation; returns how many.
    The GUI thread's one-time costs are paid first (:func:`~casdesk.gui.kit.warmup.warm_up_gui_thread`:
    their objects live for the whole session too).

    Call once, when the window is built: the ~130k objects of the modules, classes and
    widgets then live for the whole session, and a full collection walked them all each
    time (~120 ms, 8 times while a 20k-tile project opened: a GUI-thread stall with
    :class:`GuiThreadGarbageCollector`, a worker holding the GIL without it). After the
    freeze a full collection walks only what was made since. Reference counting still
    frees frozen objects; only a cycle among them would never be collected, which is why
    this is done at startup, before any dialog exists.
    """
    from casdesk.gui.kit.warmup import warm_up_gui_thread

    warm_up_gui_thread()
    gc.freeze()
    return gc.get_freeze_count()


def thaw() -> None:
    """Undo :func:`freeze_long_lived` (when the app ends: collections walk everything again)."""
    gc.unfreeze()
