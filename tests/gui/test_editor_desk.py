"""The label editor as a LabelMe/ilastik user meets it (issue 19): fit-to-window on open, the
shape count in the status line, the label prompt, the Shapes list scoped to the open tile,
a toolbar that hides nothing, equal tile names told apart, and Predict this tile -> Accept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtTest import QTest

from casdesk.core.project.catalog import Catalog
from casdesk.gui.editor.panel import ASK_LABEL_KEY, EditorPanel
from casdesk.gui.shell.context import ProjectContext

LEFT = Qt.MouseButton.LeftButton
NO = Qt.KeyboardModifier.NoModifier
CTRL = Qt.KeyboardModifier.ControlModifier
PANEL_SIZE = (1378, 830)  # the Label tab's size in the main window's default 1400 x 900


@pytest.fixture()
def scene_project(tmp_path: Path) -> tuple[Path, int]:
    """A 512 x 512 georeferenced scene cut into four 256-pixel tiles."""
    from casdesk.core.dataset.scenes import add_scene
    from casdesk.core.dataset.synthetic import make_scene
    from casdesk.core.dataset.tiling import CropParams, crop_scene
    from casdesk.core.jobs import run_job

    scene = make_scene(tmp_path / "scene.tif", 512, 512, seed=3, n_scars=1, cloud=False, seam=False, fill=False)
    with Catalog.create(tmp_path / "proj") as cat:
        sid = add_scene(cat, scene.path, subdataset="demo").scene_id
        run_job(crop_scene(cat, sid, CropParams(size=256, stride=256), workers=1))
        path = cat.path
    return path, sid


@pytest.fixture()
def panel(qtbot, scene_project, tmp_path):
    path, _ = scene_project
    context = ProjectContext()
    context.open(path)
    panel = EditorPanel(context)
    panel.settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    qtbot.addWidget(panel)
    panel.resize(*PANEL_SIZE)
    panel.show()
    qtbot.waitExposed(panel)
    yield panel
    panel.shutdown()
    context.close()


def open_tile(qtbot, panel, col_off: int = 0, row_off: int = 0) -> int:
    cat = panel.context.catalog
    tile = next(t for t in cat.tiles() if t.col_off == col_off and t.row_off == row_off)
    panel.open_target("tile", tile.id)
    qtbot.waitUntil(lambda: panel.target is not None and panel.target.tile_id == tile.id, timeout=5000)
    return tile.id


def vp(canvas, x: float, y: float) -> QPoint:
    return canvas.mapFromScene(QPointF(x, y))


def click(canvas, x: float, y: float) -> None:
    QTest.mouseClick(canvas.viewport(), LEFT, NO, vp(canvas, x, y))


def draw_rectangle(canvas, a: tuple[float, float], b: tuple[float, float]) -> None:
    QTest.keyClick(canvas, Qt.Key.Key_R, CTRL)
    click(canvas, *a)
    click(canvas, *b)


def scene_labels(path: Path, scene_id: int) -> list:
    with Catalog.open(path, readonly=True) as cat:
        return cat.labels(scene_id=scene_id)


def test_a_tile_opens_fitted_to_the_window_without_scroll_bars(qtbot, panel) -> None:
    canvas = panel.canvas
    open_tile(qtbot, panel)
    qtbot.waitUntil(canvas.is_fitted, timeout=2000)
    view = canvas.viewport().size()
    image = canvas.image_rect
    # the whole tile is visible, and it fills the window in one direction (not 1.4x, not tiny)
    assert canvas.visible_rect().contains(image)
    fill = max(image.width() * canvas.zoom() / view.width(), image.height() * canvas.zoom() / view.height())
    assert fill == pytest.approx(1.0, abs=0.02)
    assert not canvas.horizontalScrollBar().isVisible() and not canvas.verticalScrollBar().isVisible()
    # zooming in brings scroll bars back; Ctrl+0 fits again and hides them
    QTest.keyClick(canvas, Qt.Key.Key_Equal, CTRL)
    QTest.keyClick(canvas, Qt.Key.Key_Equal, CTRL)
    qtbot.waitUntil(lambda: canvas.horizontalScrollBar().isVisible(), timeout=2000)
    assert not canvas.is_fitted()
    QTest.keyClick(canvas, Qt.Key.Key_0, CTRL)
    qtbot.waitUntil(lambda: not canvas.horizontalScrollBar().isVisible(), timeout=2000)
    assert canvas.is_fitted() and canvas.visible_rect().contains(image)


def test_the_status_line_counts_shapes_right_after_drawing(qtbot, panel) -> None:
    canvas = panel.canvas
    open_tile(qtbot, panel)
    assert "0 shapes" in panel.status.text()
    draw_rectangle(canvas, (20, 20), (80, 90))
    assert len(canvas.doc.shapes) == 1
    assert "1 shape." in panel.status.text() and "0 shapes" not in panel.status.text()
    draw_rectangle(canvas, (120, 120), (160, 170))
    assert "2 shapes" in panel.status.text()
    QTest.keyClick(canvas, Qt.Key.Key_Z, CTRL)
    assert "1 shape." in panel.status.text()
    qtbot.waitUntil(panel.regen_idle, timeout=10_000)


def test_the_label_prompt_asks_when_a_shape_closes_only_when_switched_on(qtbot, panel, scene_project) -> None:
    path, sid = scene_project
    canvas = panel.canvas
    open_tile(qtbot, panel)
    assert not panel.ask_label_action.isChecked()  # off by default, like LabelMe's --nodata default
    draw_rectangle(canvas, (20, 20), (60, 60))
    assert getattr(panel, "_label_dialog", None) is None
    assert [lab.name for lab in scene_labels(path, sid)] == ["landslide"]

    panel.ask_label_action.trigger()
    assert panel.settings.value(ASK_LABEL_KEY, type=bool)
    draw_rectangle(canvas, (100, 100), (150, 150))
    qtbot.waitUntil(lambda: panel._label_dialog is not None and panel._label_dialog.isVisible(), timeout=2000)
    panel._label_dialog.edit.setText("debris flow")
    panel._label_dialog.accept()
    assert sorted(lab.name for lab in scene_labels(path, sid)) == ["debris flow", "landslide"]
    assert panel.label_combo.currentText() == "debris flow"
    # cancelling the prompt discards the new shape (as LabelMe)
    draw_rectangle(canvas, (180, 20), (230, 60))
    qtbot.waitUntil(lambda: panel._label_dialog.isVisible(), timeout=2000)
    assert len(scene_labels(path, sid)) == 3
    panel._label_dialog.reject()
    assert len(scene_labels(path, sid)) == 2 and len(canvas.doc.shapes) == 2
    qtbot.waitUntil(panel.regen_idle, timeout=10_000)


def test_the_shapes_list_holds_the_open_tile_and_the_scene_around_it_is_dimmed(qtbot, panel, scene_project) -> None:
    path, sid = scene_project
    with Catalog.open(path) as cat:
        cat.add_labels([{"name": "landslide", "geometry_px": shapely.box(40, 40, 90, 90).wkt},     # in tile (0, 0)
                        {"name": "landslide", "geometry_px": shapely.box(280, 20, 300, 40).wkt},   # next to it
                        {"name": "landslide", "geometry_px": shapely.box(420, 420, 480, 480).wkt}],  # far away
                       scene_id=sid)
    canvas = panel.canvas
    open_tile(qtbot, panel, 0, 0)
    assert panel.shape_list.count() == 1
    assert len(canvas.doc.shapes) == 1
    assert len(canvas.context_items) == 1  # the neighbour is drawn (dimmed), the far one is not
    [ctx] = canvas.context_items
    assert ctx.pen().color().alpha() < 255 and ctx.zValue() < min(i.zValue() for i in canvas.shape_items.values())
    assert canvas.shape_at(QPointF(290, 30)) is None  # context shapes take no clicks
    assert "1 shape" in panel.status.text() and "dimmed" in panel.status.text()
    # the scene itself lists every shape, with nothing dimmed
    panel.open_target("scene", sid)
    qtbot.waitUntil(lambda: panel.shape_list.count() == 3, timeout=2000)
    assert canvas.context_items == []


def test_the_toolbars_show_every_action_at_the_default_width(qtbot, panel) -> None:
    canvas = panel.canvas
    open_tile(qtbot, panel)

    def hidden() -> list[str]:
        out = []
        for bar in (panel.toolbar, panel.loop_bar):
            for act in bar.actions():
                if act.isSeparator():
                    continue
                w = bar.widgetForAction(act)
                if w is None or not w.isVisible() or not bar.rect().contains(w.geometry()):
                    out.append(act.text() or type(w).__name__)
        return out

    qtbot.waitUntil(lambda: not hidden(), timeout=2000)
    assert panel.export_action in panel.loop_bar.actions()
    # a long undo text must not change the toolbar (it used to push "Export LabelMe" into "››")
    panel.label_combo.setCurrentText("a very long label name for an old rotational landslide")
    draw_rectangle(canvas, (20, 20), (60, 60))
    assert canvas.undo_stack.undoText().startswith("add a very long")
    assert panel.undo_action.text() == "Undo" and panel.undo_action.isEnabled()
    assert "a very long" in panel.undo_action.toolTip()
    assert not hidden()
    QTest.keyClick(canvas, Qt.Key.Key_Z, CTRL)
    assert panel.redo_action.text() == "Redo" and panel.redo_action.isEnabled()
    assert not hidden()
    qtbot.waitUntil(panel.regen_idle, timeout=10_000)


def test_tiles_with_equal_names_in_two_subdatasets_are_told_apart(qtbot, tmp_path) -> None:
    import rasterio

    cat = Catalog.create(tmp_path / "twins")
    rows = []
    for sub in ("Tiburon Peninsula (UAV)", "Tiburon Peninsula (SAT)"):
        for name in ("1", "2"):
            p = tmp_path / sub / f"{name}.tif"
            p.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(p, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8") as dst:
                dst.write(np.zeros((3, 8, 8), np.uint8))
            rows.append({"name": name, "subdataset": sub, "image_path": p, "width": 8, "height": 8})
    rows.append({**rows[0], "name": "unique", "image_path": rows[0]["image_path"]})
    cat.add_tiles(rows)
    path = cat.path
    cat.close()
    context = ProjectContext()
    context.open(path)
    panel = EditorPanel(context)
    qtbot.addWidget(panel)
    try:
        texts = [r.text for r in panel.targets.rows if r.kind == "tile"]
        assert len(texts) == 5 and len(set(texts)) == 5
        assert "tile  1  [Tiburon Peninsula (UAV)]" in texts and "tile  1  [Tiburon Peninsula (SAT)]" in texts
        assert "tile  unique" in texts  # a unique name stays short
        # rows are as wide as the list (elided on the left), so the subdataset at the end stays visible
        panel.resize(900, 500)
        panel.show()
        qtbot.waitExposed(panel)
        view = panel.target_view
        assert view.horizontalScrollBar().isHidden() or not view.horizontalScrollBar().isVisible()
        for row in range(view.model().rowCount()):
            assert view.visualRect(view.model().index(row, 0)).width() <= view.viewport().width()
    finally:
        panel.shutdown()
        context.close()


# --------------------------------------------------------------------------- predict -> accept
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A real (tiny) model file that calls every pixel landslide: U-Net on a MobileNetV2
    encoder (random weights, encoder_weights=None) with a zero head and a +4 logit bias."""
    import torch

    from casdesk.ml.modelfile import save_model_file
    from casdesk.ml.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("unet", encoder="mobilenet_v2", in_channels=3, classes=1)
    head = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(4.0)
    meta = {"architecture": "unet", "encoder": "mobilenet_v2", "in_channels": 3, "bands": 3, "classes": 1,
            "threshold": 0.5, "tile_size": [256, 256], "resolution_m": [0.5],
            "normalization": {"mean": [100.0] * 3, "std": [50.0] * 3}}
    path = tmp_path_factory.mktemp("model") / "run0001-unet" / "model.pt"
    path.parent.mkdir(parents=True)
    save_model_file(path, model, meta)
    return path


