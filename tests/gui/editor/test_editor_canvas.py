"""The real canvas driven with mouse and keys: draw, edit, undo/redo, autosave, masks."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import shapely
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from casdesk.core.project.catalog import Catalog
from casdesk.gui.editor.panel import EditorPanel
from casdesk.gui.shell.context import ProjectContext

NO = Qt.KeyboardModifier.NoModifier
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture()
def panel(qtbot, editor_project):
    context = ProjectContext()
    context.open(editor_project.path)
    panel = EditorPanel(context)
    qtbot.addWidget(panel)
    panel.resize(1100, 800)
    panel.show()
    qtbot.waitExposed(panel)
    panel.open_target("scene", editor_project.scene_id)
    qtbot.waitUntil(lambda: panel.imagery.idle() and panel.imagery._overview is not None, timeout=10_000)
    yield panel
    panel.shutdown()
    context.close()


def vp(canvas, x: float, y: float) -> QPoint:
    return canvas.mapFromScene(QPointF(x, y))


def scene_xy(canvas, x: float, y: float) -> tuple[float, float]:
    p = canvas.mapToScene(vp(canvas, x, y))
    return p.x(), p.y()


def click(canvas, x, y, mods=NO) -> None:
    QTest.mouseClick(canvas.viewport(), LEFT, mods, vp(canvas, x, y))


def drag(canvas, a, b) -> None:
    QTest.mousePress(canvas.viewport(), LEFT, NO, vp(canvas, *a))
    QTest.mouseMove(canvas.viewport(), vp(canvas, (a[0] + b[0]) / 2, (a[1] + b[1]) / 2))
    QTest.mouseMove(canvas.viewport(), vp(canvas, *b))
    QTest.mouseRelease(canvas.viewport(), LEFT, NO, vp(canvas, *b))


def stored(path, scene_id):
    with Catalog.open(path, readonly=True) as cat:
        return [shapely.from_wkt(lab.geometry_px) for lab in cat.labels(scene_id=scene_id)]


def ring_len(geom) -> int:
    return len(geom.exterior.coords) - 1


def test_draw_edit_undo_redo_autosave_and_masks(qtbot, panel, editor_project) -> None:
    canvas = panel.canvas
    proj, sid = editor_project.path, editor_project.scene_id
    QTest.keyClick(canvas, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert canvas.mode == "polygon"
    corners = [(100, 100), (300, 100), (300, 300), (100, 300)]
    for x, y in corners:
        click(canvas, x, y)
    QTest.keyClick(canvas, Qt.Key.Key_Backspace)  # remove the last vertex, then re-add it
    click(canvas, 100, 300)
    click(canvas, 100, 100)  # clicking the first vertex closes the polygon
    assert len(canvas.doc.shapes) == 1
    [geom] = stored(proj, sid)
    expected = shapely.Polygon([scene_xy(canvas, *c) for c in corners])
    assert geom.equals_exact(expected.normalize(), 1e-6) or geom.normalize().equals_exact(expected.normalize(), 1e-6)

    # the masks of the four tiles the square overlaps follow, in a worker
    qtbot.waitUntil(panel.regen_idle, timeout=10_000)
    check_masks(proj, sid)

    # edit mode: select, drag a vertex
    QTest.keyClick(canvas, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
    assert canvas.mode == "edit"
    click(canvas, 200, 200)
    assert len(canvas.selected_keys()) == 1
    v = scene_xy(canvas, 300, 300)
    drag(canvas, v, (350, 340))
    moved = stored(proj, sid)[0]
    target = scene_xy(canvas, 350, 340)
    assert any(np.allclose(c, target) for c in moved.exterior.coords)
    assert ring_len(moved) == 4

    # Alt+click an edge inserts a vertex; Alt+Shift+click removes it
    mid = scene_xy(canvas, 200, 100)
    click(canvas, *mid, Qt.KeyboardModifier.AltModifier)
    assert ring_len(stored(proj, sid)[0]) == 5
    click(canvas, *mid, Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.ShiftModifier)
    assert ring_len(stored(proj, sid)[0]) == 4
    # hover + Delete removes a vertex too
    QTest.mouseMove(canvas.viewport(), vp(canvas, *target))
    QTest.keyClick(canvas, Qt.Key.Key_Delete)
    assert ring_len(stored(proj, sid)[0]) == 3

    # undo each step, checking the catalog, then redo them all
    history = []
    for _ in range(4):
        history.append(stored(proj, sid)[0])
        QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ring_len(stored(proj, sid)[0]) == 4
    assert stored(proj, sid)[0].equals(expected)  # back to the drawn square
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert stored(proj, sid) == []  # the creation undone
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert stored(proj, sid)[0].equals(expected)
    for want in reversed(history):
        QTest.keyClick(canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
        assert stored(proj, sid)[0].equals(want)

    # delete the shape, undo the deletion
    click(canvas, 150, 150)
    QTest.keyClick(canvas, Qt.Key.Key_Delete)
    assert stored(proj, sid) == []
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(stored(proj, sid)) == 1
    qtbot.waitUntil(panel.regen_idle, timeout=10_000)
    check_masks(proj, sid)


def labelme_rule(geoms, shape, offset) -> np.ndarray:
    """Editor polygons by LabelMe's rule (PIL, outline included; holes drawn as background)."""
    from PIL import Image, ImageDraw

    def draw(ring):
        img = Image.new("L", (shape[1], shape[0]), 0)
        xy = [(x - offset[0], y - offset[1]) for x, y in list(ring.coords)[:-1]]
        ImageDraw.Draw(img).polygon(xy, outline=1, fill=1)
        return np.asarray(img, bool)

    out = np.zeros(shape, np.uint8)
    for g in geoms:
        for poly in getattr(g, "geoms", [g]):
            m = draw(poly.exterior)
            for hole in poly.interiors:
                m &= ~draw(hole)
            out[m] = 1
    return out


