"""Fixtures for the tile browser: a small generated project with metrics, decisions and a
split, and a browser panel on it that is always shut down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from casdesk.core.project.catalog import Catalog, utc_now
from casdesk.core.qc.detectors import METRICS
from tests.support.tiles import UTM18_HALF_M, blob_mask, write_raster

TILE_PX = 64
N_IMAGES = 6
"""Distinct image files; tiles share them so generating hundreds of tiles stays fast."""


@dataclass
class BrowserProject:
    catalog: Catalog
    ids: list[int]
    folder: Path


def build_project(folder: Path, n_tiles: int = 240) -> BrowserProject:
    """Two subdatasets (UAV, SAT), masks on some tiles, metrics with gaps, decisions, a split."""
    cat = Catalog.create(folder / "browse.casdesk")
    tiles_dir = folder / "tiles"
    tiles_dir.mkdir()
    rng = np.random.default_rng(1)
    images, masks = [], []
    for i in range(N_IMAGES):
        rgb = rng.integers(0, 255, (3, TILE_PX, TILE_PX), dtype=np.uint8)
        images.append(write_raster(tiles_dir / f"img{i}.tif", rgb, UTM18_HALF_M))
        masks.append(write_raster(tiles_dir / f"mask{i}.tif", blob_mask(i, TILE_PX), UTM18_HALF_M))
    cat.ensure_subdataset("alpha UAV", sensor="UAV")
    cat.ensure_subdataset("beta SAT", sensor="SAT")
    rows = []
    for i in range(n_tiles):
        k = i % N_IMAGES
        label_px = int(blob_mask(k, TILE_PX).sum())
        rows.append(
            {
                "name": f"tile_{i:04d}" + ("_x" if i % 7 == 0 else ""),
                "subdataset": "alpha UAV" if i % 3 else "beta SAT",
                "image_path": images[k],
                "mask_path": masks[k],
                "width": TILE_PX,
                "height": TILE_PX,
                "label_pixels": label_px,
                "valid_pixels": TILE_PX * TILE_PX,
            }
        )
    ids = cat.add_tiles(rows)
    now = utc_now()
    metric_rows = []
    for j, tid in enumerate(ids):
        if j % 10 == 9:
            continue  # some tiles have no metrics yet (pending, NaN)
        metric_rows += [  # what a scan stores: every metric the paper rules use
            (tid, "fill_fraction", METRICS["fill_fraction"].version, (j % 20) / 19.0, now),
            (tid, "label_fraction", METRICS["label_fraction"].version, rows[j]["label_pixels"] / TILE_PX**2, now),
            (tid, "cloud_fraction", METRICS["cloud_fraction"].version, ((j * 7) % 13) / 12.0, now),
            (tid, "seam_score", METRICS["seam_score"].version, float(j % 50), now),
        ]
    with cat.transaction() as db:
        db.executemany(
            "INSERT INTO qc_metrics(tile_id, metric, version, value, computed) VALUES (?, ?, ?, ?, ?)",
            metric_rows,
        )
        db.executemany(
            "INSERT INTO qc_decisions(tile_id, decision, decided) VALUES (?, ?, ?)",
            [(ids[1], "reject", now), (ids[2], "accept", now), (ids[2], "clear", now)],
        )
        db.execute("INSERT INTO splits(name, kind, params, created) VALUES ('s1', 'random', '{}', ?)", (now,))
        db.executemany(
            "INSERT INTO split_tiles(split_id, tile_id, part) VALUES (1, ?, ?)",
            [(tid, ("train", "val", "test")[j % 3]) for j, tid in enumerate(ids) if j % 4],
        )
    return BrowserProject(cat, ids, folder)


@pytest.fixture()
def browser_project(tmp_path: Path):
    proj = build_project(tmp_path)
    yield proj
    proj.catalog.close()


@pytest.fixture()
def browser(qtbot, browser_project):
    """A BrowserPanel with ``browser_project`` open and its tile table loaded."""
    from casdesk.gui.browser.panel import BrowserPanel
    from casdesk.gui.shell.context import ProjectContext

    context = ProjectContext()
    panel = BrowserPanel(context)
    qtbot.addWidget(panel)
    panel.resize(1000, 700)
    panel.show()
    context.open(browser_project.catalog.path)
    qtbot.waitUntil(lambda: panel.index is not None and panel.qc_loaded, timeout=10_000)
    yield panel
    panel.shutdown()
    assert panel.loader._pool.activeThreadCount() == 0
    context.close()
