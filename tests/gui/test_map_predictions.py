"""The Map tab's prediction overlay: a model's stored tile predictions drawn over the scene's
footprint (probability or mask), switched on and off, with its legend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from casdesk.core.project.catalog import Catalog, utc_now
from casdesk.core.project.stores.predictions import PredictionRow
from casdesk.core.raster.outputs import PROB_NODATA
from casdesk.gui.map import layout as lay


def _write(path: Path, value: int, shape: tuple[int, int], nodata: int | None) -> Path:
    profile = {"driver": "GTiff", "width": shape[1], "height": shape[0], "count": 1, "dtype": "uint8"}
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.full((1, *shape), value, np.uint8))
    return path


@pytest.fixture()
def predicted_scene(tmp_path: Path, public_data: Path) -> tuple[Path, dict[str, int]]:
    """A georeferenced scene cropped to 256 px tiles; model "m" predicted three of them:
    probability 1 (mask 1), probability 0 (mask 0), and one whose files are gone."""
    from casdesk.core.dataset.scenes import add_scene
    from casdesk.core.dataset.tiling import CropParams, crop_scene
    from casdesk.core.jobs import run_job

    with Catalog.create(tmp_path / "geo.casdesk") as cat:
        added = add_scene(cat, public_data / "RGB.byte.tif", sensor="SAT")
        run_job(crop_scene(cat, added.scene_id, CropParams(256, 256, "shift")))
        tiles = sorted(cat.tiles(), key=lambda t: t.id)
        hot, cold, lost = tiles[0], tiles[len(tiles) // 2], tiles[-1]
        out = tmp_path / "pred"
        out.mkdir()
        rows = []
        for tile, p, m in ((hot, 254, 1), (cold, 0, 0), (lost, 254, 1)):
            shape = (tile.height, tile.width)
            prob = _write(out / f"{tile.id}_prob.tif", p, shape, PROB_NODATA)
            mask = _write(out / f"{tile.id}_mask.tif", m, shape, None)
            rows.append(PredictionRow(tile.id, "m", cat.store_path(mask), cat.store_path(prob), None, None, utc_now()))
        cat.predictions.upsert(rows)
        for suffix in ("prob", "mask"):
            (out / f"{lost.id}_{suffix}.tif").unlink()
        ids = {"hot": hot.id, "cold": cold.id, "lost": lost.id, "plain": tiles[1].id}
    return tmp_path / "geo.casdesk", ids


def _overlay_pixel(panel, tile_id: int) -> tuple[int, int, int, int]:
    """The overlay's RGBA at the centre of a tile."""
    point = panel.tile_scene_point(tile_id)
    (image,) = [i for i in panel.predictions.overlay.images if i is not None]
    x0, y0, x1, y1 = image.rect
    h, w = image.rgba.shape[:2]
    col = int((point.x() - x0) / (x1 - x0) * w)
    row = int((point.y() - y0) / (y1 - y0) * h)
    return tuple(int(v) for v in image.rgba[row, col])  # type: ignore[return-value]


def test_prediction_overlay_over_the_scene(qtbot, predicted_scene) -> None:
    from casdesk.gui.map.panel import MapPanel
    from casdesk.gui.shell.context import ProjectContext

    project, ids = predicted_scene
    context = ProjectContext()
    panel = MapPanel(context)
    qtbot.addWidget(panel)
    panel.resize(1000, 700)
    panel.show()
    overlay = panel.predictions
    try:
        context.open(project)
        # the open's cleanup may announce a runs change, which reloads the map: let it pass
        qtbot.waitUntil(context.cleanup_finished, timeout=20_000)
        qtbot.waitUntil(lambda: panel.data is not None and not panel.is_loading(), timeout=20_000)
        qtbot.waitUntil(lambda: overlay.model.count() == 1 and not overlay.is_loading(), timeout=10_000)
        assert overlay.show.isEnabled() and not overlay.show.isChecked() and overlay.items() == []
        assert overlay.legend.isHidden()  # the legend comes with the overlay
        overlay.show.setChecked(True)
        qtbot.waitUntil(lambda: overlay.overlay is not None, timeout=20_000)
        shown = overlay.overlay
        assert shown is not None and shown.kind == "prob" and shown.model == "m"
        assert shown.tiles == 2 and shown.missing == 1
        assert "1 file(s) not found" in overlay.status.text()
        (item,) = overlay.items()
        assert item.isVisible() and item.zValue() > 0
        assert not overlay.legend.isHidden() and not overlay.legend.pixmap().isNull()
        # probability 1: opaque red; probability 0 and tiles without a prediction: transparent
        r, g, b, a = _overlay_pixel(panel, ids["hot"])
        assert (r, a) == (255, 255) and g < 10
        assert _overlay_pixel(panel, ids["cold"])[3] == 0
        assert _overlay_pixel(panel, ids["plain"])[3] == 0
        # drawn over the scene's footprint: the overlay raster is the block's
        assert panel.data is not None
        (block,) = panel.data.layout.blocks
        assert item.pos().x() == pytest.approx(block.bounds[0]) and item.pos().y() == pytest.approx(block.bounds[1])
        assert item.sceneBoundingRect().width() == pytest.approx(block.width, rel=1e-6)

        overlay.kind.setCurrentText("Mask")
        overlay.kind.activated.emit(overlay.kind.currentIndex())
        qtbot.waitUntil(lambda: overlay.overlay is not None and overlay.overlay.kind == "mask", timeout=20_000)
        from casdesk.gui.predict.view import MASK_RGB

        assert _overlay_pixel(panel, ids["hot"]) == (*MASK_RGB, 255)
        assert _overlay_pixel(panel, ids["cold"])[3] == 0

        overlay.show.setChecked(False)  # off: hidden, controls and legend too
        assert not any(i.isVisible() for i in overlay.items()) and overlay.legend.isHidden()
        overlay.show.setChecked(True)  # on again: the same images, no new read
        assert all(i.isVisible() for i in overlay.items()) and not overlay.is_loading()

        context.close()
        assert overlay.items() == [] and not overlay.show.isEnabled()
    finally:
        panel.shutdown()
        context.close()


def test_compose_keeps_each_tiles_core_where_tiles_overlap(tmp_path: Path) -> None:
    """Two overlapping tiles (stride half the size): each draws the half nearest its centre."""
    from casdesk.core.dataset import tile_table as ti
    from casdesk.gui.map.predictions import compose_block

    index = ti.synthetic_index(2)
    block = lay.Block("scene", "s", np.arange(2), np.array([0.0, 50.0]), np.array([0.0, 0.0]),
                      np.array([100.0, 150.0]), np.array([100.0, 100.0]), (0.0, 0.0, 150.0, 100.0))
    files = {int(index.ids[0]): _write(tmp_path / "a.tif", 254, (100, 100), PROB_NODATA),
             int(index.ids[1]): _write(tmp_path / "b.tif", 0, (100, 100), PROB_NODATA)}
    image, drawn, missing = compose_block(block, index, files, "prob")
    assert image is not None and (drawn, missing) == (2, 0)
    h, w = image.rgba.shape[:2]
    alpha = image.rgba[h // 2, :, 3]
    assert alpha[: int(w * 0.45)].min() == 255  # tile a's own part
    assert alpha[int(w * 0.55):].max() == 0  # tile b's (probability 0)
    none, drawn, _ = compose_block(block, index, {}, "prob")
    assert none is None and drawn == 0
