"""The first screen of a large project: the tile table shows before its split parts and QC
columns (read once the thumbnails are in), another split's parts are read in a worker, and
the thumbnails of the last first screen are read from the disk cache while the table loads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from casdesk.core.raster import thumbnails as th
from casdesk.gui.browser import loader as loader_module
from casdesk.gui.browser.loader import ThumbnailLoader, ThumbRequest


def _open_panel(qtbot, path):
    from casdesk.gui.browser.panel import BrowserPanel
    from casdesk.gui.shell.context import ProjectContext

    context = ProjectContext()
    panel = BrowserPanel(context)
    qtbot.addWidget(panel)
    panel.resize(1000, 700)
    panel.show()
    context.open(path)
    return context, panel


def _hold(monkeypatch, name: str, started: threading.Event | None = None) -> threading.Event:
    """Make the browser panel's loader ``name`` wait (in its worker) until the returned event
    is set; ``started`` is set when it is called."""
    from casdesk.gui.browser import panel as panel_module

    release = threading.Event()
    real = getattr(panel_module, name)

    def held(*args):
        if started is not None:
            started.set()
        release.wait(10)
        return real(*args)

    monkeypatch.setattr(panel_module, name, held)
    return release


def _close(context, panel) -> None:
    panel.shutdown()
    context.close()


def test_split_parts_follow_the_table(qtbot, browser_project, monkeypatch):
    """The grid shows while the split parts are still being read; they arrive with the QC
    columns (index rows in split "s1": every fourth tile has no part)."""

    release = _hold(monkeypatch, "load_qc_for")
    context, panel = _open_panel(qtbot, browser_project.catalog.path)
    try:
        qtbot.waitUntil(lambda: panel.index is not None and panel.model.rowCount() == 240, timeout=10_000)
        assert panel.index.split_name == "s1" and panel.split_combo.currentText() == "s1"
        assert not panel.index.split_part.any()  # not read yet
        release.set()
        qtbot.waitUntil(lambda: panel.qc_loaded, timeout=10_000)
        expected = np.array([0 if j % 4 == 0 else 1 + j % 3 for j in range(240)], np.int8)
        assert np.array_equal(panel.index.split_part, expected)
    finally:
        release.set()
        _close(context, panel)


def test_split_change_on_a_large_project_is_read_in_a_worker(qtbot, browser, browser_project, monkeypatch):
    from casdesk.gui.browser import panel as panel_module

    monkeypatch.setattr(panel_module, "SPLIT_ON_GUI_THREAD", 10)  # 240 tiles count as large
    gui = threading.get_ident()
    threads: list[int] = []
    real = panel_module.load_split_for

    def spy(*args):
        threads.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(panel_module, "load_split_for", spy)
    ids = browser.model.tile_ids(range(6))
    browser.assign_split("fresh", "val", ids)
    assert browser.split_combo.currentText() == "fresh"  # named at once
    qtbot.waitUntil(lambda: browser.index.split_name == "fresh", timeout=10_000)
    assert threads and gui not in threads
    assert int((browser.index.split_part > 0).sum()) == 6
    qtbot.waitUntil(lambda: not browser.is_loading(), timeout=10_000)  # thumbnails of a busy machine
    # an older request that arrives late is ignored
    browser.split_combo.setCurrentText(panel_module.NO_SPLIT)
    browser._on_split_chosen(0)
    qtbot.waitUntil(lambda: browser.index.split_name is None, timeout=10_000)
    browser._on_split_parts((browser._split_serial - 1, browser.index.ids, "fresh", np.ones(240, np.int8)))
    assert browser.index.split_name is None and not browser.index.split_part.any()


def test_prefetch_reads_the_disk_cache_only(qtbot, tmp_path):
    rgb = np.full((3, 32, 32), 90, np.uint8)
    from tests.support.tiles import UTM18_HALF_M, write_raster

    image = write_raster(tmp_path / "a.tif", rgb, UTM18_HALF_M)
    cache = th.ThumbnailCache(tmp_path / "thumbs")
    cache.load(1, "m1", 64, image, None)  # tile 1 is in the disk cache, tile 2 is not
    loader = ThumbnailLoader()
    loader.set_disk_cache(cache)
    try:
        loader.prefetch([ThumbRequest(1, "m1", 64, image, None), ThumbRequest(2, "m1", 64, image, None)])
        qtbot.waitUntil(lambda: loader.cached((1, 64, "m1")) is not None and loader.pending() == 0, timeout=10_000)
        assert loader.cached((2, 64, "m1")) is None  # never decoded by a prefetch
        assert not list((tmp_path / "thumbs").rglob("2-*.thumb"))
        # a cell that asks for tile 2 gets it decoded
        assert loader.get(ThumbRequest(2, "m1", 64, image, None)) is None
        qtbot.waitUntil(lambda: loader.cached((2, 64, "m1")) is not None, timeout=10_000)
    finally:
        assert loader.shutdown()


def test_workers_start_after_the_paint_that_asked_for_them(qtbot, tmp_path):
    """A cell's paint asks for its thumbnail: the worker starts once the GUI thread has
    finished that event (started at once, it decoded beside the rest of the window's paint
    and made it wait for the GIL: a map double-click into Browse stalled 59-66 ms, now
    36-42). A loader shut down before its workers started leaves none counted."""
    from tests.support.tiles import UTM18_HALF_M, write_raster

    image = write_raster(tmp_path / "a.tif", np.full((3, 32, 32), 90, np.uint8), UTM18_HALF_M)
    loader = ThumbnailLoader(threads=2)
    try:
        for tile in (1, 2, 3):
            assert loader.get(ThumbRequest(tile, "m", 64, image, None)) is None
        assert loader._pool.activeThreadCount() == 0 and loader._queue.workers == 2  # counted, not started
        qtbot.waitUntil(lambda: all(loader.cached((t, 64, "m")) is not None for t in (1, 2, 3)), timeout=10_000)
        assert loader.shutdown()
        loader.restart()
        assert loader.get(ThumbRequest(4, "m", 64, image, None)) is None
        assert loader._queue.workers == 1
        assert loader.shutdown()  # before the worker started: nothing left counted
        assert loader._queue.workers == 0 and loader._to_start == 0
        loader.restart()
        assert loader.get(ThumbRequest(4, "m", 64, image, None)) is None
        qtbot.waitUntil(lambda: loader.cached((4, 64, "m")) is not None, timeout=10_000)
    finally:
        assert loader.shutdown()


def test_a_latest_call_starts_after_the_event_that_submitted_it(qtbot):
    """A click submits a load (a detail view, a table) and is followed by its repaint: the
    worker starts after that event, so that it does not compete with the repaint (with the
    thumbnails' workers deferred too, the map's double-click into Browse stalls 17-23 ms,
    59-66 before). Busy from the submit on; a cancelled call that has not started never runs."""
    ran: list[str] = []
    call = loader_module.LatestCall()
    results: list[object] = []
    call.finished.connect(results.append)
    try:
        call.submit(lambda: ran.append("a") or "a")
        assert call.is_busy() and call._pool.activeThreadCount() == 0 and ran == []
        qtbot.waitUntil(lambda: results == ["a"], timeout=5_000)
        call.submit(lambda: ran.append("b") or "b")
        call.cancel()
        assert not call.is_busy()
        call.submit(lambda: ran.append("c") or "c")
        qtbot.waitUntil(lambda: results == ["a", "c"], timeout=5_000)
        assert ran == ["a", "c"]
    finally:
        assert call.shutdown()


def test_a_request_upgrades_a_queued_prefetch():
    queue = loader_module._Queue()
    pre = ThumbRequest(5, "m", 64, loader_module.Path("x.tif"), None, prefetch=True)
    assert queue.push(pre, 0) is False  # no worker started (max 0), queued
    real = ThumbRequest(5, "m", 64, loader_module.Path("x.tif"), None)
    assert queue.push(real, 0) is False
    item = queue.pop()
    assert item is not None and item[0].prefetch is False  # decoded if the disk cache lacks it


def test_the_next_open_reads_the_last_first_screen_before_the_table(qtbot, browser_project, monkeypatch):
    from casdesk.gui.browser import panel as panel_module

    context, panel = _open_panel(qtbot, browser_project.catalog.path)
    try:
        qtbot.waitUntil(lambda: panel.qc_loaded, timeout=10_000)
        shown = panel._rows_in_view()
        first = (int(panel.index.ids[shown[0]]), th.size_bucket(panel.delegate.thumb_px), str(panel.index.modified[shown[0]]))
        cache = panel.loader.disk_cache
        saved = cache.folder / loader_module.FIRST_SCREEN_FILE
        qtbot.waitUntil(saved.exists, timeout=10_000)
        requests = loader_module.load_first_screen(cache, browser_project.catalog.root)
        assert [r.tile_id for r in requests] == panel.index.ids[shown].tolist()
    finally:
        _close(context, panel)

    release = _hold(monkeypatch, "load_index_for")
    monkeypatch.setattr(panel_module, "load_snapshot", lambda *a: None)  # the table read from the catalog
    context, panel = _open_panel(qtbot, browser_project.catalog.path)
    try:
        # the first tile's thumbnail is in memory while the tile table is still being read
        qtbot.waitUntil(lambda: panel.loader.cached(first) is not None, timeout=10_000)
        assert panel.index is None
        release.set()
        qtbot.waitUntil(lambda: panel.qc_loaded, timeout=10_000)
    finally:
        release.set()
        _close(context, panel)


def test_thumbnails_come_in_the_painters_formats():
    """RGB888 / RGBA8888 were converted at every paint (~35 us a cell)."""
    from PySide6.QtGui import QImage

    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[..., 0] = 200
    mask = np.zeros((16, 24), np.uint8)
    mask[4:10, 4:12] = 1
    images = loader_module.to_images(th.Thumbnail(rgb, mask))
    assert images.rgb.format() == QImage.Format.Format_RGB32
    assert images.fill.format() == images.outline.format() == QImage.Format.Format_ARGB32_Premultiplied
    assert images.rgb.pixelColor(0, 0).red() == 200 and images.fill.pixelColor(5, 5).alpha() == 255
    assert images.fill.pixelColor(0, 0).alpha() == 0


def test_elided_names_follow_the_cell_width(qtbot, browser):
    from PySide6.QtGui import QFontMetrics

    fm = QFontMetrics(browser.grid.font())
    r = int(browser.model.rows[0])
    wide = browser.delegate._elided_name(browser.index, r, fm)
    browser.set_thumb_px(96)
    narrow = browser.delegate._elided_name(browser.index, r, fm)
    assert wide == browser.model.display_name(r)
    assert fm.horizontalAdvance(narrow) <= 96
    long_index = __import__("copy").copy(browser.index)  # another tile table: names read again
    long_index.names = browser.index.names.astype(object)
    long_index.names[r] = "a_very_long_tile_name_that_cannot_fit_under_a_thumbnail"
    browser.model.set_view(long_index, browser.model.rows)
    assert browser.delegate._elided_name(long_index, r, fm) != narrow


def test_metric_sliders_are_built_with_the_panel_not_while_a_project_opens(qtbot):
    """Building a range slider took 5-30 ms of the GUI thread (and a relayout of the window)
    while the tile table arrived; they are built once, hidden, and only shown then."""
    import copy

    from casdesk.core.dataset.tile_filter import synthetic_index
    from casdesk.gui.browser.filters import RANGE_METRICS, FilterPanel

    panel = FilterPanel()
    qtbot.addWidget(panel)
    panel.show()
    built = dict(panel._sliders)
    assert set(built) == set(RANGE_METRICS) and not panel.ranges and not panel.ranges_box.isVisible()
    index = synthetic_index(500)
    panel.set_index(index)
    assert set(panel.ranges) == set(RANGE_METRICS) and all(panel.ranges[k] is built[k] for k in panel.ranges)
    assert panel.ranges_box.isVisible() and panel.ranges_ready()
    seam = panel.ranges["seam_score"]
    lo, hi = seam.value()
    seam.setValue((lo + 5, hi))  # the user narrows a range: it survives a reload
    assert "seam_score" in panel.current_filter().ranges
    panel.set_index(index)
    assert seam.value()[0] == pytest.approx(lo + 5)
    fewer = copy.copy(index)
    fewer.metrics = {k: v for k, v in index.metrics.items() if k != "seam_score"}
    panel.set_index(fewer)
    assert "seam_score" not in panel.ranges and not seam.parentWidget().isVisible()
    assert "seam_score" not in panel.current_filter().ranges
    panel.set_index(index)  # shown again: the full range
    assert seam.value() == pytest.approx((lo, hi)) and panel._sliders["seam_score"] is seam


def test_the_next_open_starts_from_the_snapshot_and_corrects_it(qtbot, browser_project, monkeypatch):
    """The grid shows the last tile table at once; the catalog is read after the first
    screen, and a table that changed meanwhile replaces the snapshot's."""
    from casdesk.gui.browser import snapshot as snapshot_module

    context, panel = _open_panel(qtbot, browser_project.catalog.path)
    try:
        qtbot.waitUntil(lambda: panel.qc_loaded, timeout=10_000)
        folder = panel.loader.disk_cache.folder
        assert snapshot_module.snapshot_path(folder).exists()  # saved by the worker that read it
        saved = snapshot_module.load_snapshot(folder, browser_project.catalog.root)
        assert saved is not None and snapshot_module.same_table(saved, panel.index)
    finally:
        _close(context, panel)
    # the catalog changes while the app is closed: a tile renamed
    cat = browser_project.catalog
    renamed = browser_project.ids[0]
    with cat.transaction() as db:
        db.execute("UPDATE tiles SET name = 'zz_renamed' WHERE id = ?", (renamed,))

    release = _hold(monkeypatch, "load_index_for")
    context, panel = _open_panel(qtbot, browser_project.catalog.path)
    try:
        # shown from the snapshot while the catalog is still being read
        qtbot.waitUntil(lambda: panel.index is not None and panel.model.rowCount() == 240, timeout=10_000)
        row = int(panel.index.rows_of([renamed])[0])
        assert panel.index.names[row] != "zz_renamed" and not panel.qc_loaded
        release.set()
        qtbot.waitUntil(lambda: panel.qc_loaded, timeout=10_000)
        row = int(panel.index.rows_of([renamed])[0])
        assert panel.index.names[row] == "zz_renamed"  # corrected from the catalog
        assert panel.model.tile_id(panel.model.rowCount() - 1) == renamed  # sorted by name: last
        again = snapshot_module.load_snapshot(panel.loader.disk_cache.folder, cat.root)
        assert again is not None and "zz_renamed" in again.names.tolist()  # the snapshot too
    finally:
        release.set()
        _close(context, panel)


