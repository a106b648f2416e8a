"""Fill on real boundary fill: tiles cut from the Landsat scene with its nodata flag
dropped, as the released CAS tiles are (their fill is a constant wedge where the rotated
scene footprint does not cover the tile, and they declare no nodata). The scene's own
dataset mask is the truth.

Fill version 3 searched and judged 8-bit tiles on a half-size copy with every size
halved, the polygon tolerance too; the scene's footprint edge is a staircase of whole
pixels (one step every 4 rows) at any scale, so at half the tolerance its straight edge
broke into short pieces: 13 of these 132 tiles lost their wedge (0.52 read as 0.02).
Version 4 judges at full resolution (docs/qc.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from casdesk.core.qc import evalset
from casdesk.core.qc.detectors import TileData, fill_fraction

PUBLIC = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "public"


def test_fill_of_tiles_cut_from_a_rotated_scene_matches_its_footprint() -> None:
    cases = evalset.scene_fill_cases(PUBLIC)  # 512, 256 and 128 px windows at half-window steps
    if not cases:
        pytest.skip(f"{evalset.SCENE_FILL_SOURCE} not found under {PUBLIC}")
    assert len(cases) == 132
    assert sum(c.truth["fill"] > 0.05 for c in cases) >= 40  # real wedges: many windows hold one
    values = evalset.measure_cases(cases, ("fill_fraction",))
    wrong = [
        (c.name, round(c.truth["fill"], 3), round(v["fill_fraction"], 3))
        for c, v in zip(cases, values, strict=True)
        if abs(v["fill_fraction"] - c.truth["fill"]) > 0.03
    ]
    assert not wrong


def test_a_16_bit_copy_of_a_released_tile_keeps_its_fill_strip() -> None:
    """A fill strip of any constant value held along the border is fill in 16 bits too (the
    released tiles' white strips x 16 + 100 = 4180, as a 12-bit sensor's saturated value
    would be); before, only 0 and 65535 were, and Haiti146's strip counted as cloud."""
    sources = {p.stem: p for p in evalset.find_sources(PUBLIC)}
    if not {"Haiti146", "Hokkaido0017", "Luding_1m_UAV325"} <= set(sources):
        pytest.skip("released tiles not found")
    for name in ("Haiti146", "Hokkaido0017", "Luding_1m_UAV325"):
        img = evalset.read_rgb(sources[name])
        d16 = np.concatenate([img.astype(np.uint16) * 16 + 100, (img[1].astype(np.uint16) * 20 + 50)[None]])
        eight = fill_fraction(TileData(img, np.ones((512, 512), bool)))
        sixteen = fill_fraction(TileData(np.ascontiguousarray(d16), np.ones((512, 512), bool)))
        assert eight > 0.07
        assert sixteen == pytest.approx(eight, abs=1e-9), name


@pytest.mark.parametrize("quality", [90, 75])
def test_fill_of_jpeg_compressed_geotiffs(tmp_path: Path, quality: int) -> None:
    """Released tiles written as JPEG-compressed GeoTIFFs (as drone orthomosaics often are)
    keep their fill strips; a wedge pasted beside a dark shadow is found too. JPEG's 8 px
    blocks ring along a straight edge: with the 2 DN tolerance and the 1.5 px polygon, the
    wedges of Hokkaido0017 and Luding_1m_UAV325 were lost at every quality (0.0 read, the
    white one then counted as cloud) and 58 of 88 pasted fills at quality 90 were wrong;
    ``load_tile`` now knows the file is JPEG-compressed (``TileData.lossy``)."""
    import rasterio

    from casdesk.core.qc.detectors import load_tile

    sources = {p.stem: p for p in evalset.find_sources(PUBLIC)}
    if not {"Hokkaido0017", "Luding_1m_UAV325", "Haiti146", "10183"} <= set(sources):
        pytest.skip("released tiles not found")
    images = {name: evalset.read_rgb(sources[name]) for name in ("Hokkaido0017", "Luding_1m_UAV325", "Haiti146")}
    rng = np.random.default_rng(3)
    pasted, truth = evalset.add_fill(evalset.read_rgb(sources["10183"]), rng, 0.35, "wedge", (0, 0, 0), "shadow")
    images["10183+wedge"] = pasted
    for name, img in images.items():
        path = tmp_path / f"{name}.tif"
        profile = {"driver": "GTiff", "width": 512, "height": 512, "count": 3, "dtype": "uint8",
                   "compress": "jpeg", "jpeg_quality": quality, "photometric": "ycbcr"}
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(img)
        tile = load_tile(path)
        assert tile.lossy
        expected = truth if name == "10183+wedge" else fill_fraction(TileData(img, np.ones((512, 512), bool)))
        assert expected > 0.07
        assert fill_fraction(tile) == pytest.approx(expected, abs=0.03), name
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=512, height=512, count=3, dtype="uint8", compress="deflate") as ds:
        ds.write(images["Haiti146"])
    assert not load_tile(plain).lossy
