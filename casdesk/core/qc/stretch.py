"""One display stretch per scene for the QC detectors.

The detectors judge a tile as the display shows it, in 8-bit DN: the seam score is a step
in DN, the cloud rule wants >= 175 DN. An 8-bit tile is shown as it is; any other type
(16-bit, 12-bit in 16, float) has to be stretched. Stretching each tile on its own 2-98 %
range makes the DN a tile-relative unit: a low-contrast tile gets its contrast multiplied
and a bright one reads darker. A 16-bit copy of the released tile Palu0117 (its 8-bit
values x 16 + 100) scored 47.0 on the seam rule (rejected; 19.6 as released) and 8 of the
22 released tiles were flagged instead of 2 (docs/qc.md).

A tile cropped from a scene of the project is measured with its scene's stretch instead:
the 2-98 % range of each band over windows sampled across the whole scene, as QGIS shows
a layer with one stretch for all of it. Tiles without a scene of the project (imported
datasets), or whose scene file is gone, keep the per-tile stretch.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from casdesk.core.errors import CasdeskError
from casdesk.core.project.catalog import Catalog, Tile
from casdesk.core.raster.io import open_raster, percentile_limits, read_window

log = logging.getLogger(__name__)

SAMPLE_GRID = 4
"""Windows per side of the grid sampled across a scene (16 windows)."""
SAMPLE_WINDOW = 256
"""Side of each sampled window (pixels): about a million pixels per scene in all (16 windows of
256 px read in a fifth of the time of 64 of 128 px: 12 against 67 ms on a tiled 3072 x 2048
scene)."""


def scene_limits(path: str | Path) -> np.ndarray | None:
    """(bands, 2) 2-98 % limits of the valid pixels of windows sampled on a grid over the
    scene at ``path``; None for 8-bit scenes (shown as they are). Kept for the process
    while the file's size and modification time stay the same (the background recompute
    of stale tiles asks again every few tiles)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return _sampled_limits(str(p), -1, -1)  # open_raster says what is wrong
    limits = _sampled_limits(str(p), st.st_size, st.st_mtime_ns)
    return None if limits is None else limits.copy()


@functools.lru_cache(maxsize=32)
def _sampled_limits(path: str, size: int, mtime_ns: int) -> np.ndarray | None:
    with open_raster(path) as ds:
        if np.dtype(ds.dtypes[0]) == np.uint8:
            return None
        rows, cols = ds.height, ds.width
        size = min(SAMPLE_WINDOW, rows, cols)
        starts_r = np.linspace(0, rows - size, min(SAMPLE_GRID, max(1, rows // size))).round().astype(int)
        starts_c = np.linspace(0, cols - size, min(SAMPLE_GRID, max(1, cols // size))).round().astype(int)
        data, valid = [], []
        for r in dict.fromkeys(starts_r.tolist()):
            for c in dict.fromkeys(starts_c.tolist()):
                d, v = read_window(ds, Window(c, r, size, size))
                data.append(d)
                valid.append(v)
    return percentile_limits(np.concatenate(data, axis=2), np.concatenate(valid, axis=1))


def limits_for(catalog: Catalog, tiles: Iterable[Tile]) -> dict[int, np.ndarray]:
    """Scene id -> display limits for the scenes of ``tiles`` that are not 8-bit (each
    scene sampled once). A scene whose file cannot be read is left out (its tiles keep the
    per-tile stretch; logged)."""
    wanted = {t.scene_id for t in tiles if t.scene_id is not None}
    if not wanted:
        return {}
    out: dict[int, np.ndarray] = {}
    for scene in catalog.scenes():
        if scene.id not in wanted or np.dtype(scene.dtype) == np.uint8:
            continue
        try:
            limits = scene_limits(scene.path)
        except CasdeskError as exc:
            log.warning("QC: scene %s: %s; its tiles are stretched one by one", scene.name, exc)
            continue
        if limits is not None:
            out[scene.id] = limits
    return out
