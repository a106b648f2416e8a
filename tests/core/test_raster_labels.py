from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio import features

from casdesk.core.errors import LabelError, RasterError
from casdesk.core.labels.io import (
    binarize_label_array,
    mask_to_cas_label,
    mask_to_polygons,
    rasterize_polygons,
    read_vector_labels,
    write_vector_labels,
)
from casdesk.core.raster.io import check_scene, raster_info, read_window, to_display_rgb


def test_check_scene_reads_real_landsat(public_data: Path):
    info = check_scene(public_data / "RGB.byte.tif")
    assert (info.width, info.height, info.count, info.dtype) == (791, 718, 3, "uint8")
    assert info.nodata == 0 and info.has_mask and info.georeferenced
    assert info.resolution_m() == pytest.approx(300.04, abs=0.01)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("corrupt.tif", "damaged"), ("all-nodata.tif", "every pixel is nodata"), ("missing.tif", "not found")],
)
def test_bad_scenes_raise_clear_errors(public_data: Path, name: str, reason: str):
    with pytest.raises(RasterError, match=reason) as err:
        check_scene(public_data / name)
    assert name in str(err.value)


def test_float_nan_nodata_is_invalid(public_data: Path):
    data, valid = read_window(public_data / "float_nan.tif")
    assert data.dtype == np.float32
    assert np.array_equal(valid, np.isfinite(data[0]))


def test_boundless_window_marks_outside_invalid(public_data: Path):
    from rasterio.windows import Window

    data, valid = read_window(public_data / "RGB.byte.tif", Window(700, 600, 200, 200))
    assert data.shape == (3, 200, 200)
    assert not valid[:, 91:].any() and not valid[118:, :].any()


def test_not_georeferenced_cas_tile(public_data: Path):
    info = raster_info(public_data / "cas_tiles" / "Haiti146.tiff")
    assert not info.georeferenced and info.crs_wkt is None and not info.has_mask


def test_display_stretch_16bit_is_nodata_aware():
    rng = np.random.default_rng(0)
    data = rng.integers(1000, 5000, size=(4, 64, 64), dtype=np.uint16)
    valid = np.ones((64, 64), bool)
    valid[:10] = False
    data[:, :10] = 0
    rgb = to_display_rgb(data, valid, bands=(2, 1, 0))
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert (rgb[:10] == 0).all()
    inner = rgb[10:]
    assert 0.01 < (inner == 0).mean() < 0.05 and 0.01 < (inner == 255).mean() < 0.05


def test_uint8_is_shown_unchanged():
    data = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    assert np.array_equal(to_display_rgb(data), np.moveaxis(data, 0, -1))


def test_rasterize_and_polygonize_round_trip():
    mask = np.zeros((60, 80), np.uint8)
    mask[10:40, 10:50] = 1
    mask[20:25, 20:25] = 0  # a hole
    polys = mask_to_polygons(mask)
    assert len(polys) == 1 and len(polys[0].interiors) == 1
    assert np.array_equal(rasterize_polygons(polys, mask.shape), mask)


def test_label_conventions():
    cas = mask_to_cas_label(np.array([[0, 1], [1, 0]], np.uint8))
    assert cas[:, 0, 1].tolist() == [0, 0, 0] and cas[:, 0, 0].tolist() == [255, 255, 255]
    assert binarize_label_array(cas).tolist() == [[0, 1], [1, 0]]
    red_on_black = np.zeros((3, 2, 2), np.uint8)
    red_on_black[0, 1, 1] = 255
    assert binarize_label_array(red_on_black).tolist() == [[0, 0], [0, 1]]
    assert binarize_label_array(np.array([[[0, 255]]], np.uint8)).tolist() == [[0, 1]]


def _independent_mask(public_data: Path) -> np.ndarray:
    import pyogrio.raw

    with rasterio.open(public_data / "RGB.byte.tif") as ds:
        _, _, wkb, _ = pyogrio.raw.read(public_data / "box.shp")
        return features.rasterize(shapely.from_wkb(wkb), out_shape=ds.shape, transform=ds.transform)


def test_vector_labels_from_box_shp_match_gdal(public_data: Path):
    info = raster_info(public_data / "RGB.byte.tif")
    labels = read_vector_labels(public_data / "box.shp", info)
    assert len(labels.labels) == 1
    ours = rasterize_polygons(labels.geometries, (info.height, info.width))
    assert np.array_equal(ours, _independent_mask(public_data))


def test_labels_in_another_crs_are_reprojected(public_data: Path, tmp_path: Path):
    from pyproj import Transformer

    info = raster_info(public_data / "RGB.byte.tif")
    import pyogrio.raw

    _, _, wkb, _ = pyogrio.raw.read(public_data / "box.shp")
    box = shapely.from_wkb(wkb)[0].segmentize(1000)
    tr = Transformer.from_crs("EPSG:32618", "EPSG:4326", always_xy=True)
    lonlat = shapely.transform(box, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    path = write_vector_labels([lonlat], tmp_path / "box4326.gpkg", "EPSG:4326", {"label": ["landslide"]})
    labels = read_vector_labels(path, info)
    assert any("reprojected" in m for m in labels.messages)
    ours = rasterize_polygons(labels.geometries, (info.height, info.width))
    ref = _independent_mask(public_data)
    iou = (ours & ref).sum() / (ours | ref).sum()
    assert iou > 0.99


def test_labels_outside_scene_warn(public_data: Path, tmp_path: Path):
    info = raster_info(public_data / "RGB.byte.tif")
    far = shapely.box(900_000, 100_000, 910_000, 110_000)
    path = write_vector_labels([far], tmp_path / "far.geojson", info.crs_wkt, {"label": ["landslide"]})
    labels = read_vector_labels(path, info)
    assert labels.labels == []
    assert any("outside the scene" in m for m in labels.messages)


def test_label_name_filter_and_missing_field(public_data: Path, tmp_path: Path):
    info = raster_info(public_data / "RGB.byte.tif")
    a, b = shapely.box(150_000, 2_700_000, 160_000, 2_710_000), shapely.box(200_000, 2_700_000, 210_000, 2_710_000)
    path = write_vector_labels([a, b], tmp_path / "two.gpkg", info.crs_wkt, {"class": ["landslide", "road"]})
    assert len(read_vector_labels(path, info, label_names=["landslide"]).labels) == 1
    with pytest.raises(LabelError, match="no attribute named"):
        read_vector_labels(path, info, label_field="kind")


def test_rotated_transform_labels(tmp_path: Path):
    t = Affine.translation(1000, 2000) @ Affine.rotation(30) @ Affine.scale(2, -2)
    path = tmp_path / "rot.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=t) as dst:
        dst.write(np.full((1, 64, 64), 50, np.uint8))
    info = check_scene(path)
    assert info.is_rotated
    px = shapely.box(10, 10, 30, 20)
    world = shapely.transform(px, lambda xy: np.array([t @ (x, y) for x, y in xy]))
    vec = write_vector_labels([world], tmp_path / "rot.gpkg", info.crs_wkt, {"label": ["landslide"]})
    labels = read_vector_labels(vec, info)
    assert labels.geometries[0].equals_exact(px, 1e-6) or labels.geometries[0].symmetric_difference(px).area < 1e-6