def add_run(path: Path, model_path: Path, name: str = "unet quick") -> int:
    with Catalog.open(path) as cat, cat.transaction() as db:
        cur = db.execute(
            "INSERT INTO runs(name, status, config, started, model_path, best_metrics)"
            " VALUES (?, 'finished', ?, '2026-01-01', ?, ?)",
            (name, json.dumps({"model": "unet", "encoder": "mobilenet_v2"}), str(model_path),
             json.dumps({"miou": 0.5})),
        )
        return int(cur.lastrowid)


def test_predict_this_tile_then_accept_as_polygons(qtbot, panel, scene_project, tiny_model) -> None:
    """The ilastik-like loop: the chosen project model predicts the open tile (probability
    overlay), Accept turns it into editable predicted labels, accepting twice replaces."""
    pytest.importorskip("segmentation_models_pytorch")
    path, sid = scene_project
    add_run(path, tiny_model)
    panel.model_chooser.refresh(panel.context.catalog)
    assert panel.model_chooser.current_path() == tiny_model
    assert "unet quick" in panel.model_chooser.currentText()
    canvas = panel.canvas
    open_tile(qtbot, panel, 256, 0)
    assert panel.predict_action.isEnabled() and not panel.accept_action.isEnabled()
    panel.predict_action.trigger()
    qtbot.waitUntil(lambda: panel._prediction is not None and not panel.predict_busy(), timeout=30_000)
    assert canvas.has_overlay() and panel.accept_action.isEnabled()
    assert canvas.overlay.pixmap().width() == 256
    assert "100.0 %" in panel.status.text()  # all of the tile above the threshold
    panel.accept_action.trigger()  # in a worker: the GUI thread never waits on it
    qtbot.waitUntil(lambda: not panel.predict_busy() and len(canvas.doc.shapes) == 1, timeout=10_000)
    labels = [lab for lab in scene_labels(path, sid) if lab.source == "predicted"]
    assert len(labels) == 1
    geom = shapely.from_wkt(labels[0].geometry_px)
    assert geom.bounds == pytest.approx((256, 0, 512, 256))  # the tile, in scene pixels
    assert len(canvas.doc.shapes) == 1 and panel.shape_list.count() == 1  # editable at once
    assert not canvas.has_overlay()
    assert "Accepted 1 predicted polygon" in panel.status.text()
    # again: replaced, not doubled
    panel.predict_action.trigger()
    qtbot.waitUntil(lambda: panel._prediction is not None and not panel.predict_busy(), timeout=30_000)
    panel.accept_action.trigger()
    qtbot.waitUntil(lambda: not panel.predict_busy() and "replacing 1" in panel.status.text(), timeout=10_000)
    assert len([lab for lab in scene_labels(path, sid) if lab.source == "predicted"]) == 1
    assert "replacing 1" in panel.status.text()
    qtbot.waitUntil(panel.regen_idle, timeout=10_000)
    with Catalog.open(path, readonly=True) as cat:
        tile = next(t for t in cat.tiles() if t.col_off == 256 and t.row_off == 0)
        assert tile.label_pixels == 256 * 256  # the mask follows the accepted labels
