"""The editor on a tile imported with a raster mask (CAS layout): its labels are shown and
editable, drawing then deleting restores the imported mask, the dataset is never written,
"Regenerate masks" and stale masks left by a crash go through the core regeneration."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from casdesk.core.dataset.importers import import_cas
from casdesk.core.jobs import run_job
from casdesk.core.labels import geometry as ge
from casdesk.core.labels.store import mark_pending, pending_tiles
from casdesk.core.project.catalog import Catalog
from casdesk.gui.editor.panel import EditorPanel
from casdesk.gui.shell.context import ProjectContext
from tests.support.tiles import read_band, write_raster

NORTH_UP_1M = Affine(1, 0, 0, 0, -1, 128)  # 1 px = 1 m, the 128 px tile's top edge at y = 128


def digest(folder: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.tif"))]


@pytest.fixture()
def cas_project(tmp_path: Path):
    root = tmp_path / "cas" / "Luding"
    yy, xx = np.mgrid[:128, :128]
    mask = (((yy - 40) ** 2 + (xx - 40) ** 2 <= 20**2) | ((yy - 90) ** 2 + (xx - 85) ** 2 <= 25**2)).astype(np.uint8)
    write_raster(root / "img" / "a.tif", np.random.default_rng(0).integers(0, 255, (3, 128, 128), dtype=np.uint8),
                 crs="EPSG:32633", transform=NORTH_UP_1M, dtype="uint8")
    write_raster(root / "mask" / "a.tif", mask, crs="EPSG:32633", transform=NORTH_UP_1M, dtype="uint8")
    with Catalog.create(tmp_path / "p") as cat:
        run_job(import_cas(cat, root.parent))
        return cat.path, root.parent, mask


def test_imported_mask_is_editable_and_restored(qtbot, cas_project) -> None:
    path, dataset, mask = cas_project
    before = digest(dataset)
    with Catalog.open(path) as cat:
        tid = cat.tiles()[0].id
        mark_pending(cat, [tid])  # as if a crash left this tile's mask stale
    context = ProjectContext()
    context.open(path)
    panel = EditorPanel(context)
    qtbot.addWidget(panel)
    panel.show()
    try:
        panel.refresh()  # lists the tile and opens it: its imported mask becomes shapes in a worker
        assert panel.is_opening() and panel.target is None
        qtbot.waitUntil(panel.regen_idle, timeout=10_000)
        assert pending_tiles(context.catalog) == []  # finished at the next open
        panel.open_target("tile", tid)
        qtbot.waitUntil(lambda: panel.target is not None and panel.target.tile_id == tid, timeout=10_000)
        assert not panel.is_opening()
        doc = panel.canvas.doc
        assert len(doc.shapes) == 2  # the imported circles, not "0 shapes"
        ring = np.array([[100.0, 5.0], [120.0, 5.0], [120.0, 25.0], [100.0, 25.0]])
        key = doc.add_shape("landslide", [[ring]])
        qtbot.waitUntil(panel.regen_idle, timeout=10_000)
        tile = context.catalog.tile(tid)
        drawn = read_band(tile.mask_path)
        assert int((drawn != mask).sum()) > 300 and (drawn[mask == 1] == 1).all()
        doc.remove_shape(key)
        qtbot.waitUntil(panel.regen_idle, timeout=10_000)
        np.testing.assert_array_equal(read_band(context.catalog.tile(tid).mask_path), mask)
        panel.regen_action.trigger()  # "Regenerate masks": nothing to change
        qtbot.waitUntil(panel.regen_idle, timeout=10_000)
        np.testing.assert_array_equal(read_band(context.catalog.tile(tid).mask_path), mask)
        assert ge.vertex_count(next(iter(doc.shapes.values())).parts) > 8
    finally:
        panel.shutdown()
        context.close()
    assert digest(dataset) == before  # the CAS mask/ file was never rewritten