def test_a_mask_edit_forgets_the_snapshot(qtbot, browser, browser_project):
    from casdesk.gui.browser import snapshot as snapshot_module

    path = snapshot_module.snapshot_path(browser.loader.disk_cache.folder)
    qtbot.waitUntil(path.exists, timeout=10_000)
    browser.refresh_tiles([browser_project.ids[3]])
    assert not path.exists()


def test_a_damaged_or_foreign_snapshot_is_refused(tmp_path):
    from casdesk.core.dataset.tile_filter import synthetic_index
    from casdesk.gui.browser import snapshot as snapshot_module

    index = synthetic_index(50)
    index.mask_path = np.array([None if i % 2 else f"m/{i}.tif" for i in range(50)], dtype=object)
    snapshot_module.save_snapshot(tmp_path, index)
    back = snapshot_module.load_snapshot(tmp_path, index.root)
    assert back is not None and snapshot_module.same_table(back, index)
    assert back.mask_path[1] is None and back.mask_path[0] == "m/0.tif"
    other = snapshot_module.load_snapshot(tmp_path, index.root)
    other.modified = other.modified.copy()
    other.modified[7] = "later"
    assert not snapshot_module.same_table(other, index)
    snapshot_module.snapshot_path(tmp_path).write_bytes(b"not a snapshot")
    assert snapshot_module.load_snapshot(tmp_path, index.root) is None
    assert snapshot_module.load_snapshot(tmp_path / "missing", index.root) is None


