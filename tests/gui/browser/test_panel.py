"""The Browse panel: counts against the catalog, filters, off-thread thumbnails, keyboard
decisions, bulk operations, cache invalidation and the detail view."""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import QPointF, Qt

from casdesk.core.qc import rules as qc
from casdesk.core.raster import thumbnails as th
from casdesk.gui.browser import loader as loader_module
from tests.support.tiles import UTM18_HALF_M, blob_mask, write_raster


def latest_decision(cat, tile_id: int) -> str | None:
    row = cat.execute(
        "SELECT decision FROM qc_decisions WHERE tile_id = ? ORDER BY id DESC LIMIT 1", (tile_id,)
    ).fetchone()
    return None if row is None else row[0]


def test_counts_match_catalog(browser, browser_project):
    cat = browser_project.catalog
    assert browser.model.rowCount() == cat.tile_count() == 240
    assert "240</b> shown of 240" in browser.count_label.text()
    browser.filters.search.setText("_x")
    qtbot_wait(browser)
    expected = cat.execute("SELECT COUNT(*) FROM tiles WHERE name LIKE '%\\_x' ESCAPE '\\'").fetchone()[0]
    assert browser.model.rowCount() == expected
    assert f"{expected}</b> shown of 240" in browser.count_label.text()


def qtbot_wait(panel) -> None:
    """Filter changes are applied by the panel's own debounce timer on a later event-loop
    turn: wait for that timer to fire (the test never calls ``apply_filter`` itself, so a
    broken debounce fails here)."""
    from pytestqt.qtbot import QtBot

    assert panel._apply_timer.isActive(), "a filter change did not schedule the debounced apply"
    QtBot(panel).waitUntil(lambda: not panel._apply_timer.isActive(), timeout=5_000)


def test_filters_combine(browser, browser_project):
    cat = browser_project.catalog
    f = browser.filters
    for i in range(f.subdatasets.count()):
        item = f.subdatasets.item(i)
        item.setCheckState(Qt.CheckState.Checked if item.text() == "alpha UAV" else Qt.CheckState.Unchecked)
    f.has_label.setCurrentIndex(1)
    f.parts["test"].setChecked(False)
    f.parts[""].setChecked(False)
    qtbot_wait(browser)
    expected = cat.execute(
        "SELECT COUNT(*) FROM tiles t JOIN subdatasets d ON d.id = t.subdataset_id"
        " JOIN split_tiles st ON st.tile_id = t.id AND st.split_id = 1"
        " WHERE d.name = 'alpha UAV' AND t.label_pixels > 0 AND st.part IN ('train', 'val')"
    ).fetchone()[0]
    assert 0 < browser.model.rowCount() == expected
    f.states["PENDING"].setChecked(False)
    qtbot_wait(browser)
    pending = cat.execute(
        "SELECT COUNT(*) FROM tiles t JOIN subdatasets d ON d.id = t.subdataset_id"
        " JOIN split_tiles st ON st.tile_id = t.id AND st.split_id = 1"
        " WHERE d.name = 'alpha UAV' AND t.label_pixels > 0 AND st.part IN ('train', 'val')"
        " AND t.id NOT IN (SELECT tile_id FROM qc_metrics)"
    ).fetchone()[0]
    assert pending > 0 and browser.model.rowCount() == expected - pending
    assert (browser.index.qc_state[browser.model.rows] != qc.PENDING).all()
    f.reset()
    qtbot_wait(browser)
    assert browser.model.rowCount() == 240


def test_sort_by_metric(browser):
    browser.sort_key.setCurrentText("seam_score")
    browser.sort_desc.setChecked(True)
    qtbot_wait(browser)
    values = browser.index.metrics["seam_score"][browser.model.rows]
    finite = values[~np.isnan(values)]
    assert finite[0] == np.nanmax(values) and (np.diff(finite) <= 0).all()


