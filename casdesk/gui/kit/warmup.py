"""One-time costs paid at startup on the GUI thread instead of in the middle of a user's
action (each was measured inside a GUI stall at 20,000 tiles):

- ``np.unique`` imports ``numpy.ma`` on its first call (~20-25 ms of a 140 ms stall when the
  Map first opened a tile in Browse);
- the first georeferenced raster a *thread* opens costs ~10-20 ms more than the next (reading
  its CRS sets up the thread's PROJ context): the QC review dialog opened its first tile in
  a 52 ms stall.

:func:`warm_up_gui_thread` runs before the window shows (``run_app``, and the benchmarks'
app runtime, through :func:`casdesk.gui.kit.gc_guard.freeze_long_lived`).

Modules the GUI thread imports on a user's *first use* of a feature are imported ahead, in the
background, once the window is up (:func:`import_in_background`, started by ``run_app``): the
first "Review suspect labels" imported shapely and the raster writers (50 ms) in the click,
and the first "Start training" after a reboot read the training settings' modules from disk
in an 85 ms GUI stall (5 ms with the files cached).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence

log = logging.getLogger(__name__)

STARTUP_IMPORTS = ("numpy.ma",)
"""Modules imported lazily by code the GUI thread runs later."""

BACKGROUND_IMPORTS = (
    "casdesk.ml.training.config",  # Start training (the recipe; tomllib)
    "casdesk.core.qc.suspects",  # Review suspect labels (shapely, the raster writers)
    "casdesk.core.labels.exchange",  # the editor's LabelMe import and export
    "casdesk.core.labels.from_prediction",  # Accept as polygons
    "casdesk.core.dataset.importers",  # Project: import a dataset
    "casdesk.core.dataset.tiling",  # Project: crop a scene
    "casdesk.core.dataset.scenes",  # Project: add a scene
)
"""Modules the GUI thread imports on a user's first use of a feature (20-50 ms each, more
from a cold disk); none of them imports torch (a test checks)."""


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


def import_in_background(names: Sequence[str] = BACKGROUND_IMPORTS) -> threading.Thread:
    """Import ``names`` in a daemon thread (started; returned so that tests can wait for it).

    The thread keeps the GUI thread's priority: a lowered thread that holds the GIL while
    other processes keep the cores busy is not scheduled for a while, and the GUI thread
    waits for the GIL all that time (measured with two busy processes on two cores: the
    GUI thread's median wait for the GIL 7-12 ms behind a thread at nice +5, 0.7 ms at
    nice 0). Python's import locks make a GUI-thread import of the same module wait for this
    one instead of doing the work twice. A module that fails to import is skipped (logged);
    its feature reports the error when used."""

    def run() -> None:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - the feature itself reports it when used
                log.debug("background import of %s skipped: %s", name, exc)

    thread = threading.Thread(target=run, name="casdesk-imports", daemon=True)
    thread.start()
    return thread
