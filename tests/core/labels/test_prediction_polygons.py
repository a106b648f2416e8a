"""Polygons of a prediction: valid, MultiPolygon layers, independent of the chunk size, and
the mask back when rasterized (a real Landsat scene thresholded as a stand-in prediction)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely

from casdesk.core.labels.io import rasterize_polygons, write_vector_labels
from casdesk.core.raster.outputs import encode_probability, vectorize_prediction


@pytest.fixture(scope="module")
def prediction(tmp_path_factory, public_data: Path) -> tuple[Path, Path, np.ndarray, np.ndarray, dict]:
    """prob = a normalised band of RGB.byte.tif (real texture, ragged edges, nodata frame)."""
    out = tmp_path_factory.mktemp("pred")
    with rasterio.open(public_data / "RGB.byte.tif") as ds:
        window = rasterio.windows.Window(200, 150, 220, 200)
        band = ds.read(1, window=window).astype(np.float32)
        valid = ds.read_masks(1, window=window) > 0
        profile = {"driver": "GTiff", "width": 220, "height": 200, "count": 1, "dtype": "uint8",
                   "crs": ds.crs, "transform": ds.window_transform(window), "nodata": 255}
    prob = np.clip((band - 20) / 60, 0, 1)
    stored = encode_probability(prob, valid)
    mask = np.where(valid, (prob > 0.5).astype(np.uint8), 255).astype(np.uint8)
    with rasterio.open(out / "prob.tif", "w", **profile) as dst:
        dst.write(stored[None])
    with rasterio.open(out / "mask.tif", "w", **profile) as dst:
        dst.write(mask[None])
    return out / "mask.tif", out / "prob.tif", mask, stored, profile


def test_valid_chunk_independent_and_area_conserving(prediction, tmp_path: Path) -> None:
    mask_path, prob_path, mask, stored, profile = prediction
    ones = mask == 1
    assert 50 < int(ones.sum()) < ones.size * 0.9 and (mask == 255).any()
    results = [vectorize_prediction(mask_path, prob_path, chunk_rows=c) for c in (16, 100_000)]
    first = results[0]
    assert len(first.geometries) > 20
    for res in results[1:]:
        assert len(res.geometries) == len(first.geometries)
        assert all(shapely.equals(a, b) for a, b in zip(res.geometries, first.geometries, strict=True))
        np.testing.assert_allclose(res.mean_prob, first.mean_prob)
    assert all(g.is_valid and g.geom_type == "MultiPolygon" for g in first.geometries)
    pixel_area = abs(profile["transform"].determinant)
    assert np.isclose(sum(first.area_m2), ones.sum() * pixel_area)  # no area lost or gained
    back = rasterize_polygons(first.geometries, mask.shape, profile["transform"])
    np.testing.assert_array_equal(back == 1, ones)  # the polygons give the mask back
    # mean_prob of each polygon is the mean over its own pixels
    for g, m in list(zip(first.geometries, first.mean_prob, strict=True))[:25]:
        own = rasterize_polygons([g], mask.shape, profile["transform"]).astype(bool) & ones
        assert np.isclose(m, stored[own].astype(float).mean() / 254, atol=1e-6)
    # written as a MultiPolygon layer
    out = write_vector_labels(first.geometries, tmp_path / "p.gpkg", profile["crs"].to_wkt(),
                              {"mean_prob": first.mean_prob})
    assert pyogrio.read_info(out)["geometry_type"] == "MultiPolygon"
    # the minimum-area filter works on whole components, whatever the chunking
    big = [vectorize_prediction(mask_path, prob_path, chunk_rows=c, min_area_m2=20 * pixel_area) for c in (16, 100_000)]
    assert len(big[0].geometries) == len(big[1].geometries) < len(first.geometries)
    assert np.isclose(sum(big[0].area_m2), sum(big[1].area_m2))
