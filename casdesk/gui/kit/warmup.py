"""One-time costs paid at startup on the GUI thread instead of in the middle of a user's
action (each was measured inside a GUI stall at 20,000 tiles):

- ``np.unique`` imports ``numpy.ma`` on its first call (~20-25 ms of a 140 ms stall when the
  Map first opened a tile in Browse);
- the first georeferenced raster a *thread* opens costs ~10-20 ms more than the next (reading
  its CRS sets up the thread's PROJ context): the QC review dialog opened its first tile in
  a 52 ms stall.

:func:`warm_up_gui_thread` runs before the window shows (``run_app``, and the benchmarks'
app runtime, through :func:`casdesk.gui.kit.gc_guard.freeze_long_lived`).
"""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

STARTUP_IMPORTS = ("numpy.ma",)
"""Modules imported lazily by code the GUI thread runs later."""


def warm_up_gui_thread() -> None:
    """Import :data:`STARTUP_IMPORTS` and read a tiny georeferenced in-memory raster on
    this thread (10-20 ms, before the window shows)."""
    for name in STARTUP_IMPORTS:
        importlib.import_module(name)
    try:
        import numpy as np
        from affine import Affine
        from rasterio.io import MemoryFile

        # georeferenced: reading a CRS sets up the thread's PROJ context (most of the cost)
        with MemoryFile() as mem:
            with mem.open(driver="GTiff", width=1, height=1, count=1, dtype="uint8", crs="EPSG:32633",
                          transform=Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 4000000.0)) as dst:
                dst.write(np.zeros((1, 1, 1), np.uint8))
            with mem.open() as src:
                src.read(1)
                _ = src.crs
    except Exception as exc:  # noqa: BLE001 - a warm-up never stops the app
        log.debug("raster warm-up skipped: %s", exc)
