"""QC of tiles that are not 8-bit: measured with one stretch per scene, not per tile.

A 12-bit-in-16 4-band scene is made from released tiles (their 8-bit values x 16 + 100,
the green band x 20 + 50 as a near-infrared fourth band), added to a project and cropped
into 512 px tiles the way a user would; the QC scan must judge each tile as the released
8-bit tile is judged. Stretched tile by tile, the low-contrast tiles' texture was
amplified: Palu0117 (kept by the authors, 19.6 as released) scored 47.0 and was rejected;
see casdesk.core.qc.stretch and docs/qc.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from casdesk.core.dataset.scenes import add_scene
from casdesk.core.dataset.tiling import CropParams, crop_scene
from casdesk.core.jobs import run_job
from casdesk.core.project.catalog import Catalog
from casdesk.core.qc import evalset
from casdesk.core.qc.detectors import TileData, seam_score
from casdesk.core.qc.rules import compute_metrics
from casdesk.core.qc.stretch import scene_limits
from casdesk.core.qc.table import load_table

ROWS, COLS = 4, 6


def _scene16(public: Path, path: Path) -> tuple[list[str], list[np.ndarray]]:
    """Write a 4 x 6 mosaic of the released tiles (all 22, then the first two again) as a
    4-band uint16 GeoTIFF; their names and 8-bit pixels. The mosaic's 2-98 % range per band
    is the full 8-bit range (100-4180), so the scene's stretch gives the 8-bit tiles back."""
    sources = evalset.find_sources(public)
    if len(sources) < 20:
        pytest.skip("released tiles not found")
    chosen = (sources + sources)[: ROWS * COLS]
    tiles = [evalset.read_rgb(p) for p in chosen]
    mosaic = np.zeros((3, ROWS * 512, COLS * 512), np.uint8)
    for k, img in enumerate(tiles):
        r, c = divmod(k, COLS)
        mosaic[:, r * 512 : (r + 1) * 512, c * 512 : (c + 1) * 512] = img
    data = np.concatenate([mosaic.astype(np.uint16) * 16 + 100, (mosaic[1].astype(np.uint16) * 20 + 50)[None]])
    profile = {"driver": "GTiff", "width": COLS * 512, "height": ROWS * 512, "count": 4, "dtype": "uint16", "tiled": True}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return [p.stem for p in chosen], tiles


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_tiles_of_a_16_bit_scene_are_judged_as_their_8_bit_originals(
    tmp_path: Path, public_data: Path, processes: bool
) -> None:
    names, tiles8 = _scene16(public_data, tmp_path / "scene16.tif")
    limits = scene_limits(tmp_path / "scene16.tif")
    assert limits is not None and np.array_equal(limits[:3], [[100, 4180]] * 3)
    cat = Catalog.create(tmp_path / "p.casdesk")
    try:
        added = add_scene(cat, tmp_path / "scene16.tif", sensor="SAT")
        ids = run_job(crop_scene(cat, added.scene_id, CropParams(512, 512, "shift")))
        assert len(ids) == ROWS * COLS
        run_job(compute_metrics(cat, metrics=["seam_score"], processes=processes, workers=2))
        table = load_table(cat)
        seam = table.metrics["seam_score"]
        for tile in cat.tiles(ids=ids):
            k = (tile.row_off // 512) * COLS + tile.col_off // 512
            original = seam_score(TileData(tiles8[k], np.ones((512, 512), bool)))
            got = float(seam[table.rows([tile.id])[0]])
            # stretched tile by tile: Palu0117 47.0 (rejected), 8 of the 22 flagged instead of 2
            assert got == pytest.approx(original, abs=0.05), names[k]
            assert got <= 20.5 + 6, names[k]
    finally:
        cat.close()


def test_a_tile_stretched_on_its_own_reads_differently(public_data: Path) -> None:
    """The defect itself: the same pixels, stretched by their own 2-98 % range, give Palu0117
    a seam score above the rule (so the test above can fail)."""
    path = next((p for p in evalset.find_sources(public_data) if p.stem == "Palu0117"), None)
    if path is None:
        pytest.skip("Palu0117 not found")
    img = evalset.read_rgb(path)
    d16 = np.concatenate([img.astype(np.uint16) * 16 + 100, (img[1].astype(np.uint16) * 20 + 50)[None]])
    own = seam_score(TileData(np.ascontiguousarray(d16), np.ones((512, 512), bool)))
    limits = np.array([[100.0, 4180.0]] * 3 + [[50.0, 5150.0]])
    scene = seam_score(TileData(np.ascontiguousarray(d16), np.ones((512, 512), bool), display_limits=limits))
    assert own > 26.5
    assert scene == pytest.approx(seam_score(TileData(img, np.ones((512, 512), bool))), abs=0.01)


def test_scene_limits_sample_the_whole_scene(tmp_path: Path) -> None:
    """Bright only in its last rows: the sampled windows reach them; an 8-bit scene has none."""
    data = np.full((2, 1000, 700), 1000, np.uint16)
    data[:, 900:] = 30000
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", width=700, height=1000, count=2, dtype="uint16") as ds:
        ds.write(data)
    limits = scene_limits(tmp_path / "s.tif")
    assert limits is not None and limits.shape == (2, 2)
    assert limits[0, 0] == 1000 and limits[0, 1] == 30000
    with rasterio.open(tmp_path / "b.tif", "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8") as ds:
        ds.write(np.zeros((3, 64, 64), np.uint8))
    assert scene_limits(tmp_path / "b.tif") is None


def test_scene_limits_follow_a_rewritten_scene(tmp_path: Path) -> None:
    """Sampled once per file version: a scene rewritten in place gets new limits."""
    import os

    path = tmp_path / "s.tif"
    for k, value in enumerate((1000, 5000)):
        data = np.full((1, 256, 256), value, np.uint16)
        data[:, :128] = value * 2
        with rasterio.open(path, "w", driver="GTiff", width=256, height=256, count=1, dtype="uint16") as ds:
            ds.write(data)
        os.utime(path, ns=(10**18 + k, 10**18 + k))  # a new modification time, whatever the clock's grain
        limits = scene_limits(path)
        assert limits is not None and limits[0].tolist() == [value, 2 * value]
