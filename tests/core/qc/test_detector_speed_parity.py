"""The fast QC detectors give exactly what the straightforward definitions give.

``fill_mask``, ``cloud_mask``, ``blur_score`` and the small copies were rewritten for speed
(issue 16: QC at the speed of reading): border-strip screening, flood fills from seeds,
work within bounding boxes, band-by-band range tests, a vectorised area reduction. The
reference implementations below are the plain definitions (whole-tile masks, labelling,
float copies); every case must match them exactly (fill masks pixel for pixel). The blur
reference follows blur_score's version 2 (a half-size copy: a changed definition, not a
speed-up). Fill version 4 judges every tile at full resolution again (version 3's half-size
copy, an approximation, lost real rotated footprint edges): every fill mask equals the
reference pixel for pixel.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio

from casdesk.core.qc import evalset
from casdesk.core.qc.cloud import (
    CLOUD_MAX_FINE_TEXTURE,
    CLOUD_MAX_SATURATION,
    CLOUD_MAX_TEXTURE,
    CLOUD_MAX_WARMTH,
    CLOUD_MIN_BRIGHT,
)
from casdesk.core.qc.detectors import (
    METRICS,
    WORK_SIZE,
    TileData,
    area_small,
    blur_score,
    cloud_fraction,
    fill_fraction,
    label_fraction,
    load_tile,
)
from casdesk.core.qc.fill import (
    FILL_LINE_PX,
    FILL_MIN_AREA,
    FILL_MIN_BORDER,
    FILL_SEGMENT_PX,
    FILL_STRAIGHT_SHARE,
    FILL_TOLERANCE,
    default_fill_values,
)
from casdesk.core.raster.io import to_display_rgb

from .conftest import PUBLIC, synthetic_rgb

# --------------------------------------------------------------------------- references
_DISC = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))


def _ref_fill(data: np.ndarray, valid: np.ndarray, has_mask: bool, fill_values=None) -> np.ndarray:
    if has_mask:
        return ~valid
    rows, cols = valid.shape
    fill = ~valid
    if data.dtype != np.uint8:
        lo, hi = data.min(axis=0), data.max(axis=0)
        for value in fill_values if fill_values is not None else default_fill_values(data.dtype):
            fill |= _ref_components((lo >= value) & (hi <= value), rows, cols)
        return fill
    bands = data[:3] if data.shape[0] >= 3 else np.repeat(data[:1], 3, axis=0)
    border = np.concatenate([bands[:, 0, :], bands[:, -1, :], bands[:, :, 0], bands[:, :, -1]], axis=1).astype(int)
    keys = (border[0] << 16) | (border[1] << 8) | border[2]
    uniq, counts = np.unique(keys, return_counts=True)
    colours = [(k >> 16, (k >> 8) & 255, k & 255) for k in uniq[counts >= FILL_MIN_BORDER].tolist()]

    def cloud_like(c: tuple[int, int, int]) -> bool:
        return sum(c) / 3 >= CLOUD_MIN_BRIGHT and max(c) - min(c) <= CLOUD_MAX_SATURATION * max(max(c), 1)

    colours = [c for c in colours if min(c) == max(c) == 255 or not cloud_like(c)]
    colours += [(int(v),) * 3 for v in fill_values or ()]
    hwc = np.ascontiguousarray(bands.transpose(1, 2, 0))
    for colour in dict.fromkeys(colours):
        lo = np.array([max(0, c - FILL_TOLERANCE) for c in colour])
        hi = np.array([min(255, c + FILL_TOLERANCE) for c in colour])
        fill |= _ref_components(np.all((hwc >= lo) & (hwc <= hi), axis=2), rows, cols)
    return fill


def _ref_components(cand: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols), bool)
    opened = cv2.morphologyEx(cand.astype(np.uint8), cv2.MORPH_OPEN, _DISC, borderType=cv2.BORDER_REPLICATE)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    yy, xx = np.mgrid[0:rows, 0:cols]
    for lab in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[lab])
        if area < FILL_MIN_AREA or not (x == 0 or y == 0 or x + w == cols or y + h == rows):
            continue
        comp = labels == lab
        contours, _ = cv2.findContours(np.pad(comp.astype(np.uint8), 1), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        poly = cv2.approxPolyDP(max(contours, key=len), 1.5, True)[:, 0, :].astype(np.float64) - 1.0
        nxt = np.roll(poly, -1, axis=0)
        lengths = np.hypot(*(nxt - poly).T)
        mid = (poly + nxt) / 2
        on_border = (mid[:, 0] <= 0.5) | (mid[:, 1] <= 0.5) | (mid[:, 0] >= cols - 1.5) | (mid[:, 1] >= rows - 1.5)
        inner = lengths[~on_border]
        share = 1.0 if len(poly) < 2 or inner.sum() < 1.0 else inner[inner >= FILL_SEGMENT_PX].sum() / inner.sum()
        if share >= FILL_STRAIGHT_SHARE:
            part = comp
        else:
            part = np.zeros_like(comp)
            for i in np.flatnonzero(~on_border & (lengths >= FILL_LINE_PX)):
                (x0, y0), (x1, y1) = poly[i], nxt[i]
                nx, ny = (y1 - y0) / lengths[i], -(x1 - x0) / lengths[i]
                px, py = int(round((x0 + x1) / 2 + 4 * nx)), int(round((y0 + y1) / 2 + 4 * ny))
                side = 1 if 0 <= px < cols and 0 <= py < rows and comp[py, px] else -1
                part |= comp & (((xx - x0) * (y1 - y0) - (yy - y0) * (x1 - x0)) * side >= 0)
            if not part.any():
                continue
        out |= cv2.dilate(part.astype(np.uint8), _DISC).astype(bool) & cand
    return out


def _ref_small(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The cloud detector's small copy (version 3): 2x2 means rounded half up while twice
    ``size`` fits and the sides are even, then the rest by an area resize; float32."""
    out = img.astype(np.int64)
    while out.shape[0] % 2 == 0 and out.shape[1] % 2 == 0 and out.shape[0] >= 2 * size[1] and out.shape[1] >= 2 * size[0]:
        out = (out[0::2, 0::2] + out[1::2, 0::2] + out[0::2, 1::2] + out[1::2, 1::2] + 2) // 4
    small = out.astype(np.uint8)
    if small.shape[:2] != (size[1], size[0]):
        small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
    return small.astype(np.float32)


