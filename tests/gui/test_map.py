"""The Map tab: tiles per QC state as drawn, a click opens the tile, georeferenced scenes
at their place with a scale bar in metres, repaint on decisions without a reload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from casdesk.core.dataset import tile_table as ti
from casdesk.core.project import events as ev
from casdesk.core.project.catalog import Catalog
from casdesk.gui.map import layout as lay


def _open_map(qtbot, window):
    panel = window.panels["Map"]
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.data is not None and not panel.is_loading(), timeout=20_000)
    return panel


def _drawn_states(panel) -> dict[int, int]:
    """Count the tiles per QC state from the drawn grid rasters (one cell per tile)."""
    lut = {rgb: code for code, rgb in lay.STATE_COLOURS.items()}
    counts: dict[int, int] = {}
    for block, image in zip(panel.data.layout.blocks, panel.data.images, strict=True):
        assert block.kind == "grid"
        k = lay.GRID_CELL_PX
        centres = image.rgba[k // 2 + 2 :: k, 2::k]  # a pixel inside each cell, off the dot
        cols, rows = block.grid_shape
        flat = centres.reshape(-1, 4)[: block.rows.size]
        for rgba in flat.tolist():
            code = lut[tuple(rgba[:3])]
            counts[code] = counts.get(code, 0) + 1
    return counts


def test_map_counts_tiles_per_state_and_a_click_opens_the_tile(qtbot, window, project_path: Path):
    panel = _open_map(qtbot, window)
    with Catalog.open(project_path, readonly=True) as cat:
        index = ti.load_index(cat, with_qc=True)
    codes, counts = np.unique(index.qc_state, return_counts=True)
    expected = {int(c): int(n) for c, n in zip(codes, counts, strict=True)}
    assert sum(expected.values()) == 60 and len(expected) >= 2
    assert _drawn_states(panel) == expected
    assert panel.state_counts() == {ti.state_name(c): n for c, n in expected.items()}
    # both subdatasets are grids (no georeferenced scene): the scale bar is in tile pixels
    assert {b.title for b in panel.data.layout.blocks} == {"alpha UAV", "beta SAT"}
    assert panel.view.scale_bar()[2] == "px"

    # a click picks the tile under the pointer; a double click opens it in Browse's detail view
    tid = int(index.ids[17])
    point = panel.view.mapFromScene(panel.tile_scene_point(tid))
    qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert panel.selected == tid and str(index.names[17]) in panel.tile_info.text()
    browser = window.panels["Browse"]
    with qtbot.waitSignal(browser.detail.loaded, timeout=10_000):
        qtbot.mouseDClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert window.tabs.currentWidget() is browser
    assert browser.detail.request.tile_id == tid
    assert browser.model.tile_id(browser.grid.currentIndex().row()) == tid
    # "Open in Label" opens the picked tile in the editor
    window.tabs.setCurrentWidget(panel)
    panel.open_label.click()
    editor = window.panels["Label"]
    assert window.tabs.currentWidget() is editor and editor.target.tile_id == tid
    # empty space picks nothing
    panel.pick(-1e6, -1e6)
    assert panel.selected is None and not panel.open_browse.isEnabled()


def test_decisions_repaint_the_map_without_a_reload(qtbot, window):
    panel = _open_map(qtbot, window)
    loads = panel.loads
    before = _drawn_states(panel)
    ids = panel.data.index.ids[:6].tolist()
    browser = window.panels["Browse"]
    ti.set_decision(window.context.catalog, ids, "reject")
    window.context.events.announce(ev.QCDecisionsChanged(tuple(ids)))
    after = _drawn_states(panel)
    manual_reject = int(ti.qc_code("MANUAL_REJECT"))
    assert after.get(manual_reject, 0) >= 6 and after != before
    assert panel.loads == loads and browser.reloads == 0
    panel.colour_by.setCurrentText("Split")
    panel._recolour()
    qtbot.waitUntil(lambda: panel.data.colour_by == "split", timeout=10_000)
    assert "train" in panel.legend.text()


def test_georeferenced_scene_lies_at_its_place(qtbot, tmp_path: Path, public_data: Path):
    from casdesk.core.dataset.scenes import add_scene
    from casdesk.core.dataset.tiling import CropParams, crop_scene
    from casdesk.core.jobs import run_job
    from casdesk.gui.map.panel import MapPanel, load_map
    from casdesk.gui.shell.context import ProjectContext

    with Catalog.create(tmp_path / "geo.casdesk") as cat:
        added = add_scene(cat, public_data / "RGB.byte.tif", labels=public_data / "box.shp", sensor="SAT")
        run_job(crop_scene(cat, added.scene_id, CropParams(256, 256, "shift")))
        scene = cat.scene(added.scene_id)
        n_tiles = cat.tile_count()
    data = load_map(tmp_path / "geo.casdesk", "qc")
    (block,) = data.layout.blocks
    a, _b, c, _d, e, f = scene.transform[:6]
    assert block.georeferenced and block.rows.size == n_tiles
    assert np.isclose(block.bounds[0], c) and np.isclose(block.bounds[1], -f)
    assert np.isclose(block.bounds[2], c + a * scene.width) and np.isclose(block.bounds[3], -(f + e * scene.height))
    assert data.label_rings >= 1 and not data.labels_path.isEmpty()

    context = ProjectContext()
    panel = MapPanel(context)
    qtbot.addWidget(panel)
    panel.resize(900, 700)
    panel.show()
    context.open(tmp_path / "geo.casdesk")
    qtbot.waitUntil(lambda: panel.data is not None, timeout=20_000)
    assert panel.view.scale_bar()[2] == "m"
    centre = panel.view.mapToScene(panel.view.viewport().rect().center())
    panel._on_moved(centre.x(), centre.y())
    assert f"y {-centre.y():.1f}" in panel.coords.text() and "UTM" in panel.coords.text()
    scale0 = panel.view.transform().m11()
    panel.view.zoom(1.25)
    assert np.isclose(panel.view.transform().m11(), scale0 * 1.25)
    panel.shutdown()
    context.close()