def test_thumbnails_decode_off_the_gui_thread(qtbot, browser, monkeypatch):
    threads: set[int] = set()
    real = th.decode_thumbnail

    def spy(*args):
        threads.add(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(th, "decode_thumbnail", spy)
    real_load = loader_module.load_images

    def spy_load(*args):
        threads.add(threading.get_ident())
        return real_load(*args)

    monkeypatch.setattr(loader_module, "load_images", spy_load)
    browser.loader.reset()
    browser.grid.viewport().update()
    first = int(browser.model.rows[0])
    key = (int(browser.index.ids[first]), 128, str(browser.index.modified[first]))
    # the visible cells are decoded in batches, the first tile's not necessarily last
    qtbot.waitUntil(lambda: browser.loader.cached(key) is not None and browser.loader.decoded >= 10, timeout=10_000)
    assert threads and threading.main_thread().ident not in threads
    images = browser.loader.cached(key)
    assert images.rgb is not None and images.rgb.width() == 64
    assert browser.loader.memory_bytes > 0


def test_accept_reject_keys_record_decisions(qtbot, browser, browser_project):
    cat = browser_project.catalog
    grid = browser.grid
    grid.setFocus()
    grid.setCurrentIndex(browser.model.index(4))
    tid = browser.model.tile_id(4)
    with qtbot.waitSignal(browser.context.decisions_changed) as signal:
        qtbot.keyClick(grid, Qt.Key.Key_A)
    assert signal.args == [[tid]]
    assert latest_decision(cat, tid) == "accept"
    row = browser.index.rows_of([tid])[0]
    assert browser.index.qc_state[row] == qc.MANUAL_ACCEPT
    assert browser.model.tile_id(grid.currentIndex().row()) == browser.model.tile_id(5)  # moved on
    tid5 = browser.model.tile_id(5)
    qtbot.keyClick(grid, Qt.Key.Key_R)
    assert latest_decision(cat, tid5) == "reject"
    assert browser.index.qc_state[browser.index.rows_of([tid5])[0]] == qc.MANUAL_REJECT
    states, _ = qc.evaluate(qc.load_table(cat), qc.current_rules(cat))  # the QC panel's view
    assert states[qc.load_table(cat).rows([tid, tid5])].tolist() == [qc.MANUAL_ACCEPT, qc.MANUAL_REJECT]


def test_review_queue_moves_on(qtbot, browser):
    """Filtered on pending tiles, accepting one removes it and selects the next."""
    for name, box in browser.filters.states.items():
        box.setChecked(name == "PENDING")
    qtbot_wait(browser)
    n = browser.model.rowCount()
    assert n == 24
    browser.grid.setCurrentIndex(browser.model.index(0))
    second = browser.model.tile_id(1)
    qtbot.keyClick(browser.grid, Qt.Key.Key_A)
    assert browser.model.rowCount() == n - 1
    assert browser.model.tile_id(browser.grid.currentIndex().row()) == second


def test_bulk_select_all_reject_and_assign_split(qtbot, browser, browser_project):
    cat = browser_project.catalog
    browser.filters.search.setText("_x")
    qtbot_wait(browser)
    n = browser.model.rowCount()
    browser.grid.setFocus()
    browser.grid.setCurrentIndex(browser.model.index(0))
    qtbot.keyClick(browser.grid, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert len(browser.selected_ids()) == n
    qtbot.keyClick(browser.grid, Qt.Key.Key_R)
    ids = browser.selected_ids()
    assert len(ids) == n  # a bulk decision keeps the selection
    assert {latest_decision(cat, t) for t in ids} == {"reject"}
    browser.assign_split("reviewed", "test")
    parts = cat.query(
        "SELECT st.part FROM split_tiles st JOIN splits s ON s.id = st.split_id WHERE s.name = 'reviewed'"
    )
    assert len(parts) == n and {p[0] for p in parts} == {"test"}
    assert cat.execute("SELECT kind FROM splits WHERE name = 'reviewed'").fetchone()[0] == "manual"
    assert browser.split_combo.currentText() == "reviewed"
    assert (browser.index.split_part > 0).sum() == n


def test_space_toggles_overlay(qtbot, browser):
    assert browser.delegate.overlay.visible
    browser.grid.setFocus()
    qtbot.keyClick(browser.grid, Qt.Key.Key_Space)
    assert not browser.overlay.isChecked() and not browser.delegate.overlay.visible
    browser.size_slider.setValue(300)
    assert browser.delegate.thumb_px == 304 and browser.grid.gridSize().width() == 304 + 8


def test_thumbnail_follows_touched_tile(qtbot, browser, browser_project):
    cat = browser_project.catalog
    row0 = int(browser.model.rows[0])
    tid = int(browser.index.ids[row0])
    key = (tid, 128, str(browser.index.modified[row0]))
    qtbot.waitUntil(lambda: browser.loader.cached(key) is not None, timeout=10_000)
    before = browser.loader.cached(key)
    assert before.fill is None  # tile 0 uses the empty mask
    new_mask = write_raster(browser_project.folder / "tiles" / "new_mask.tif", blob_mask(5), UTM18_HALF_M)
    cat.touch_tile(tid, mask_path=new_mask, label_pixels=int(blob_mask(5).sum()))
    browser.context.tiles_changed.emit()
    qtbot.waitUntil(lambda: str(browser.index.mask_path[row0]).endswith("new_mask.tif"), timeout=10_000)

    def refreshed():
        images = browser.loader.cached((tid, 128, str(browser.index.modified[row0])))
        return images is not None and images.fill is not None

    browser.grid.viewport().update()
    qtbot.waitUntil(refreshed, timeout=10_000)


def test_detail_view_opens_with_enter(qtbot, browser, browser_project):
    cat = browser_project.catalog
    tid = browser.model.tile_id(2)
    pred = write_raster(browser_project.folder / "pred.tif", blob_mask(3), UTM18_HALF_M)
    with cat.transaction() as db:
        db.execute(
            "INSERT INTO predictions(tile_id, model, mask_path, iou, created) VALUES (?, 'unet', ?, 0.5, 'now')",
            (tid, str(pred)),
        )
    browser.grid.setFocus()
    browser.grid.setCurrentIndex(browser.model.index(2))
    with qtbot.waitSignal(browser.detail.loaded, timeout=10_000):
        qtbot.keyClick(browser.grid, Qt.Key.Key_Return)
    assert browser.detail.isVisible()
    data = browser.detail.data
    assert data.request.tile_id == tid and data.rgb.shape == (64, 64, 3)
    assert data.confusion is not None and browser.detail.confusion_item.isVisible()
    assert browser.detail.prediction.currentData() == "unet"
    center = browser.detail.viewbox.mapViewToScene(QPointF(10.5, 20.5))
    browser.detail._on_mouse(center)
    assert "row 20, col 10" in browser.detail.cursor_label.text() and "map x" in browser.detail.cursor_label.text()
    browser.detail.stretch.setCurrentText("percentile")
    with qtbot.waitSignal(browser.detail.loaded, timeout=10_000):
        browser.detail._restretch()
    assert browser.detail.data.stretch == "percentile"
    with qtbot.waitSignal(browser.detail.loaded, timeout=10_000):
        qtbot.keyClick(browser.grid, Qt.Key.Key_Right)  # the detail follows the current tile
    assert browser.detail.data.request.tile_id == browser.model.tile_id(3)
    browser.close_detail()
    assert not browser.detail.isVisible()


def test_project_close_empties_the_grid(qtbot, browser):
    browser.context.close()
    assert browser.model.rowCount() == 0 and browser.count_label.text() == "No project"


def test_decision_while_qc_columns_load(qtbot, browser_project, monkeypatch):
    """The grid shows before the QC columns; a decision made meanwhile survives their arrival."""
    from casdesk.gui.browser import panel as panel_module
    from casdesk.gui.browser.panel import BrowserPanel
    from casdesk.gui.shell.context import ProjectContext

    release = threading.Event()
    real = panel_module.load_qc_for

    def slow(*args):
        release.wait(10)
        return real(*args)

    monkeypatch.setattr(panel_module, "load_qc_for", slow)
    context = ProjectContext()
    panel = BrowserPanel(context)
    qtbot.addWidget(panel)
    panel.show()
    try:
        context.open(browser_project.catalog.path)
        qtbot.waitUntil(lambda: panel.index is not None, timeout=10_000)
        assert not panel.qc_loaded and panel.model.rowCount() == 240
        panel.grid.setCurrentIndex(panel.model.index(0))
        tid = panel.model.tile_id(0)
        panel.decide("accept")
        release.set()
        qtbot.waitUntil(lambda: panel.qc_loaded, timeout=10_000)
        assert panel.index.qc_state[panel.index.rows_of([tid])[0]] == qc.MANUAL_ACCEPT
        assert not np.isnan(panel.index.metrics["fill_fraction"]).all()
    finally:
        release.set()
        panel.shutdown()
        context.close()