def test_new_qc_columns_while_the_snapshot_is_checked_still_check_it(qtbot, browser_project, monkeypatch):
    """QC metrics changed right after the open: the QC reload replaces the late job, and
    still reads the tile table the snapshot stands in for."""

    context, panel = _open_panel(qtbot, browser_project.catalog.path)
    try:
        qtbot.waitUntil(lambda: panel.qc_loaded, timeout=10_000)
    finally:
        _close(context, panel)
    cat = browser_project.catalog
    renamed = browser_project.ids[5]
    with cat.transaction() as db:
        db.execute("UPDATE tiles SET name = 'zz_late' WHERE id = ?", (renamed,))
    started = threading.Event()
    release = _hold(monkeypatch, "load_index_for", started)
    context, panel = _open_panel(qtbot, browser_project.catalog.path)
    try:
        qtbot.waitUntil(started.is_set, timeout=10_000)  # the late job checks the snapshot
        panel.reload_qc()  # e.g. new QC metrics announced
        release.set()
        qtbot.waitUntil(lambda: panel.qc_loaded and not panel.is_loading(), timeout=10_000)
        assert panel.index.names[int(panel.index.rows_of([renamed])[0])] == "zz_late"
    finally:
        release.set()
        _close(context, panel)


def test_cells_are_asked_for_flags_in_cpp_and_never_edited(qtbot, browser):
    """One call into Python per painted cell (its paint), not two: flags() is C++'s."""
    from PySide6.QtCore import QStringListModel, Qt
    from PySide6.QtWidgets import QAbstractItemView

    from casdesk.gui.browser.model import TileListModel

    assert TileListModel.flags is QStringListModel.flags
    grid = browser.grid
    grid.setCurrentIndex(browser.model.index(0))
    qtbot.keyClick(grid, Qt.Key.Key_F2)
    assert grid.state() != QAbstractItemView.State.EditingState
    assert not grid.edit(browser.model.index(0), QAbstractItemView.EditTrigger.EditKeyPressed, None)
    assert grid.state() != QAbstractItemView.State.EditingState


