"""The window opens a project without blocking the GUI thread (issue: no stall over 50 ms
at 20k tiles): the database is opened and checked in a thread, the Project tab reads its
summary in a worker, hidden Train/Predict tabs do not count split tiles or list runs at
open, and the grid's row count never calls into Python."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QStringListModel

from casdesk.core.project import lock as project_lock
from casdesk.core.project.catalog import Catalog
from casdesk.core.project.stores.splits import SplitsStore
from casdesk.gui.shell import context as context_module


@pytest.fixture()
def bare_window(qtbot, tmp_path: Path):
    from PySide6.QtCore import QSettings

    from casdesk.gui.shell.main_window import MainWindow

    w = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    yield w
    for panel in w.panels.values():
        shutdown = getattr(panel, "shutdown", None)
        if shutdown is not None:
            shutdown()
    w.close()


def _spy_catalog_open(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    threads: list[int] = []
    real = Catalog.open

    def spy(cls: type, path: Path, readonly: bool = False) -> Catalog:
        threads.append(threading.get_ident())
        return real(path, readonly=readonly)

    monkeypatch.setattr(context_module.Catalog, "open", classmethod(spy))
    return threads


def test_the_window_opens_a_project_in_a_thread(qtbot, bare_window, project_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    threads = _spy_catalog_open(monkeypatch)
    window = bare_window
    assert window.start_open_project(project_path)
    assert window.context.is_opening() and window.context.catalog is None  # returned before the checks
    assert window.load_bar.isVisibleTo(window) and window.load_label.text().startswith("Opening")
    qtbot.waitUntil(lambda: window.context.catalog is not None, timeout=10_000)
    assert threads[0] != threading.get_ident()  # opened and checked off the GUI thread
    assert not window.context.is_opening() and not window.context.readonly
    assert project_lock.lock_path(project_path).exists()  # the lock is the window's
    browser = window.panels["Browse"]
    window.tabs.setCurrentWidget(browser)
    qtbot.waitUntil(lambda: browser.index is not None and browser.qc_loaded, timeout=10_000)
    assert browser.model.rowCount() == 60
    assert window.windowTitle() == "browse - casdesk"


def test_a_damaged_project_is_reported_and_its_lock_given_back(qtbot, bare_window, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[str] = []
    monkeypatch.setattr("casdesk.gui.shell.main_window.show_error", lambda _w, title, text, *a: shown.append(text))
    bad = tmp_path / "x.casdesk"
    bad.write_text("hello")
    assert bare_window.start_open_project(bad)  # the lock is free: the check follows in the thread
    qtbot.waitUntil(lambda: bool(shown), timeout=10_000)
    assert "not a casdesk project" in shown[0]
    assert bare_window.context.catalog is None and not bare_window.context.is_opening()
    assert not project_lock.lock_path(bad).exists() and not bare_window.load_bar.isVisibleTo(bare_window)


def test_a_newer_open_or_a_close_supersedes_a_pending_one(qtbot, bare_window, project_path: Path,
                                                          tmp_path: Path) -> None:
    other = tmp_path / "other"
    Catalog.create(other).close()
    context = bare_window.context
    opened: list[Path] = []
    context.project_opened.connect(opened.append)
    context.open_in_background(project_path)
    context.close()  # before the thread reported: nothing opens, the lock is given back
    assert not project_lock.lock_path(project_path).exists()
    context.open_in_background(project_path)
    context.open_in_background(other.with_suffix(".casdesk"))
    qtbot.waitUntil(lambda: context.catalog is not None, timeout=10_000)
    qtbot.waitUntil(lambda: context._threads.activeThreadCount() == 0, timeout=10_000)
    assert opened == [other.with_suffix(".casdesk")]
    assert context.catalog.path == other.with_suffix(".casdesk")
    assert not project_lock.lock_path(project_path).exists()


def test_a_locked_project_asks_before_opening_read_only(qtbot, bare_window, project_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    held = project_lock.acquire(project_path)  # as if another window of this process held it
    assert held is not None
    try:
        asked: list[object] = []
        def decline(holder: object) -> bool:
            asked.append(holder)
            return False

        monkeypatch.setattr(bare_window, "_ask_readonly", decline)
        assert not bare_window.start_open_project(project_path)
        assert len(asked) == 1 and bare_window.context.catalog is None and not bare_window.context.is_opening()
        monkeypatch.setattr(bare_window, "_ask_readonly", lambda holder: True)
        assert bare_window.start_open_project(project_path)
        qtbot.waitUntil(lambda: bare_window.context.catalog is not None, timeout=10_000)
        assert bare_window.context.readonly
    finally:
        bare_window.context.close()
        held.release()


def test_open_reads_the_summary_in_a_worker_and_hidden_tabs_wait(qtbot, bare_window, project_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from casdesk.gui.project import panel as project_panel

    summary_threads: list[int] = []
    real_summary = project_panel.load_summary_for

    def summary(path: Path) -> object:
        summary_threads.append(threading.get_ident())
        return real_summary(path)

    monkeypatch.setattr(project_panel, "load_summary_for", summary)
    counted: list[int] = []
    real_list_all = SplitsStore.list_all

    def list_all(self: SplitsStore) -> object:
        counted.append(1)
        return real_list_all(self)

    monkeypatch.setattr(SplitsStore, "list_all", list_all)
    window = bare_window
    project, predict, train = window.panels["Project"], window.panels["Predict"], window.panels["Train"]
    assert window.tabs.currentWidget() is project
    listed: list[object] = []
    monkeypatch.setattr(predict.model_chooser, "refresh", listed.append)
    assert window.open_project(project_path)
    assert project.heading.text().startswith("Loading")  # the summary follows from a worker
    qtbot.waitUntil(lambda: "60 tiles" in project.heading.text(), timeout=10_000)
    assert summary_threads and summary_threads[0] != threading.get_ident()
    assert project.subdatasets.rowCount() == 2
    assert counted == []  # no split's tiles were counted to fill the split boxes
    assert train.form.split.findData("s1") >= 0 and predict.split.findData("s1") >= 0
    assert listed == []  # the hidden Predict tab lists the project's runs when shown
    window.tabs.setCurrentWidget(predict)
    assert listed == [window.context.catalog]


def test_the_grid_counts_rows_in_cpp(qtbot) -> None:
    """The grid's layout asks rowCount() once per item: in Python that took the GIL 20k times
    per reset at 20k tiles and stalled the GUI while workers ran Python."""
    from casdesk.core.dataset import tile_table as ti
    from casdesk.gui.browser.model import TileListModel

    assert TileListModel.rowCount is QStringListModel.rowCount
    index = ti.synthetic_index(500)
    model = TileListModel()
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(model.rowCount()))
    model.set_view(index, np.arange(100, 400))
    assert resets == [300] and model.rowCount() == 300
    assert model.tile_id(0) == int(index.ids[100])
    model.set_view(None, None)
    assert resets == [300, 0] and model.data(model.index(0)) is None


def test_the_app_shortens_the_switch_interval() -> None:
    from casdesk.gui.kit.gil import GUI_SWITCH_INTERVAL_S, favour_gui_thread

    previous = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        assert favour_gui_thread() == 0.005
        assert sys.getswitchinterval() == pytest.approx(GUI_SWITCH_INTERVAL_S, rel=0.05)
        sys.setswitchinterval(0.0001)
        favour_gui_thread()
        assert sys.getswitchinterval() == pytest.approx(0.0001, rel=0.05)  # never lengthened
    finally:
        sys.setswitchinterval(previous)




def test_the_label_tab_list_counts_rows_in_cpp(qtbot) -> None:
    """The Label tab lists 20k tiles: its row count is answered in C++ too."""
    from PySide6.QtCore import Qt

    from casdesk.gui.editor.panel import TargetModel, TargetRow

    assert TargetModel.rowCount is QStringListModel.rowCount
    model = TargetModel()
    rows = [TargetRow("tile", i, f"tile  t{i}", f"sub / t{i}") for i in range(3)]
    model.reset(rows)
    assert model.rowCount() == 3 and model.data(model.index(1)) == "tile  t1"
    assert model.data(model.index(2), Qt.ItemDataRole.UserRole) is rows[2]
    assert model.data(model.index(0), Qt.ItemDataRole.ToolTipRole) == "sub / t0"
    assert not model.flags(model.index(0)) & Qt.ItemFlag.ItemIsEditable
    model.reset([])
    assert model.rowCount() == 0


def test_the_label_tab_lists_tiles_in_a_worker_when_shown(qtbot, project_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from casdesk.gui.editor import panel as editor_panel
    from casdesk.gui.editor.panel import EditorPanel
    from casdesk.gui.shell.context import ProjectContext

    threads: list[int] = []
    real = editor_panel.load_target_rows

    def spy(path: Path) -> object:
        threads.append(threading.get_ident())
        return real(path)

    monkeypatch.setattr(editor_panel, "load_target_rows", spy)
    context = ProjectContext()
    panel = EditorPanel(context)
    qtbot.addWidget(panel)
    try:
        context.open(project_path)
        assert panel.targets.rows == [] and threads == []  # hidden: nothing read yet
        panel.resize(900, 600)
        panel.show()
        assert panel.targets.rows == [] and panel.status.text().startswith("Listing")  # shown at once
        qtbot.waitUntil(lambda: len(panel.targets.rows) == 60 and panel.target is not None, timeout=10_000)
        assert threads and threads[0] != threading.get_ident()
        first, target = panel.targets.rows[0], panel.target
        assert target is not None and (first.kind, first.id) == ("tile", target.tile_id)
        opened: list[object] = []
        monkeypatch.setattr(panel, "_open", lambda kind, tid: opened.append((kind, tid)))
        panel.open_target("tile", first.id)  # already open: not reloaded (its undo history stays)
        assert opened == []
        panel.open_target("tile", panel.targets.rows[7].id)
        assert opened == [("tile", panel.targets.rows[7].id)]
    finally:
        panel.shutdown()
        context.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_loading_threads_yield_the_cpu_to_the_gui_thread(qtbot) -> None:
    import os

    from casdesk.gui.browser.loader import LatestCall
    from casdesk.gui.kit.gil import WORKER_NICE

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    gui_nice = nice()
    call = LatestCall()
    seen: list[int] = []
    call.finished.connect(seen.append)
    try:
        call.submit(nice)
        qtbot.waitUntil(lambda: bool(seen), timeout=5_000)
        assert seen[0] == min(19, gui_nice + WORKER_NICE)
        call.submit(nice)  # the pool's thread again: lowered once, not twice
        qtbot.waitUntil(lambda: len(seen) == 2, timeout=5_000)
        assert seen[1] == seen[0]
        assert nice() == gui_nice  # the GUI thread keeps its priority
    finally:
        call.shutdown()
