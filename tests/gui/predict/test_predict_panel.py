"""The Predict tab from a user's side: choose a model and a scene, run, see the overlay,
send the polygons to the Label tab; cancel; a broken model file."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QApplication, QMessageBox

from casdesk.core.project.catalog import Catalog


def _error_boxes() -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets()
            if isinstance(w, QMessageBox) and w.objectName() == "errorDialog" and w.isVisible()]


def _ready(qtbot, panel, model: Path, source: Path, out: Path) -> None:
    panel.set_model(model)
    panel.set_source(source)
    panel.out_edit.setText(str(out))
    qtbot.waitUntil(lambda: panel.model_info is not None, timeout=20_000)
    assert "unet" in panel.model_text.text() and "mIoU 61.0 %" in panel.model_text.text()
    panel.overlap.setValue(16)
    panel.threshold.setValue(0.4)  # the test model outputs p = 0.5 everywhere: all landslide
    panel.vector.setCurrentIndex(panel.vector.findData("gpkg"))


def test_predict_a_scene_show_it_and_send_polygons_to_the_editor(qtbot, window, model_file, scene, tmp_path,
                                                                  monkeypatch):
    panel = window.panels["Predict"]
    _ready(qtbot, panel, model_file, scene, tmp_path / "out")
    panel.estimate_memory()
    qtbot.waitUntil(lambda: panel.memory_text.text().startswith("Peak memory"), timeout=20_000)
    assert panel.run_button.isEnabled()

    panel.run_button.click()
    qtbot.waitUntil(lambda: not panel.busy and bool(panel.results), timeout=30_000)
    result = panel.results[0]
    assert result.prob_path.exists() and result.mask_path.exists() and result.vector_path.exists()
    assert result.polygons >= 1
    assert panel.outputs.count() == 4  # three files + the summary line
    # each output: "Open in file manager" and "Copy path"
    assert not panel.copy_path_button.isEnabled()  # nothing selected yet
    panel.outputs.setCurrentRow(0)
    assert panel.copy_path_button.isEnabled() and panel.open_folder_button.isEnabled()
    panel.copy_path_button.click()
    assert QApplication.clipboard().text() == str(result.prob_path)
    opened = []
    monkeypatch.setattr("casdesk.gui.predict.results.QDesktopServices.openUrl", lambda url: opened.append(url) or True)
    panel.open_folder_button.click()
    assert [Path(u.toLocalFile()) for u in opened] == [result.prob_path.parent]
    panel.outputs.setCurrentRow(3)  # the summary line is no file
    assert not panel.copy_path_button.isEnabled()
    # the probability map has a colour bar; the mask a legend
    assert not panel.view.legend.pixmap().isNull()
    prob_legend = panel.view.legend.pixmap().toImage()
    qtbot.waitUntil(lambda: panel.view.images is not None, timeout=20_000)
    assert panel.view.scene_item.image.shape[:2] == (256, 256)
    assert panel.view.overlay_item.image.shape == (256, 256, 4)
    panel.view.show_mask.setChecked(True)
    assert panel.view.overlay_item.image[..., 3].max() == 255  # landslide pixels are drawn
    assert panel.view.legend.pixmap().toImage() != prob_legend

    panel.to_editor_button.click()
    editor = window.panels["Label"]
    qtbot.waitUntil(lambda: window.tabs.currentWidget() is editor, timeout=20_000)
    cat: Catalog = window.context.catalog
    scenes = [s for s in cat.scenes() if Path(s.path).resolve() == scene.resolve()]
    assert len(scenes) == 1
    labels = cat.labels(scene_id=scenes[0].id)
    assert len(labels) == result.polygons and {lab.source for lab in labels} == {"predicted"}
    assert editor.target is not None and editor.target.kind == "scene" and editor.target.scene_id == scenes[0].id

    panel.to_editor_button.click()  # importing again replaces, never doubles
    qtbot.waitUntil(lambda: not panel.is_running("import"), timeout=20_000)
    assert len(cat.labels(scene_id=scenes[0].id)) == result.polygons


def test_cancel_leaves_no_outputs_and_the_panel_usable(qtbot, window, model_file, scene, tmp_path):
    panel = window.panels["Predict"]
    _ready(qtbot, panel, model_file, scene, tmp_path / "out")
    panel.overlap.setValue(0)
    panel.batch_size.setValue(1)
    panel.run()
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.busy, timeout=30_000)
    assert panel.status.text().startswith("Cancelled")
    assert not list((tmp_path / "out").glob("*.tif"))
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_a_bad_model_file_shows_a_dialog_and_the_panel_stays_usable(qtbot, window, model_file, bad_model,
                                                                     scene, tmp_path):
    panel = window.panels["Predict"]
    panel.set_source(scene)
    panel.set_model(bad_model)
    qtbot.waitUntil(lambda: bool(_error_boxes()), timeout=20_000)
    box = _error_boxes()[-1]
    assert "model file" in box.text() and "Traceback" not in box.text() + box.detailedText()
    assert not panel.run_button.isEnabled()
    box.close()

    _ready(qtbot, panel, model_file, scene, tmp_path / "out")
    assert panel.run_button.isEnabled()


def test_predict_project_tiles_updates_the_browser(qtbot, window, model_file):
    panel = window.panels["Predict"]
    panel.set_model(model_file)
    qtbot.waitUntil(lambda: panel.model_info is not None, timeout=20_000)
    panel.split.setCurrentIndex(panel.split.findData(None))
    with qtbot.waitSignal(window.context.tiles_changed, timeout=30_000):
        panel.tiles_button.click()
    rows = window.context.catalog.query("SELECT COUNT(*) FROM predictions")
    assert rows[0][0] == 16