def _ref_metrics(tile: TileData, fill: np.ndarray | None = None) -> dict[str, float]:
    """The reference metrics; ``fill``: the footprint's fill mask for the other metrics
    (default: the reference fill mask)."""
    ref_fill = _ref_fill(tile.data, tile.valid, tile.has_mask, tile.fill_values)
    fill = ref_fill if fill is None else fill
    foot = tile.valid & ~fill
    rgb = to_display_rgb(tile.data, foot)
    rows, cols = foot.shape
    size = (min(WORK_SIZE, cols), min(WORK_SIZE, rows))
    small = _ref_small(rgb, size)
    sfoot = cv2.resize(foot.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA) == 255
    # the display RGB halved once by 2x2 means (blur version 2's and cloud version 4's plane)
    half, hfoot = rgb, foot
    if rows % 2 == 0 and cols % 2 == 0 and rows >= 2 * WORK_SIZE and cols >= 2 * WORK_SIZE:
        half = _ref_small(rgb, (cols // 2, rows // 2)).astype(np.uint8)
        hfoot = foot[0::2, 0::2] & foot[1::2, 0::2] & foot[0::2, 1::2] & foot[1::2, 1::2]
    half_grey = cv2.cvtColor(half, cv2.COLOR_RGB2GRAY).astype(np.float32)
    hi, lo, lum = small.max(axis=2), small.min(axis=2), small.mean(axis=2)
    bright = lum >= CLOUD_MIN_BRIGHT
    grey = (hi - lo) <= CLOUD_MAX_SATURATION * np.maximum(hi, 1.0)
    texture = cv2.blur(np.abs(lum - cv2.GaussianBlur(lum, (5, 5), 0)), (3, 3))
    fine = cv2.resize(np.abs(half_grey - cv2.GaussianBlur(half_grey, (3, 3), 0)), size, interpolation=cv2.INTER_AREA)
    # warmth (R - B) / max <= 0.06, as whole numbers: 50 * (R - B) <= 3 * max
    cool = 50 * (small[..., 0] - small[..., 2]) <= round(CLOUD_MAX_WARMTH * 50) * hi
    seeds = bright & grey & (texture <= CLOUD_MAX_TEXTURE) & (fine <= CLOUD_MAX_FINE_TEXTURE) & cool & sfoot
    core = cv2.morphologyEx(seeds.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    cloud = cv2.dilate(core, np.ones((7, 7), np.uint8)).astype(bool) & bright & grey & sfoot
    # blur (version 2): the Laplacian of the luma of the half-size copy, over the half-size
    # pixels whose whole block is in the footprint, eroded by 1 px
    lap = cv2.Laplacian(half_grey.astype(np.uint8), cv2.CV_16S, ksize=3)
    inner = cv2.erode(hfoot.astype(np.uint8), np.ones((3, 3), np.uint8))
    blur = float(cv2.meanStdDev(lap, mask=inner)[1][0, 0] ** 2) if inner.any() else 0.0
    n = int(foot.sum())
    label = math.nan if tile.mask is None else (float((tile.mask.astype(bool) & foot).sum() / n) if n else 0.0)
    return {
        "fill_fraction": float(ref_fill.mean()),
        "cloud_fraction": float(cloud.sum() / sfoot.sum()) if sfoot.sum() else 0.0,
        "blur_score": blur,
        "label_fraction": label,
        "fill_mask": ref_fill,  # type: ignore[dict-item]
    }


def _check(tile: TileData) -> None:
    got = TileData(tile.data, tile.valid, tile.has_mask, tile.mask, tile.sensor, tile.fill_values)
    ref = _ref_metrics(TileData(tile.data, tile.valid, tile.has_mask, tile.mask, tile.sensor, tile.fill_values), got.fill)
    assert np.array_equal(got.fill, ref["fill_mask"])
    assert fill_fraction(got) == pytest.approx(ref["fill_fraction"], abs=1e-12)
    assert cloud_fraction(got) == pytest.approx(ref["cloud_fraction"], abs=1e-12)
    assert blur_score(got) == pytest.approx(ref["blur_score"], rel=1e-9, abs=1e-9)
    if tile.mask is None:
        assert math.isnan(label_fraction(got))
    else:
        assert label_fraction(got) == pytest.approx(ref["label_fraction"], abs=1e-12)


def _ones(img: np.ndarray) -> np.ndarray:
    return np.ones(img.shape[1:], bool)


# --------------------------------------------------------------------------- cases
def _released() -> list[Path]:
    return evalset.find_sources(PUBLIC)[::3]  # a third of them: the test stays fast


@pytest.mark.parametrize("path", _released(), ids=lambda p: p.name)
def test_released_tiles_match_the_reference(path: Path) -> None:
    img = evalset.read_rgb(path)
    _check(TileData(img, _ones(img), mask=(img[1] > img[2]).astype(np.uint8)))


@pytest.mark.parametrize("seed", range(6))
def test_pasted_fills_beside_scars_and_shadows_match_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = synthetic_rgb(512, seed)
    kind = ("wedge", "band")[seed % 2]
    value = ((255, 255, 255), (0, 0, 0), (112, 96, 80))[seed % 3]
    neighbour = ("scar", "shadow", None)[(seed // 2) % 3]
    img, truth = evalset.add_fill(base, rng, float(rng.uniform(0.05, 0.6)), kind, value, neighbour)
    tile = TileData(img, _ones(img))
    _check(tile)
    assert abs(fill_fraction(tile) - truth) <= 0.03  # and the detector still meets the goal


def test_many_border_regions_match_the_reference() -> None:
    """More than 254 regions touching the border (the flood fill's mask values wrap)."""
    img = synthetic_rgb(1024, 7)
    for i in range(0, 1024 - 40, 11):  # 10 px black teeth, 40 px deep, on every side
        img[:, :40, i : i + 10] = 0
        img[:, -40:, i : i + 10] = 0
        img[:, i : i + 10, :40] = 0
        img[:, i : i + 10, -40:] = 0
    img[:, 400:700, :200] = 255  # and a white band over some of them
    img = np.ascontiguousarray(img[:, :, :1023])
    tile = TileData(img, _ones(img))
    _check(tile)
    assert fill_fraction(tile) > 0.1  # the teeth are straight-edged: fill


@pytest.mark.parametrize("shape", [(16, 16), (20, 300), (300, 500), (257, 131)])
def test_small_and_odd_sized_tiles_match_the_reference(shape: tuple[int, int]) -> None:
    rows, cols = shape
    img = synthetic_rgb(max(shape), 3)[:, :rows, :cols].copy()
    img[:, : rows // 3, : cols // 2] = 255  # a corner of white fill
    _check(TileData(img, _ones(img)))


def test_band_counts_types_and_declared_masks_match_the_reference() -> None:
    img = synthetic_rgb(512, 11)
    img[:, :, :90] = 0  # a black band
    valid = _ones(img)
    valid[:40] = False
    _check(TileData(img[:1].copy(), _ones(img)))  # one band shown as grey
    _check(TileData(np.concatenate([img, img[:1]]), _ones(img)))  # four bands
    _check(TileData(img, valid, has_mask=True, mask=(img[0] > 90).astype(np.uint8)))
    _check(TileData(img.astype(np.uint16) * 40, _ones(img)))  # 16-bit: stretched
    _check(TileData(img, valid, fill_values=(0.0,)))


def test_area_small_is_cv2_area_resize() -> None:
    rng = np.random.default_rng(0)
    for shape, size in [((512, 512), (128, 128)), ((256, 1024), (256, 64)), ((300, 500), (128, 128))]:
        for plane in (
            rng.integers(0, 256, shape, dtype=np.uint8),
            (rng.integers(0, 4, shape) * 85).astype(np.uint8),  # ties of the rounding
            np.where(rng.random(shape) < 0.5, 255, 0).astype(np.uint8),
        ):
            ref = cv2.resize(plane, size, interpolation=cv2.INTER_AREA).astype(np.float32)
            assert np.array_equal(area_small(plane, size), ref)


@pytest.mark.parametrize("shape", [(512, 512), (1024, 512), (300, 500), (257, 131), (64, 64)])
def test_small_copy_matches_the_reference(shape: tuple[int, int]) -> None:
    rows, cols = shape
    img = synthetic_rgb(max(shape), 5)[:, :rows, :cols].copy()
    img[:, ::7, ::5] = 128  # ties of the 2x2 rounding
    size = (min(WORK_SIZE, cols), min(WORK_SIZE, rows))
    for tile in (TileData(img, _ones(img)), TileData(img[:1].copy(), _ones(img))):
        planes, _ = tile.small_planes
        ref = _ref_small(to_display_rgb(tile.data, tile.footprint), size)
        for i in range(3):
            assert np.array_equal(planes[i], ref[..., i])
    img[:, : rows // 3, : cols // 2] = 0  # a corner of black fill: zero outside the footprint
    tile = TileData(img, _ones(img))
    assert tile.fill.any()
    planes, foot = tile.small_planes
    ref = _ref_small(to_display_rgb(img, tile.footprint), size)
    for i in range(3):
        assert np.array_equal(planes[i], ref[..., i])
    assert np.array_equal(foot, cv2.resize(tile.foot8, size, interpolation=cv2.INTER_AREA) == 255)


def test_scan_gdal_options_still_find_an_external_mask(tmp_path: Path) -> None:
    """The scan reads without GDAL's folder listing; side-car masks are still found."""
    path = tmp_path / "tile.tif"
    img = synthetic_rgb(64, 2)
    mask = np.full((64, 64), 255, np.uint8)
    mask[:16] = 0
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False),
        rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8") as ds,
    ):
        ds.write(img)
        ds.write_mask(mask)
    assert (tmp_path / "tile.tif.msk").exists()
    tile = load_tile(path)  # GDAL does not list the folder (casdesk's default): the .msk still counts
    assert tile.has_mask
    assert METRICS["valid_fraction"].func(tile) == pytest.approx(0.75)
    assert fill_fraction(tile) == pytest.approx(0.25)
