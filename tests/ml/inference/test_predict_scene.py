"""Whole-scene inference: georeferencing, nodata, blending, edges, vectors, AOI, TTA, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine

from casdesk.core.errors import Cancelled
from casdesk.core.jobs import CancelToken, run_job
from casdesk.core.labels.io import rasterize_polygons
from casdesk.core.raster.outputs import (
    PROB_NODATA,
    blend_ramp,
    decode_probability,
    window_starts,
)
from casdesk.ml.inference.scene import PredictionError, predict_scene
from tests.support.tiles import UTM33_2M, scar_scene, write_raster


def _read(path: Path) -> tuple[np.ndarray, rasterio.profiles.Profile]:
    with rasterio.open(path) as ds:
        return ds.read(1), ds.profile


def test_window_grid_covers_with_margin():
    for length in (1, 63, 64, 65, 200, 791):
        for size, overlap in ((64, 0), (64, 16), (64, 32), (128, 127)):
            starts = window_starts(length, size, overlap)
            assert starts[0] == -(overlap // 2)
            assert starts[-1] + size >= length + overlap // 2
            assert all(b - a == size - overlap for a, b in zip(starts, starts[1:]))


def test_blend_ramps_sum_to_one():
    size, overlap = 64, 24
    w = blend_ramp(size, overlap)
    assert w.min() > 0 and w.max() == 1.0
    total = np.zeros(size * 4)
    for s in range(0, size * 3, size - overlap):
        total[s : s + size] += w
    assert np.allclose(total[overlap : size * 2], 1.0, atol=1e-6)


def test_real_scene_keeps_grid_and_nodata(shared_scene, bright_predictor, tmp_path):
    res = run_job(predict_scene(bright_predictor, shared_scene, tmp_path, overlap=32, tile_size=128,
                                check_values=False))
    with rasterio.open(shared_scene) as src:
        footprint = src.dataset_mask() > 0
        crs, transform, shape = src.crs, src.transform, src.shape
    for path in (res.prob_path, res.mask_path):
        with rasterio.open(path) as ds:
            assert ds.crs == crs and ds.transform == transform and ds.shape == shape
            assert ds.nodata == 255 and ds.profile["tiled"] and ds.compression is not None
            assert ds.overviews(1), "overviews are built"
            data = ds.read(1)
        assert (data[~footprint] == 255).all(), "the nodata border stays nodata"
        assert (data[footprint] != 255).all(), "every footprint pixel is predicted"
    assert res.windows_skipped > 0, "all-nodata windows are skipped"
    assert res.valid_pixels == int(footprint.sum())
    assert res.vector_path is not None and res.vector_path.exists()


@pytest.mark.parametrize(("h", "w", "tile", "overlap"), [(217, 300, 64, 24), (50, 41, 64, 32), (130, 97, 64, 0)])
def test_constant_model_gives_seam_free_map(tmp_path, h, w, tile, overlap, tools):
    image, _ = scar_scene(h, w, border=0)
    scene = write_raster(tmp_path / "s.tif", image, UTM33_2M)
    predictor = tools.make_predictor(tools.ConstantNet(0.3), tile=tile)
    res = run_job(predict_scene(predictor, scene, tmp_path / "out", overlap=overlap, vector=None,
                                prob_dtype="float32", check_values=False))
    prob, profile = _read(res.prob_path)
    assert prob.shape == (h, w) and profile["dtype"] == "float32"
    assert np.isfinite(prob).all()
    np.testing.assert_allclose(prob, 1 / (1 + math.exp(-0.3)), atol=1e-5)
    res8 = run_job(predict_scene(predictor, scene, tmp_path / "out8", overlap=overlap, vector=None,
                                 check_values=False))
    stored, _ = _read(res8.prob_path)
    assert np.unique(stored).tolist() == [round(254 / (1 + math.exp(-0.3)))]


def test_edges_match_whole_image_prediction(tmp_path, tools):
    """Scenes not a multiple of the tile: blended windows agree with one big forward pass."""
    import torch

    image, truth = scar_scene(203, 157, seed=3)
    scene = write_raster(tmp_path / "s.tif", image, UTM33_2M)
    predictor = tools.make_predictor(tools.BrightNet(), tile=64)
    res = run_job(predict_scene(predictor, scene, tmp_path / "o", overlap=32, vector=None,
                                prob_dtype="float32", check_values=False))
    prob, _ = _read(res.prob_path)
    x = torch.from_numpy(predictor.normalization.apply(image.astype(np.float32)))[None]
    with torch.inference_mode():
        ref = torch.sigmoid(predictor.model(x))[0, 0].numpy()
    inner = (slice(3, -3), slice(3, -3))
    assert np.abs(prob[inner] - ref[inner]).max() < 0.05
    mask, _ = _read(res.mask_path)
    assert ((mask == 1) == (ref > 0.5)).mean() > 0.995
    assert ((mask == 1) & (truth == 1)).sum() / ((mask == 1) | (truth == 1)).sum() > 0.9


def test_polygons_rasterize_back_to_the_mask(tmp_path, tools):
    image, _ = scar_scene(300, 260, seed=5, n=10, border=20)
    scene = write_raster(tmp_path / "s.tif", image, UTM33_2M, nodata=0)
    res = run_job(predict_scene(tools.make_predictor(tools.BrightNet()), scene, tmp_path / "o", overlap=16,
                                check_values=False))
    mask, profile = _read(res.mask_path)
    info = pyogrio.read_info(res.vector_path)
    assert set(info["fields"]) >= {"area_m2", "mean_prob", "scene", "model", "date"}
    meta, _, wkb, fields = pyogrio.raw.read(res.vector_path)
    geoms = shapely.from_wkb(wkb)
    assert len(geoms) == res.polygons > 0
    back = rasterize_polygons(list(geoms), mask.shape, profile["transform"])
    pred = mask == 1
    iou = (pred & (back == 1)).sum() / (pred | (back == 1)).sum()
    assert iou >= 0.99
    area = fields[list(meta["fields"]).index("area_m2")]
    assert np.isclose(area.sum(), pred.sum() * 4.0)  # 2 m pixels
    mean_prob = fields[list(meta["fields"]).index("mean_prob")]
    assert (mean_prob > 0.5).all() and (mean_prob <= 1).all()


def test_polygons_are_merged_across_vectorize_chunks(tmp_path, tools):
    from casdesk.core.raster.outputs import vectorize_prediction

    mask = np.zeros((100, 80), dtype=np.uint8)
    mask[20:70, 10:30] = 1
    mask[40:45, 12:15] = 0  # a hole
    mask[80:90, 50:60] = 1
    prob = np.where(mask == 1, 200, 10).astype(np.uint8)
    prob[20:45, 10:30] = 254  # the top part of the big polygon is surer
    path = write_raster(tmp_path / "m.tif", mask[None], UTM33_2M, nodata=255)
    ppath = write_raster(tmp_path / "p.tif", prob[None], UTM33_2M, nodata=255)
    whole = vectorize_prediction(path, ppath, chunk_rows=1000)
    chunked = vectorize_prediction(path, ppath, chunk_rows=16)
    assert len(whole.geometries) == len(chunked.geometries) == 2
    order = np.argsort([g.area for g in chunked.geometries])[::-1]
    big = chunked.geometries[order[0]]
    assert shapely.equals(max(whole.geometries, key=lambda g: g.area), big)
    assert len(shapely.get_parts(big)[0].interiors) == 1  # MultiPolygon features
    inside = mask[20:70, 10:30] == 1
    expected = prob[20:70, 10:30][inside].sum() / (inside.sum() * 254)
    assert np.isclose(chunked.mean_prob[order[0]], expected)
    assert np.isclose(sorted(whole.mean_prob), sorted(chunked.mean_prob)).all()
    assert np.isclose(chunked.mean_prob[order[1]], 200 / 254)


@pytest.mark.parametrize("fmt", ["shp", "geojson"])
def test_other_vector_formats(tmp_path, fmt, tools):
    image, _ = scar_scene(128, 128, seed=1)
    scene = write_raster(tmp_path / "s.tif", image, UTM33_2M, nodata=0)
    res = run_job(predict_scene(tools.make_predictor(tools.BrightNet()), scene, tmp_path / "o", overlap=16,
                                vector=fmt, min_area_m2=100.0, check_values=False))
    assert res.vector_path.suffix == {"shp": ".shp", "geojson": ".geojson"}[fmt]
    info = pyogrio.read_info(res.vector_path)
    if fmt == "geojson":
        data = json.loads(res.vector_path.read_text())
        x, y = shapely.geometry.shape(data["features"][0]["geometry"]).centroid.coords[0]
        assert 14 < x < 16 and 35 < y < 37, "GeoJSON is WGS-84 (UTM 33N around 15E, 36N)"
    else:
        assert "32633" in info["crs"]
    meta, _, _, fields = pyogrio.raw.read(res.vector_path)
    assert (fields[list(meta["fields"]).index("area_m2")] >= 100.0).all()


def test_aoi_limits_prediction(tmp_path, tools):
    image, _ = scar_scene(160, 160, seed=2)
    transform = Affine(2.0, 0, 500000.0, 0, -2.0, 4000000.0)
    scene = write_raster(tmp_path / "s.tif", image, UTM33_2M, nodata=0, transform=transform)
    box_px = shapely.box(20, 30, 100, 90)  # cols 20-100, rows 30-90
    box_map = shapely.affinity.affine_transform(box_px, [2.0, 0, 0, -2.0, 500000.0, 4000000.0])
    aoi = tmp_path / "aoi.gpkg"
    pyogrio.raw.write(aoi, geometry=shapely.to_wkb(np.array([box_map])), field_data=[], fields=[],
                      crs="EPSG:32633", driver="GPKG", geometry_type="Polygon")
    res = run_job(predict_scene(tools.make_predictor(tools.BrightNet()), scene, tmp_path / "o", overlap=16,
                                aoi=aoi, vector=None, check_values=False))
    prob, _ = _read(res.prob_path)
    inside = np.zeros(prob.shape, bool)
    inside[30:90, 20:100] = True
    assert (prob[~inside] == PROB_NODATA).all()
    assert (prob[inside] != PROB_NODATA).all()
    assert res.windows_skipped > 0


def test_tta_keeps_constant_and_similar(tmp_path, tools):
    image, _ = scar_scene(100, 120, seed=4)
    scene = write_raster(tmp_path / "s.tif", image, UTM33_2M)
    const = run_job(predict_scene(tools.make_predictor(tools.ConstantNet(-1.0)), scene, tmp_path / "c", overlap=16,
                                  tta=True, vector=None, prob_dtype="float32", check_values=False))
    np.testing.assert_allclose(_read(const.prob_path)[0], 1 / (1 + math.exp(1.0)), atol=1e-5)
    bright = tools.make_predictor(tools.BrightNet())
    a = run_job(predict_scene(bright, scene, tmp_path / "a", overlap=16, vector=None, check_values=False))
    b = run_job(predict_scene(bright, scene, tmp_path / "b", overlap=16, tta=True, vector=None, check_values=False))
    ma, mb = _read(a.mask_path)[0], _read(b.mask_path)[0]
    assert (ma == mb).mean() > 0.99 and b.tta


def test_band_count_mismatch_is_a_clear_error(tmp_path, tools):
    image, _ = scar_scene(64, 64)
    scene = write_raster(tmp_path / "s.tif", np.concatenate([image, image[:1]]), UTM33_2M, nodata=0)
    with pytest.raises(PredictionError, match="4 band.*trained on 3"):
        run_job(predict_scene(tools.make_predictor(tools.BrightNet()), scene, tmp_path / "o"))
    assert not list((tmp_path / "o").glob("*.tif"))


def test_values_unlike_training_data_are_refused(tmp_path, tools):
    image, _ = scar_scene(64, 64)
    scene = write_raster(tmp_path / "s.tif", image.astype(np.uint16) * 40 + 3000, UTM33_2M, nodata=0)
    with pytest.raises(PredictionError, match="far from the training"):
        run_job(predict_scene(tools.make_predictor(tools.BrightNet()), scene, tmp_path / "o"))
    run_job(predict_scene(tools.make_predictor(tools.BrightNet()), scene, tmp_path / "o", vector=None, check_values=False))


def test_cancel_leaves_no_outputs(tmp_path, tools):
    image, _ = scar_scene(200, 200)
    scene = write_raster(tmp_path / "s.tif", image, UTM33_2M, nodata=0)
    token = CancelToken()
    job = predict_scene(tools.make_predictor(tools.BrightNet()), scene, tmp_path / "o", overlap=16, cancel=token,
                        check_values=False, batch_size=1)
    next(job)
    next(job)
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(job)
    assert not [p for p in (tmp_path / "o").iterdir()]


def test_float_nan_scene_nodata(tmp_path, tools):
    image, _ = scar_scene(90, 70)
    data = image.astype(np.float32)
    data[:, :10, :] = np.nan
    scene = write_raster(tmp_path / "f.tif", data, UTM33_2M)
    res = run_job(predict_scene(tools.make_predictor(tools.BrightNet()), scene, tmp_path / "o", overlap=16,
                                vector=None, check_values=False))
    prob, _ = _read(res.prob_path)
    p, valid = decode_probability(prob)
    assert not valid[:10].any() and valid[10:].all()
