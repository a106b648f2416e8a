"""Help menu: About lists the versions (torch loaded in the background), shortcuts sheet,
preferences stored in QSettings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from casdesk import __version__


def test_about_lists_versions(qtbot, log_dir: Path) -> None:
    from casdesk.gui.shell.about import AboutDialog

    dialog = AboutDialog()
    qtbot.addWidget(dialog)
    names = dict(dialog.rows())
    assert names["casdesk"].startswith(__version__)
    for key in ("Python", "Qt", "rasterio", "GDAL", "PROJ"):
        assert names[key] and names[key] != "unknown", key
    qtbot.waitUntil(lambda: dialog.torch_loaded, timeout=60_000)
    names = dict(dialog.rows())
    import torch

    assert names["torch"] == torch.__version__
    assert "CUDA (torch build)" in names and "GPU" in names
    dialog.copy_to_clipboard()
    from PySide6.QtWidgets import QApplication

    assert f"torch: {torch.__version__}" in QApplication.clipboard().text()


@pytest.fixture()
def window(qtbot, settings):
    from casdesk.gui.shell.main_window import MainWindow

    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def _find_action(window, text: str):
    from PySide6.QtGui import QAction

    for action in window.findChildren(QAction):
        if action.text().replace("&", "").startswith(text):
            return action
    raise AssertionError(f"no action {text!r}")


def test_help_menu_opens_about(qtbot, window) -> None:
    from casdesk.gui.shell.about import AboutDialog

    _find_action(window, "About casdesk").trigger()
    qtbot.waitUntil(lambda: any(d.isVisible() for d in window.findChildren(AboutDialog)))
    dialog = window.findChildren(AboutDialog)[0]
    qtbot.waitUntil(lambda: dialog.torch_loaded, timeout=60_000)
    dialog.close()


def test_shortcuts_sheet_lists_window_and_panel_keys(qtbot, window) -> None:
    from casdesk.gui.shell.shortcuts import ShortcutsDialog

    action = _find_action(window, "Keyboard shortcuts")
    assert action.shortcut().toString() == "F1"
    action.trigger()
    qtbot.waitUntil(lambda: any(d.isVisible() for d in window.findChildren(ShortcutsDialog)))
    rows = window.findChildren(ShortcutsDialog)[0].rows()
    keys = {(area, k) for area, k, _ in rows}
    assert ("Window", "Alt+1") in keys and ("Window", f"Alt+{window.tabs.count()}") in keys
    assert ("Window", "Ctrl+N") in keys and ("Window", "Ctrl+O") in keys and ("Window", "Ctrl+Q") in keys
    assert ("Label editor", "Ctrl+J") in keys and ("QC review", "A / R") in keys
    assert any(area == "Tile browser" and "Space" in k for area, k, _ in rows)


def test_every_menu_has_a_keyboard_mnemonic(window) -> None:
    titles = [a.text() for a in window.menuBar().actions() if a.text()]
    assert titles and all("&" in t for t in titles), titles


def test_preferences_store_default_device(qtbot, window, settings) -> None:
    from casdesk.gui.shell.settings import (
        PreferencesDialog,
        default_device,
        last_folder,
        remember_folder,
    )

    assert default_device(settings) == "auto"
    _find_action(window, "Preferences").trigger()
    qtbot.waitUntil(lambda: any(d.isVisible() for d in window.findChildren(PreferencesDialog)))
    dialog = window.findChildren(PreferencesDialog)[0]
    dialog.device.setCurrentText("cpu")
    dialog.accept()
    assert default_device(settings) == "cpu"
    remember_folder(settings, "scene", Path(__file__))
    assert last_folder(settings, "scene") == str(Path(__file__).parent)
    assert last_folder(settings, "never-used") == str(Path.home())


def test_main_window_import_does_not_import_torch() -> None:
    import subprocess

    code = ("import sys, casdesk.cli, casdesk.gui.shell.app, casdesk.gui.shell.main_window; "
            "bad = [m for m in ('torch', 'segmentation_models_pytorch', 'torchvision') if m in sys.modules]; "
            "print(bad); raise SystemExit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"imported at startup: {proc.stdout} {proc.stderr[-2000:]}"
