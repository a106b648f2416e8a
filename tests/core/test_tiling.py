from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from casdesk.core.dataset.scenes import add_scene
from casdesk.core.dataset.tiling import CropParams, crop_scene, tile_windows
from casdesk.core.errors import TilingError
from casdesk.core.jobs import CancelToken, run_job
from casdesk.core.project.catalog import Catalog


@pytest.mark.parametrize(
    ("edge", "expected_cols"),
    [("shift", [0, 256, 512, 535]), ("pad", [0, 256, 512, 768]), ("drop", [0, 256, 512])],
)
def test_window_edge_policies(edge: str, expected_cols: list[int]):
    wins = tile_windows(791, 300, CropParams(256, 256, edge))
    cols = sorted({int(w.col_off) for w in wins})
    assert cols == expected_cols


def test_stride_256_gives_half_overlap():
    wins = tile_windows(1024, 512, CropParams(512, 256, "shift"))
    assert [int(w.col_off) for w in wins] == [0, 256, 512]


def test_crop_real_landsat_with_box_shp(project: Catalog, public_data: Path):
    added = add_scene(project, public_data / "RGB.byte.tif", labels=public_data / "box.shp")
    ids = run_job(crop_scene(project, added.scene_id, CropParams(256, 256, "shift")))
    assert len(ids) == 12  # 4 columns x 3 rows

    import pyogrio.raw
    import shapely
    from rasterio import features

    with rasterio.open(public_data / "RGB.byte.tif") as src:
        _, _, wkb, _ = pyogrio.raw.read(public_data / "box.shp")
        full_mask = features.rasterize(shapely.from_wkb(wkb), out_shape=src.shape, transform=src.transform)
        valid_full = src.dataset_mask() > 0
        for tile in project.tiles(ids=ids):
            window = Window(tile.col_off, tile.row_off, 256, 256)
            with rasterio.open(tile.image_path) as img:
                assert img.crs == src.crs
                assert img.transform.almost_equals(src.window_transform(window))
                assert img.nodata == 0
                assert np.array_equal(img.read(), src.read(window=window))
            with rasterio.open(tile.mask_path) as m:
                assert m.transform.almost_equals(src.window_transform(window))
                mask = m.read(1)
            expected = full_mask[tile.row_off:tile.row_off + 256, tile.col_off:tile.col_off + 256].copy()
            expected[~valid_full[tile.row_off:tile.row_off + 256, tile.col_off:tile.col_off + 256]] = 255  # nodata: ignore
            assert np.array_equal(mask, expected), tile.name
            with rasterio.open(tile.label_path) as lab:
                rgb = lab.read()
            assert rgb.shape == (3, 256, 256)
            assert np.array_equal(np.all(rgb == 0, axis=0), mask == 1)
            assert np.all((rgb == 0) | (rgb == 255))
            assert tile.label_pixels == int((mask == 1).sum())
    assert {t.name for t in project.tiles()} == {f"RGB.byte_256px_r{r:06d}_c{c:06d}" for r in (0, 256, 462) for c in (0, 256, 512, 535)}


def test_pad_tiles_mark_outside_as_nodata(project: Catalog, public_data: Path):
    added = add_scene(project, public_data / "RGB.byte.tif")
    ids = run_job(crop_scene(project, added.scene_id, CropParams(512, 512, "pad")))
    corner = next(t for t in project.tiles(ids=ids) if t.row_off == 512 and t.col_off == 512)
    with rasterio.open(corner.image_path) as ds:
        valid = ds.dataset_mask() > 0
    assert not valid[718 - 512:, :].any() and not valid[:, 791 - 512:].any()
    assert corner.valid_pixels == int(valid.sum())


def test_recrop_keeps_ids_and_removes_stale(project: Catalog, public_data: Path):
    sid = add_scene(project, public_data / "RGB.byte.tif").scene_id
    first = run_job(crop_scene(project, sid, CropParams(256, 256)))
    second = run_job(crop_scene(project, sid, CropParams(256, 256)))
    assert first == second and second.dropped_tiles == 0
    run_job(crop_scene(project, sid, CropParams(512, 512)))
    assert project.tile_count() == 4


def test_scene_smaller_than_a_tile(project: Catalog, public_data: Path):
    sid = add_scene(project, public_data / "float_nan.tif").scene_id
    with pytest.raises(TilingError, match="smaller than one 512-pixel tile"):
        run_job(crop_scene(project, sid))
    ids = run_job(crop_scene(project, sid, CropParams(8, 8, "pad")))
    assert len(ids) == 1


def test_cancel_stops_and_keeps_catalog_consistent(project: Catalog, public_data: Path):
    """A cancelled crop changes nothing in the catalog (a crop is a transaction); the
    next crop with the same parameters resumes it and keeps the tiles already written."""
    from casdesk.core.errors import Cancelled

    sid = add_scene(project, public_data / "RGB.byte.tif").scene_id
    token = CancelToken()
    job = crop_scene(project, sid, CropParams(64, 64), cancel=token, workers=1)
    next(job)
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(job)
    assert project.tiles() == []
    state, staged = project.query("SELECT state, (SELECT COUNT(*) FROM crop_staging) FROM scene_crops")[0]
    assert state == "interrupted" and staged > 0
    ids = run_job(crop_scene(project, sid, CropParams(64, 64)))
    assert len(ids) == 156 and ids.resumed == staged
    assert all(t.image_path.exists() and t.mask_path.exists() for t in project.tiles())


def test_16bit_four_band_scene(project: Catalog, tmp_path: Path):
    from casdesk.core.dataset.synthetic import make_scene

    scene = make_scene(tmp_path / "s16.tif", 600, 520, seed=1, dtype="uint16", bands=4)
    from casdesk.core.labels.io import write_vector_labels

    wkt = rasterio.crs.CRS.from_user_input(scene.crs).to_wkt()
    vec = write_vector_labels(scene.scars_crs, tmp_path / "s.gpkg", wkt, {"label": ["landslide"] * len(scene.scars_px)})
    sid = add_scene(project, scene.path, labels=vec, sensor="SAT").scene_id
    ids = run_job(crop_scene(project, sid, CropParams(256, 256)))
    tile = project.tiles(ids=ids)[0]
    with rasterio.open(tile.image_path) as ds:
        assert ds.count == 4 and ds.dtypes[0] == "uint16"
    assert sum(t.label_pixels for t in project.tiles()) > 0


def test_unwritable_tile_folder_is_a_clear_error(project: Catalog, public_data: Path):
    from casdesk.core.errors import OutputError

    sid = add_scene(project, public_data / "RGB.byte.tif").scene_id
    with pytest.raises(OutputError, match="cannot create the tile folders") as err:
        run_job(crop_scene(project, sid, CropParams(256, 256), out_root=Path("/proc/casdesk-tiles")))
    assert "/proc/casdesk-tiles" in str(err.value)
    assert project.tile_count() == 0
