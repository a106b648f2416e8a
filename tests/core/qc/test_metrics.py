"""QC detectors on the released CAS tiles and on synthetic traps built from them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from casdesk.core.qc.detectors import (
    METRICS,
    TileData,
    cloud_fraction,
    fill_fraction,
    label_fraction,
    seam_score,
    valid_fraction,
)
from casdesk.core.qc.rules import PAPER_DEFAULTS, SEAM_DEFAULT

from .conftest import real_tile, smooth_field

CLEAN = ["Hokkaido1238.tiff", "LongxiheSAT0459.tiff", "jiuzzhaigou_0.2m_UVA5388.tiff", "Haiti_Planet286.tiff"]


def tile(data: np.ndarray, **kw) -> TileData:
    return TileData(data, np.ones(data.shape[1:], bool), **kw)


# ---------------------------------------------------------------- fill
@pytest.mark.parametrize(
    ("name", "lo", "hi"),
    [
        ("Luding_1m_UAV325.tiff", 0.07, 0.10),  # white wedge + black saw-tooth wedge
        ("Haiti146.tiff", 0.06, 0.09),  # white strip on the left edge
        ("Hokkaido0017.tiff", 0.06, 0.09),  # white corner wedge
        ("Haiti_Planet286.tiff", 0.0, 0.005),  # black shadows reach the border: not fill
        ("jiuzzhaigou_0.2m_UVA0155.tif", 0.0, 0.005),  # saturated white river: not fill
        ("Hokkaido1238.tiff", 0.0, 0.0),
    ],
)
def test_fill_fraction_real_tiles(name: str, lo: float, hi: float) -> None:
    assert lo <= fill_fraction(tile(real_tile(name))) <= hi


def test_fill_ignores_saturated_scar_and_shadow_blobs_touching_the_border() -> None:
    data = real_tile("Hokkaido1238.tiff").copy()
    yy, xx = np.mgrid[0:512, 0:512]
    blob = smooth_field((512, 512), 3, 24)
    scar = (blob > 0.72) & (xx < 200)  # ragged saturated scar, touches the left edge
    shadow = (blob < 0.22) & (xx > 300)  # ragged black shadows, touch the right edge
    assert scar[:, 0].any() and shadow[:, -1].any()
    data[:, scar] = 255
    data[:, shadow] = 0
    assert scar.mean() + shadow.mean() > 0.05
    assert fill_fraction(tile(data)) < 0.01


def test_fill_counts_straight_wedges_and_declared_nodata() -> None:
    data = real_tile("Hokkaido1238.tiff").copy()
    yy, xx = np.mgrid[0:512, 0:512]
    wedge = xx + 0.6 * yy > 700  # a rotated scene footprint's corner
    data[:, wedge] = 255
    assert fill_fraction(tile(data)) == pytest.approx(wedge.mean(), abs=0.005)
    valid = ~(xx < 100)
    t = TileData(data, valid, has_mask=True)
    assert fill_fraction(t) == pytest.approx(0.0 + (xx < 100).mean())
    assert valid_fraction(t) == pytest.approx(valid.mean())


def test_fill_of_whole_blank_tile_is_one() -> None:
    assert fill_fraction(tile(np.full((3, 64, 64), 255, np.uint8))) == 1.0


# ---------------------------------------------------------------- label
def test_label_fraction() -> None:
    data = real_tile("Hokkaido1238.tiff")
    mask = np.zeros((512, 512), np.uint8)
    mask[:64, :64] = 1
    assert label_fraction(tile(data, mask=mask)) == pytest.approx(64 * 64 / 512**2)
    assert math.isnan(label_fraction(tile(data)))


# ---------------------------------------------------------------- cloud
def add_cloud(data: np.ndarray, seed: int, cover: float) -> tuple[np.ndarray, np.ndarray]:
    field = smooth_field(data.shape[1:], seed, 64)
    cut = np.quantile(field, 1 - cover)
    alpha = np.clip((field - cut) / 0.08, 0, 1)[None]  # opaque core, soft edge
    cloudy = data * (1 - alpha) + 235 * alpha
    return cloudy.astype(np.uint8), alpha[0] > 0.5


@pytest.mark.parametrize("name", ["Hokkaido1238.tiff", "LongxiheSAT0459.tiff", "Palu0117.tiff"])
@pytest.mark.parametrize("cover", [0.3, 0.9])
def test_cloud_fraction_synthetic_clouds(name: str, cover: float) -> None:
    cloudy, truth = add_cloud(real_tile(name), 7, cover)
    assert cloud_fraction(tile(cloudy)) == pytest.approx(truth.mean(), abs=0.1)


@pytest.mark.parametrize("name", CLEAN + ["Hokkaido0017.tiff", "Palu0117.tiff"])
def test_cloud_fraction_clear_real_tiles_low(name: str) -> None:
    assert cloud_fraction(tile(real_tile(name))) < 0.05


def test_cloud_fraction_bright_scar_tile_below_rule() -> None:
    # Mengdong: large bright bare-soil scars; counted partly, far below the 0.80 rule
    assert cloud_fraction(tile(real_tile("Mengdong0201.tiff"))) < 0.3


# ---------------------------------------------------------------- seam
def join(a: np.ndarray, b: np.ndarray, angle: float, gain: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """Left of a straight line from tile a, right of it from tile b with another exposure."""
    yy, xx = np.mgrid[0:512, 0:512]
    t = np.deg2rad(angle)
    side = (xx - 256) * np.cos(t) + (yy - 256) * np.sin(t) > 20
    out = a.astype(np.float32).copy()
    out[:, side] = np.clip(b[:, side].astype(np.float32) * gain + offset, 0, 255)
    return out.astype(np.uint8)


@pytest.mark.parametrize("angle", [0, 37, 90, 128])
def test_seam_score_joined_real_tiles(angle: float) -> None:
    a = real_tile("Hokkaido1238.tiff")
    b = real_tile("LongxiheSAT0459.tiff")
    c = real_tile("jiuzzhaigou_0.2m_UVA5388.tiff")
    assert seam_score(tile(join(b, a, angle, offset=35))) > SEAM_DEFAULT + 5
    assert seam_score(tile(join(c, a, angle, gain=1.4))) > SEAM_DEFAULT + 5


@pytest.mark.parametrize(
    "name", ["Hokkaido1238.tiff", "LongxiheSAT0459.tiff", "Hokkaido0017.tiff", "jiuzzhaigou_0.2m_UVA5388.tiff"]
)
def test_seam_score_seam_free_tiles_low(name: str) -> None:
    assert seam_score(tile(real_tile(name))) < 16


def test_seam_score_real_seam_reaches_the_rule() -> None:
    palu = next(r for r in PAPER_DEFAULTS if r.metric == "seam_score")
    # Palu0117 has a vertical mosaic seam: rejected or at least flagged for review
    assert seam_score(tile(real_tile("Palu0117.tiff"))) >= palu.threshold - palu.margin


def test_registry_entries_are_documented() -> None:
    for name, m in METRICS.items():
        assert m.name == name and m.version >= 1 and len(m.doc) > 40
        value = m.func(tile(real_tile("Hokkaido1238.tiff")))
        assert isinstance(value, float)
