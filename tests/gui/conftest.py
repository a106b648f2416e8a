"""Fixtures for the main-window workflow tests: a small browse project opened in a real
:class:`MainWindow` (1400 x 900, private settings)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings


def _browser_fixtures():
    """The browser tests' project builder (one builder for both folders; loaded by path:
    the tests run with ``--import-mode=importlib``). Rasters: ``tests.support.tiles``."""
    path = Path(__file__).resolve().parent / "browser" / "conftest.py"
    name = "_casdesk_browser_fixtures"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


browser_fixtures = _browser_fixtures()
build_project = browser_fixtures.build_project


@pytest.fixture()
def project_path(tmp_path: Path) -> Path:
    proj = build_project(tmp_path, n_tiles=60)
    proj.catalog.close()
    return tmp_path / "browse.casdesk"


@contextmanager
def main_window(qtbot, tmp_path: Path, project: Path) -> Iterator[Any]:
    """The one way tests build the app: a real :class:`MainWindow` (1400 x 900, private
    settings) with ``project`` open; every panel's workers are stopped afterwards."""
    from casdesk.gui.shell.main_window import MainWindow

    w = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    assert w.open_project(project)
    try:
        yield w
    finally:
        for panel in w.panels.values():
            shutdown = getattr(panel, "shutdown", None)
            if shutdown is not None:
                shutdown()
        w.close()


@pytest.fixture()
def window(qtbot, tmp_path: Path, project_path: Path):
    """The main window with ``project_path`` open and Browse's tile table loaded."""
    with main_window(qtbot, tmp_path, project_path) as w:
        browser = w.panels["Browse"]
        w.tabs.setCurrentWidget(browser)
        qtbot.waitUntil(lambda: browser.index is not None and browser.qc_loaded, timeout=10_000)
        yield w


@pytest.fixture()
def tiny_window(qtbot, tmp_path: Path, tiny_project: Path):
    """The main window with the tiny training project (``tiny_project``) open."""
    with main_window(qtbot, tmp_path, tiny_project) as w:
        yield w
