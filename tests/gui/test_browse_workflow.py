"""The Browse workflow inside the main window: precise change events, the detail view's
rough edges (issue 19), splits seen by Train, equal tile names, tab-scoped shortcuts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from casdesk.core.project import events as ev
from casdesk.core.project.catalog import Catalog
from tests.support.tiles import UTM18_HALF_M, blob_mask, write_raster


def test_detail_view_keeps_the_window_size_and_the_tile_in_view(qtbot, window):
    browser = window.panels["Browse"]
    qtbot.waitExposed(window)
    for width, height in ((1280, 800), (1400, 900)):  # a laptop, and the default window
        window.resize(width, height)
        qtbot.waitUntil(lambda w=width: window.size().width() == w)
        before = window.size()
        row = browser.model.rowCount() - 1  # the last tile: scrolled out of view if the grid jumps
        index = browser.model.index(row)
        browser.grid.setCurrentIndex(index)
        browser.grid.scrollTo(index)
        with qtbot.waitSignal(browser.detail.loaded, timeout=10_000):
            browser.open_detail(index)
        assert browser.detail.isVisible()
        assert window.size() == before, f"the window grew from {before} to {window.size()}"
        qtbot.waitUntil(lambda i=index: browser.grid.viewport().rect().intersects(browser.grid.visualRect(i)))
        browser.close_detail()


def test_search_hiding_the_shown_tile_keeps_the_pane_and_clears_the_readout(qtbot, window):
    browser = window.panels["Browse"]
    browser.grid.setCurrentIndex(browser.model.index(3))
    shown = browser.model.tile_id(3)
    name = str(browser.index.names[browser.index.rows_of([shown])[0]])
    with qtbot.waitSignal(browser.detail.loaded, timeout=10_000):
        browser.open_detail(browser.model.index(3))
    browser.detail._on_mouse(browser.detail.viewbox.mapViewToScene(QPointF(5.5, 5.5)))
    assert "row 5" in browser.detail.cursor_label.text()
    other = next(str(n) for n in browser.index.names if str(n) != name and name not in str(n))
    browser.filters.search.setText(other)  # the debounce applies it
    qtbot.waitUntil(lambda: browser.model.view_rows_of_ids([shown]).size == 0, timeout=5_000)
    qtbot.waitUntil(lambda: not browser._detail_timer.isActive(), timeout=5_000)
    assert browser.detail.request.tile_id == shown, "the pane switched to a tile nobody chose"
    assert "hidden by the filter" in browser.detail.title.text()
    assert "row 5" not in browser.detail.cursor_label.text()


def test_no_map_coordinates_without_georeference(qtbot, tmp_path: Path):
    from casdesk.gui.browser.detail import DetailRequest, TileDetail

    plain = write_raster(tmp_path / "plain.tif", np.full((3, 32, 32), 90, np.uint8))
    geo = write_raster(tmp_path / "geo.tif", np.full((3, 64, 64), 90, np.uint8), UTM18_HALF_M)
    detail = TileDetail()
    qtbot.addWidget(detail)
    detail.resize(500, 500)
    detail.show()
    texts = {}
    for tid, path in ((1, plain), (2, geo)):
        with qtbot.waitSignal(detail.loaded, timeout=10_000):
            detail.show_tile(DetailRequest(tid, path.stem, path, None))
        detail._on_mouse(detail.viewbox.mapViewToScene(QPointF(3.5, 4.5)))
        texts[path.stem] = detail.cursor_label.text()
    detail.shutdown()
    assert "row 4, col 3" in texts["plain"] and "map x" not in texts["plain"]
    assert "map x" in texts["geo"]


def test_split_assigned_in_browse_appears_in_train(qtbot, window):
    browser = window.panels["Browse"]
    train = window.panels["Train"]
    seen: list[ev.ProjectChange] = []
    window.context.events.splits_changed.connect(seen.append)
    ids = browser.model.tile_ids(range(5))
    browser.assign_split("fresh", "train", ids)
    assert seen and seen[-1].names == ("fresh",) and seen[-1].tile_ids == tuple(sorted(ids))
    assert train.form.split.findData("fresh") >= 0
    assert browser.split_combo.currentText() == "fresh" and browser.reloads == 0


def test_mask_change_updates_rows_without_a_reload(qtbot, window, project_path: Path):
    browser = window.panels["Browse"]
    tid = browser.model.tile_id(0)
    row = int(browser.index.rows_of([tid])[0])
    old_modified = str(browser.index.modified[row])
    new_mask = write_raster(project_path.parent / "newmask.tif", blob_mask(5), UTM18_HALF_M)
    window.context.catalog.touch_tile(tid, mask_path=new_mask, label_pixels=123)
    window.context.events.announce(ev.MasksChanged((tid,)))
    assert browser.reloads == 0 and not browser.is_loading()
    assert browser.index.label_pixels[row] == 123
    assert str(browser.index.modified[row]) != old_modified
    assert Path(browser.index.mask_path[row]) == new_mask
    # many tiles at once are read in a worker, still without a reload
    many = browser.index.ids[:40].tolist()
    with Catalog.open(project_path) as cat:
        for t in many:
            cat.touch_tile(t, label_pixels=7)
    window.context.events.announce(ev.MasksChanged(tuple(many)))
    qtbot.waitUntil(lambda: bool((browser.index.label_pixels[:40] == 7).all()), timeout=10_000)
    assert browser.reloads == 0
    # the coarse signal still works (a reload) for panels that have not switched yet
    window.context.tiles_changed.emit()
    assert browser.reloads == 1


def test_events_carry_ids_and_decisions_reach_old_listeners(qtbot, window):
    browser = window.panels["Browse"]
    old: list[list[int]] = []
    new: list[ev.ProjectChange] = []
    window.context.decisions_changed.connect(old.append)
    window.context.events.changed.connect(new.append)
    browser.grid.setCurrentIndex(browser.model.index(4))
    browser.decide("reject")
    tid = browser.model.tile_id(4)
    assert new[-1] == ev.QCDecisionsChanged((tid,)) and old[-1] == [tid]
    with pytest.raises(TypeError):
        window.context.events.announce(object())  # type: ignore[arg-type]
    assert ev.id_tuple([3, 1, 3]) == (1, 3) and ev.id_tuple(None) == ()


def test_equal_names_in_two_subdatasets_are_told_apart(qtbot, tmp_path: Path):
    from casdesk.core.dataset import tile_table as ti
    from casdesk.gui.browser.model import TileListModel, name_collisions

    img = write_raster(tmp_path / "i.tif", np.zeros((3, 8, 8), np.uint8), UTM18_HALF_M)
    cat = Catalog.create(tmp_path / "dup.casdesk")
    rows = [{"name": n, "subdataset": s, "image_path": img, "width": 8, "height": 8}
            for n, s in (("a1", "Tiburon Peninsula 2021"), ("a1", "Tiburon Peninsula 2010"), ("b2", "Tiburon Peninsula 2010"))]
    cat.add_tiles(rows)
    index = ti.load_index(cat, with_qc=False)
    cat.close()
    assert name_collisions(index).tolist() == [True, True, False]
    model = TileListModel()
    model.set_view(index, np.arange(3))
    shown = [model.data(model.index(i)) for i in range(3)]
    assert len(set(shown)) == 3 and shown[2] == "b2"
    assert "Tiburon Peninsula 2021 / a1" in shown
    assert model.data(model.index(0), Qt.ItemDataRole.ToolTipRole).startswith(shown[0])


def test_ctrl_n_is_new_project_outside_the_editor_and_polygon_inside(qtbot, window, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(window, "new_project_dialog", lambda: calls.append("new"))
    new_action = next(a for a in window.menuBar().actions()[0].menu().actions() if "New project" in a.text())
    new_action.triggered.disconnect()
    new_action.triggered.connect(window.new_project_dialog)
    editor = window.panels["Label"]
    window.tabs.setCurrentWidget(editor)
    assert new_action.shortcut().isEmpty()
    editor.canvas.set_mode("edit")
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    editor.shape_list.setFocus()  # not the canvas: the key belongs to the whole tab
    qtbot.keyClick(editor.shape_list, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert calls == [] and editor.canvas.mode == "polygon"
    window.tabs.setCurrentWidget(window.panels["Browse"])
    assert new_action.shortcut().toString() == "Ctrl+N"


def _quick_form(window) -> None:
    form = window.panels["Train"].form
    form.model.setCurrentIndex(form.model.findData("smp:Unet"))
    form.encoder.setText("resnet18")
    form.weights.setCurrentText("none")  # nothing is downloaded
    form.batch_size.setValue(4)
    form.augment.setChecked(False)


def test_train_on_selected_tiles_asks_train_for_a_short_run_on_a_new_split(qtbot, window, monkeypatch):
    from casdesk.core.dataset import tile_table as ti
    from casdesk.gui.browser import actions as actions_module
    from casdesk.gui.browser.quick_train import divide, sample

    browser, train = window.panels["Browse"], window.panels["Train"]
    _quick_form(window)
    queued: list[tuple] = []
    monkeypatch.setattr(train, "enqueue", lambda planned, config, existing_split=None: queued.append(
        (planned, config, existing_split)))
    window.tabs.setCurrentWidget(browser)
    ids = browser.model.tile_ids(range(10))
    request = browser.train_on_tiles(ids, epochs=1, val_fraction=0.3)
    assert request is not None and (request.train_tiles, request.val_tiles) == (7, 3)
    assert window.tabs.currentWidget() is train
    [(planned, config, split)] = queued
    assert split == request.split and config["epochs"] == 1 and config["qc_accepted_only"] is False
    assert config["model"] == "smp:Unet" and planned.name == config["name"] == request.run_name
    assert train.form.split.findData(request.split) >= 0  # the new split is offered in Train
    index = browser.index
    assert index.split_name == request.split and int((index.split_part > 0).sum()) == 10
    parts = ti.PART_NAMES
    assert sorted(parts[p] for p in index.split_part[index.split_part > 0]).count("val") == 3
    # too few tiles: one clear sentence, no split, no run
    errors: list[str] = []
    monkeypatch.setattr(actions_module, "show_error", lambda _w, _t, message, *a: errors.append(message))
    assert browser.train_on_tiles(ids[:2]) is None and "at least 4 tiles" in errors[0] and len(queued) == 1
    # the helpers: a seeded split with both parts, a sample of the asked size
    tr, va = divide(list(range(20)), 0.25, seed=3)
    assert len(va) == 5 and not set(tr) & set(va) and sorted(tr + va) == list(range(20))
    assert len(sample(list(range(100)), 12)) == 12 and sample([1, 2], 5) == [1, 2]


@pytest.mark.slow
def test_train_on_a_random_sample_runs_to_the_end(qtbot, window):
    from casdesk.core.evaluation.runs import list_runs
    from casdesk.gui.browser.quick_train import sample

    browser, train = window.panels["Browse"], window.panels["Train"]
    _quick_form(window)
    ids = sample(browser.model.tile_ids(range(browser.model.rowCount())), 12)
    request = browser.train_on_tiles(ids, epochs=1)
    qtbot.waitUntil(lambda: not train.busy and train.runner is None, timeout=300_000)
    runs = list_runs(window.context.catalog)
    assert runs and runs[-1].status == "finished" and request.split in runs[-1].name


def test_the_status_bar_shows_the_background_load(qtbot, tmp_path: Path, project_path: Path):
    from PySide6.QtCore import QSettings

    from casdesk.gui.shell.main_window import MainWindow

    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    seen: list[str] = []
    w.panels["Browse"]._index_call.finished.connect(lambda _i: seen.append(w.load_label.text()))
    assert w.open_project(project_path)
    assert w.load_bar.isVisible() and "Loading" in w.load_label.text()
    qtbot.waitUntil(lambda: not w.load_bar.isVisible(), timeout=20_000)
    assert seen and "Loading" in seen[0]  # still shown while the tile table arrived
    assert w.load_label.text() == "" and not w.loading_panels()
    w.close()
