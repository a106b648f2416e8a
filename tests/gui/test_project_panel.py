from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

from casdesk.core.project.catalog import Catalog
from casdesk.gui.shell.main_window import MainWindow


@pytest.fixture()
def window(qtbot, tmp_path: Path):
    from PySide6.QtCore import QSettings

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def _wait_idle(qtbot, panel) -> None:
    qtbot.waitUntil(lambda: not panel.busy, timeout=60_000)


def test_add_scene_crop_and_edit_metadata_from_the_panel(qtbot, window, tmp_path: Path, public_data: Path):
    Catalog.create(tmp_path / "p").close()
    assert window.open_project(tmp_path / "p.casdesk")
    panel = window.panels["Project"]
    runner = panel.add_scene(public_data / "RGB.byte.tif", labels=public_data / "box.shp", sensor="SAT")
    assert runner is not None and panel.busy
    _wait_idle(qtbot, panel)
    assert panel.scenes.rowCount() == 1 and panel.scenes.item(0, 5).text() == "1"
    panel.crop(256, 256, "shift")
    _wait_idle(qtbot, panel)
    assert window.context.catalog.tile_count() == 12
    assert panel.subdatasets.item(0, 5).text() == "12"
    panel.subdatasets.item(0, 3).setText("Bahamas")  # region, edited in place
    assert window.context.catalog.subdatasets()[0]["region"] == "Bahamas"
    assert "12 tiles" in panel.heading.text()


def test_bad_scene_shows_a_dialog_and_the_app_stays_usable(qtbot, window, tmp_path: Path, public_data: Path):
    Catalog.create(tmp_path / "p").close()
    window.open_project(tmp_path / "p.casdesk")
    panel = window.panels["Project"]
    panel.add_scene(public_data / "corrupt.tif")
    _wait_idle(qtbot, panel)

    def dialog():
        boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
        return boxes[0] if boxes else None

    qtbot.waitUntil(lambda: dialog() is not None)
    box = dialog()
    assert "corrupt.tif" in box.text() and "damaged" in box.text()
    assert "Traceback" not in box.text()
    box.close()
    panel.add_scene(public_data / "RGB.byte.tif")
    _wait_idle(qtbot, panel)
    assert window.context.catalog.summary()["scenes"][0]["name"] == "RGB.byte"


def test_opening_a_file_that_is_not_a_project(qtbot, window, tmp_path: Path):
    bad = tmp_path / "x.casdesk"
    bad.write_text("hello")
    assert not window.open_project(bad)
    assert window.context.catalog is None


def test_same_file_again_asks_and_recrop_notes_are_shown(qtbot, window, tmp_path: Path, public_data: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    """Adding a scene's file again asks first (No: nothing added; Yes: a second scene), and a
    re-crop at another size says in the panel what it dropped."""
    Catalog.create(tmp_path / "p").close()
    window.open_project(tmp_path / "p.casdesk")
    panel = window.panels["Project"]
    panel.add_scene(public_data / "RGB.byte.tif")
    _wait_idle(qtbot, panel)
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked: list[str] = []

    def question(parent, title, text, *args):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)
    assert panel.add_scene(public_data / "RGB.byte.tif") is None
    assert len(window.context.catalog.scenes()) == 1 and "already scene" in asked[0]
    panel.add_scene(public_data / "RGB.byte.tif")
    _wait_idle(qtbot, panel)
    assert len(window.context.catalog.scenes()) == 2 and len(asked) == 2

    panel.crop(256, 256, "shift")
    _wait_idle(qtbot, panel)
    cat = window.context.catalog
    tile = cat.tiles()[0]
    with cat.transaction() as db:  # a manual decision on a tile the re-crop will replace
        db.execute("INSERT INTO qc_decisions(tile_id, decision, author, decided) VALUES (?, 'reject', 'me', 'x')",
                   (tile.id,))
    panel.crop(384, 384, "shift")
    _wait_idle(qtbot, panel)
    assert panel.notes.isVisible(), "the re-crop's warnings are not shown"
    assert "decision" in panel.notes.text()
