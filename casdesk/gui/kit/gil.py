"""The GUI thread's share of Python's GIL while workers run Python.

Qt calls into Python for every painted grid cell, every model question and every slot, each
time taking the GIL from C++. A worker running Python (reading SQLite rows into objects,
unpacking thumbnails) holds the GIL until the interpreter's switch interval asks it to let
go, 5 ms by default: a paint of 150 cells could then wait 150 x 5 ms. Measured on the Browse
grid with one busy worker: 150-230 ms per repaint at 5 ms, 10-20 ms at 0.2-0.5 ms (idle:
10-15 ms). A shorter interval costs the workers a few more thread switches per second.
"""

from __future__ import annotations

import os
import sys
import threading

GUI_SWITCH_INTERVAL_S = 0.0005
"""The interpreter's switch interval while the GUI runs (Python's default: 0.005 s)."""


def favour_gui_thread(interval_s: float = GUI_SWITCH_INTERVAL_S) -> float:
    """Shorten the interpreter's switch interval to ``interval_s`` (never lengthen it);
    returns the previous interval (to restore it, as tests do)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, interval_s))
    return previous


WORKER_NICE = 5
"""How much lower a worker thread's scheduling priority is than the GUI thread's (Linux)."""


def lower_thread_priority(nice: int = WORKER_NICE) -> None:
    """Make the calling (worker) thread yield the CPU to the GUI thread: on Linux a thread
    has its own nice value, and at +5 it gets about a third of the GUI thread's share when
    both want a core (loads, thumbnail decoding and jobs run when the GUI is idle, which is
    most of the time). Idempotent: a thread already lowered (a pool reuses its threads)
    stays as it is. Elsewhere, or when it cannot be changed, nothing happens."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        target = min(19, _PROCESS_NICE + nice)
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
    except (OSError, AttributeError):
        pass


_PROCESS_NICE = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else 0
"""The process's nice value when casdesk started (the GUI thread's)."""
