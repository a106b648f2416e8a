"""The GUI thread's share of Python's GIL while workers run Python.

Qt calls into Python for every painted grid cell, every model question and every slot, each
time taking the GIL from C++. A worker running Python (reading SQLite rows into objects,
unpacking thumbnails) holds the GIL until the interpreter's switch interval asks it to let
go, 5 ms by default: a paint of 150 cells could then wait 150 x 5 ms. Measured on the Browse
grid with one busy worker: 150-230 ms per repaint at 5 ms, 10-20 ms at 0.2-0.5 ms (idle:
10-15 ms). A shorter interval costs the workers a few more thread switches per second.
"""

from __future__ import annotations

import sys

GUI_SWITCH_INTERVAL_S = 0.0005
"""The interpreter's switch interval while the GUI runs (Python's default: 0.005 s)."""


def favour_gui_thread(interval_s: float = GUI_SWITCH_INTERVAL_S) -> float:
    """Shorten the interpreter's switch interval to ``interval_s`` (never lengthen it);
    returns the previous interval (to restore it, as tests do)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, interval_s))
    return previous