def check_masks(proj, sid) -> None:
    """Each tile's mask and CAS label equal the stored polygons drawn on its grid by
    LabelMe's rule (the rule of labels drawn in the editor)."""
    with Catalog.open(proj, readonly=True) as cat:
        geoms = [shapely.from_wkt(lab.geometry_px) for lab in cat.labels(scene_id=sid)]
        for t in cat.tiles(scene_id=sid):
            want = labelme_rule(geoms, (t.height, t.width), (t.col_off, t.row_off))
            with rasterio.open(t.mask_path) as ds:
                got = ds.read(1)
                assert ds.crs is not None
            np.testing.assert_array_equal(got, want)
            with rasterio.open(t.label_path) as ds:
                np.testing.assert_array_equal(ds.read(1) == 0, want == 1)
            assert t.label_pixels == int(want.sum())


def test_rectangle_copy_paste_duplicate_toggle(qtbot, panel, editor_project) -> None:
    canvas = panel.canvas
    QTest.keyClick(canvas, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    click(canvas, 50, 50)
    click(canvas, 120, 90)
    assert len(canvas.doc.shapes) == 1
    QTest.keyClick(canvas, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
    click(canvas, 80, 70)
    QTest.keyClick(canvas, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(canvas, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert len(stored(editor_project.path, editor_project.scene_id)) == 3
    QTest.keyClick(canvas, Qt.Key.Key_T)
    assert not any(i.isVisible() for i in canvas.shape_items.values())
    QTest.keyClick(canvas, Qt.Key.Key_T)
    # nudging merges into one undo step
    before = canvas.undo_stack.count()
    for _ in range(3):
        QTest.keyClick(canvas, Qt.Key.Key_Right)
    assert canvas.undo_stack.count() == before + 1
    # Esc cancels a polygon in progress
    QTest.keyClick(canvas, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    click(canvas, 400, 400)
    click(canvas, 450, 400)
    QTest.keyClick(canvas, Qt.Key.Key_Escape)
    QTest.keyClick(canvas, Qt.Key.Key_Return)
    assert len(canvas.doc.shapes) == 3
    # zoom and fit
    z = canvas.zoom()
    QTest.keyClick(canvas, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom() > z
    QTest.keyClick(canvas, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom() == pytest.approx(z, rel=0.1)
    qtbot.waitUntil(panel.regen_idle, timeout=10_000)


def test_brush_eraser_hole_and_snapping(qtbot, panel, editor_project) -> None:
    canvas = panel.canvas
    proj, sid = editor_project.path, editor_project.scene_id
    QTest.keyClick(canvas, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    click(canvas, 100, 100)
    click(canvas, 300, 300)
    square = stored(proj, sid)[0]
    # a cut polygon inside the square becomes a hole
    QTest.keyClick(canvas, Qt.Key.Key_H)
    for x, y in [(180, 180), (220, 180), (220, 220), (180, 220)]:
        click(canvas, x, y)
    QTest.keyClick(canvas, Qt.Key.Key_Return)
    [holed] = stored(proj, sid)
    assert len(holed.interiors) == 1 and holed.area < square.area
    # the brush adds to it, the eraser cuts from it
    QTest.keyClick(canvas, Qt.Key.Key_B)
    canvas.brush_radius = 10
    drag(canvas, (300, 200), (340, 200))
    brushed = stored(proj, sid)[0]
    assert brushed.area > holed.area and brushed.bounds[2] > 340
    QTest.keyClick(canvas, Qt.Key.Key_X)
    drag(canvas, (100, 100), (100, 150))
    erased = stored(proj, sid)[0]
    assert erased.area < brushed.area and not erased.contains(shapely.Point(*scene_xy(canvas, 101, 101)))
    # a new polygon's vertex snaps onto a vertex of the neighbour
    QTest.keyClick(canvas, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    corner = scene_xy(canvas, 300, 300)
    click(canvas, corner[0] + 2, corner[1] + 2)
    click(canvas, 400, 300)
    click(canvas, 400, 400)
    QTest.keyClick(canvas, Qt.Key.Key_Return)
    newest = stored(proj, sid)[-1]
    assert any(np.allclose(c, corner) for c in newest.exterior.coords)
    # undo goes back through all of it
    for _ in range(5):
        QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert stored(proj, sid) == []
    qtbot.waitUntil(panel.regen_idle, timeout=10_000)


def test_tiles_open_and_step_with_d_and_a(qtbot, panel, editor_project) -> None:
    canvas = panel.canvas
    QTest.keyClick(canvas, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: panel.target is not None and panel.target.tile_id is not None, timeout=5000)
    first = panel.target.tile_id
    QTest.keyClick(canvas, Qt.Key.Key_D)
    assert panel.target.tile_id != first
    QTest.keyClick(canvas, Qt.Key.Key_A)
    assert panel.target.tile_id == first
    # a polygon drawn on a tile of a scene is stored in scene pixels
    QTest.keyClick(canvas, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    click(canvas, 10, 10)
    click(canvas, 60, 60)
    [geom] = stored(editor_project.path, editor_project.scene_id)
    off = panel.target.offset
    x0, y0 = scene_xy(canvas, 10, 10)
    assert geom.bounds[:2] == pytest.approx((x0 + off[0], y0 + off[1]))
    qtbot.waitUntil(panel.regen_idle, timeout=10_000)
    qtbot.waitUntil(lambda: panel.imagery.idle(), timeout=10_000)


def test_magic_wand_and_grabcut_on_the_canvas(qtbot, panel, editor_project) -> None:
    canvas = panel.canvas
    scar = max(editor_project.scars, key=lambda p: p.area)
    QTest.keyClick(canvas, Qt.Key.Key_M)
    c = scar.representative_point()
    click(canvas, c.x, c.y)
    qtbot.waitUntil(lambda: len(canvas.doc.shapes) == 1 and not canvas.busy(), timeout=10_000)
    [geom] = stored(editor_project.path, editor_project.scene_id)
    assert geom.intersection(scar).area > 0.6 * scar.area
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(canvas, Qt.Key.Key_G)
    x0, y0, x1, y1 = scar.bounds
    drag(canvas, (x0 - 5, y0 - 5), (x1 + 5, y1 + 5))
    qtbot.waitUntil(lambda: len(canvas.doc.shapes) >= 1 and not canvas.busy(), timeout=20_000)
    geoms = stored(editor_project.path, editor_project.scene_id)
    got = shapely.union_all(geoms)
    assert got.intersection(scar).area / got.union(scar).area > 0.6
    qtbot.waitUntil(panel.regen_idle, timeout=10_000)