def test_thumbnails_reach_the_gui_thread_in_batches(qtbot, tmp_path, monkeypatch):
    """Each delivery is a call into the GUI thread's Python (a wait for the GIL while the
    workers decode): one per batch, not one per thumbnail."""
    from tests.support.tiles import UTM18_HALF_M, write_raster

    monkeypatch.setattr(loader_module, "BATCH_MAX", 8)
    monkeypatch.setattr(loader_module, "BATCH_S", 10.0)
    image = write_raster(tmp_path / "a.tif", np.full((3, 32, 32), 90, np.uint8), UTM18_HALF_M)
    loader = ThumbnailLoader(threads=1)
    deliveries: list[int] = []
    loader._bridge.done.connect(lambda batch: deliveries.append(len(batch)))
    try:
        keys = []
        for tid in range(1, 21):
            request = ThumbRequest(tid, "m", 64, image, None)
            keys.append(request.key)
            assert loader.get(request) is None
        qtbot.waitUntil(lambda: all(loader.cached(k) is not None for k in keys), timeout=20_000)
        assert sum(deliveries) == 20 and len(deliveries) < 20 and max(deliveries) <= 8
    finally:
        assert loader.shutdown()


def test_showing_the_filters_again_does_not_measure_the_slider_labels_again(qtbot, monkeypatch):
    """superqt measured each range slider's edge labels at every show (about 2 ms each, 17 ms
    of a 42 ms stall when the map opened a tile in Browse); they are measured again only
    when what their size depends on changed."""
    from superqt.sliders._labeled import SliderLabel

    from casdesk.core.dataset.tile_filter import synthetic_index
    from casdesk.gui.browser.filters import FilterPanel

    measured: list[object] = []
    original = SliderLabel._get_size
    monkeypatch.setattr(SliderLabel, "_get_size", lambda self: measured.append(self) or original(self))
    panel = FilterPanel()
    qtbot.addWidget(panel)
    panel.set_index(synthetic_index(500))
    panel.show()
    qtbot.waitUntil(panel.ranges_box.isVisible)
    seam = panel.ranges["seam_score"]
    labels = (seam._min_label, seam._max_label)
    sizes = [label.size() for label in labels]
    measured.clear()
    for _ in range(3):  # a tab switch hides and shows the panel
        panel.hide()
        panel.show()
        qtbot.waitUntil(panel.isVisible)
    assert measured == []
    assert [label.size() for label in labels] == sizes
    seam.setDecimals(4)  # what the width depends on changes: measured again
    panel.hide()
    panel.show()
    assert any(m is labels[0] for m in measured)
