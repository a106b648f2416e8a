"""Thumbnail decoding, overlays, the disk cache and its invalidation, the detail read."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from casdesk.core.raster import thumbnails as th
from tests.support.tiles import UTM18_HALF_M, blob_mask, write_raster


def test_decode_sizes_and_mask(tmp_path):
    rgb = np.full((3, 100, 50), 120, np.uint8)
    img = write_raster(tmp_path / "a.tif", rgb, UTM18_HALF_M)
    mask = write_raster(tmp_path / "m.tif", blob_mask(3, 100)[:, :, :50], UTM18_HALF_M)
    thumb = th.decode_thumbnail(img, mask, 64)
    assert thumb.rgb.shape == (64, 32, 3) and thumb.rgb.dtype == np.uint8
    assert thumb.mask is not None and thumb.mask.shape == (64, 32) and thumb.mask.any()
    assert th.decode_thumbnail(img, None, 512).rgb.shape == (100, 50, 3)  # never upsampled


def test_16bit_is_stretched(tmp_path):
    data = np.zeros((4, 64, 64), np.uint16)
    data[:, :, 32:] = 3000
    data[:, :, :32] = 1000
    thumb = th.decode_thumbnail(write_raster(tmp_path / "s.tif", data, UTM18_HALF_M), None, 64)
    assert thumb.rgb.min() == 0 and thumb.rgb.max() == 255


def test_overlay_fill_and_outline():
    rgb = np.zeros((32, 32, 3), np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 1
    fill = th.overlay_mask(rgb, mask, "fill", 1.0)
    assert (fill[16, 16] == th.OVERLAY_RGB).all() and (fill[0, 0] == 0).all()
    outline = th.overlay_mask(rgb, mask, "outline", 1.0)
    assert (outline[8, 16] == th.OVERLAY_RGB).all() and (outline[16, 16] == 0).all()
    half = th.overlay_mask(rgb, mask, "fill", 0.5)
    assert 120 <= half[16, 16, 0] <= 135
    assert (th.overlay_mask(rgb, None, "fill", 1.0) == rgb).all()
    with pytest.raises(ValueError):
        th.overlay_mask(rgb, mask, "hatch", 1.0)


def test_disk_cache_hit_and_invalidation(tmp_path, monkeypatch):
    img = write_raster(tmp_path / "a.tif", np.full((3, 64, 64), 90, np.uint8), UTM18_HALF_M)
    mask_path = write_raster(tmp_path / "m.tif", blob_mask(0), UTM18_HALF_M)
    cache = th.ThumbnailCache(tmp_path / "thumbs")
    calls = []
    real = th.decode_thumbnail
    monkeypatch.setattr(th, "decode_thumbnail", lambda *a: calls.append(a) or real(*a))
    first = cache.load(7, "2024-01-01T00:00:00", 64, img, mask_path)
    again = cache.load(7, "2024-01-01T00:00:00", 64, img, mask_path)
    assert len(calls) == 1 and np.abs(again.rgb.astype(int) - first.rgb).max() <= 8  # JPEG
    assert first.mask is not None and not first.mask.any()
    files = list((tmp_path / "thumbs").rglob("7-*.thumb"))
    assert len(files) == 1

    write_raster(mask_path, blob_mask(4), UTM18_HALF_M)  # the mask is regenerated, same second
    changed = cache.load(7, "2024-01-01T00:00:00", 64, img, mask_path)
    assert len(calls) == 2 and changed.mask is not None and changed.mask.any()
    newer = cache.load(7, "2024-01-01T00:00:09", 64, img, mask_path)  # touch_tile
    assert len(calls) == 3 and (newer.mask == changed.mask).all()
    assert len(list((tmp_path / "thumbs").rglob("7-*.thumb"))) == 1  # old versions deleted


def test_read_tile_view_with_scene_context(tmp_path):
    scene = np.arange(3 * 200 * 300, dtype=np.uint16).reshape(3, 200, 300) % 4000
    transform = Affine(2.0, 0, 1000.0, 0, -2.0, 5000.0)
    scene_path = write_raster(tmp_path / "scene.tif", scene, UTM18_HALF_M, transform=transform)
    r0, c0 = 150, 10  # near the bottom edge: the context runs past it
    tile = scene[:, r0 : r0 + 40, c0 : c0 + 40]
    tile_path = write_raster(tmp_path / "t.tif", tile, UTM18_HALF_M, transform=transform * Affine.translation(c0, r0))
    mask_path = write_raster(tmp_path / "tm.tif", blob_mask(2, 40), UTM18_HALF_M)
    view = th.read_tile_view(tile_path, mask_path, None, scene_path, (r0, c0), context_px=20)
    assert view.from_scene and view.data.shape == (3, 80, 80)
    assert view.tile_box == (20, 20, 40, 40)
    assert (view.data[:, 20:60, 20:60] == tile).all()
    assert not view.valid[-1].any()  # past the scene's bottom edge
    assert view.valid[0, 10:].all() and not view.valid[0, :10].any()  # and its left edge
    assert view.mask is not None and view.mask[20:60, 20:60].sum() == blob_mask(2, 40).sum()
    assert view.map_xy(20, 20) == pytest.approx(transform * (c0, r0))
    alone = th.read_tile_view(tile_path, mask_path)
    assert not alone.from_scene and alone.data.shape == (3, 40, 40)


def test_damaged_cache_file_is_redecoded(tmp_path):
    img = write_raster(tmp_path / "a.tif", np.full((3, 64, 64), 90, np.uint8), UTM18_HALF_M)
    cache = th.ThumbnailCache(tmp_path / "thumbs")
    cache.load(3, "t", 64, img, None)
    (path,) = (tmp_path / "thumbs").rglob("3-*.thumb")
    path.write_bytes(b"garbage")
    assert cache.get(3, "t", 64, th.file_stamp(img, None)) is None
    assert cache.load(3, "t", 64, img, None).rgb.shape == (64, 64, 3)


def test_confusion_colours():
    label = np.array([[1, 1, 0, 0]], np.uint8)
    pred = np.array([[1, 0, 1, 0]], np.uint8)
    rgba = th.confusion_rgba(label, pred)
    assert rgba[0, 0, 1] > 150 and rgba[0, 1, 2] > 200 and rgba[0, 2, 0] > 200 and rgba[0, 3, 3] == 0
