"""Odd but legal data, and failures in the middle of a write.

Disk full during *export* is covered by tests/core/test_import_export.py
(test_export_disk_full_leaves_nothing); here is disk full during *crop*.
"""

from __future__ import annotations

import errno
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casdesk.core.dataset import tiling
from casdesk.core.dataset.importers import import_cas, import_labelme
from casdesk.core.dataset.scenes import add_scene
from casdesk.core.dataset.synthetic import make_scene
from casdesk.core.dataset.tiling import CropParams, crop_scene
from casdesk.core.errors import CasdeskError, OutputError
from casdesk.core.jobs import run_job
from casdesk.core.project import schema as schema_module
from casdesk.core.project.catalog import Catalog
from tests.support.tiles import write_raster

from .conftest import CliResult, assert_project_sound

# released CAS tiles and LabelMe images carry no georeferencing; that is expected here
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def test_cas_folder_with_mixed_tile_sizes_keeps_each_size(project: Catalog, tmp_path: Path) -> None:
    """Decision: a subdataset with 512- and 256-pixel tiles imports each tile with its own
    size (the released CAS tiles are 512, but user folders mix sizes; refusing the whole
    folder would help nobody). Each mask is checked against its own image's size."""
    sub = tmp_path / "ds" / "Mixed_SAT_3m"
    for name, size in (("big", 512), ("small", 256)):
        write_raster(sub / "img" / f"{name}.tif", np.full((3, size, size), 90, np.uint8))
        mask = np.zeros((1, size, size), np.uint8)
        mask[0, : size // 4] = 1
        write_raster(sub / "mask" / f"{name}.tif", mask)
    assert run_job(import_cas(project, tmp_path / "ds")) == 2
    sizes = {t.name: (t.width, t.height, t.label_pixels) for t in project.tiles()}
    assert sizes == {"big": (512, 512, 512 * 128), "small": (256, 256, 256 * 64)}

    # a mask that does not match its image is skipped and listed, naming the mask (the
    # folder's other tiles are imported: issue 13, batch imports keep going)
    write_raster(sub / "mask" / "small.tif", np.zeros((1, 512, 512), np.uint8))
    again = run_job(import_cas(project, tmp_path / "ds"))
    assert again == 1 and len(again.skipped) == 1
    path, reason = again.skipped[0]
    assert path == str(sub / "img" / "small.tif")
    assert "mask is 512x512 but its image is 256x256" in reason and str(sub / "mask" / "small.tif") in reason
    # only bad files: refused as a whole, naming the first
    write_raster(sub / "mask" / "big.tif", np.zeros((1, 64, 64), np.uint8))
    with pytest.raises(CasdeskError, match="no file could be imported .2 skipped.; big.tif: .*mask is 64x64"):
        run_job(import_cas(project, tmp_path / "ds"))


def test_16bit_4band_scene_crops_and_measures(project: Catalog, tmp_path: Path) -> None:
    """A uint16 4-band satellite product: tiles stay uint16 x 4 with the scene's values,
    and QC metrics and thumbnails work on them."""
    from casdesk.core.qc.rules import compute_metrics
    from casdesk.core.raster.thumbnails import decode_thumbnail

    scene = make_scene(tmp_path / "sat.tif", width=256, height=256, dtype="uint16", bands=4)
    sid = add_scene(project, scene.path).scene_id
    ids = run_job(crop_scene(project, sid, CropParams(128, 128)))
    assert len(ids) == 4
    with rasterio.open(scene.path) as src:
        window = src.read(window=((128, 256), (0, 128)))
    tile = next(t for t in project.tiles() if (t.row_off, t.col_off) == (128, 0))
    with rasterio.open(tile.image_path) as ds:
        assert ds.count == 4 and ds.dtypes == ("uint16",) * 4
        np.testing.assert_array_equal(ds.read(), window)
    assert window.max() > 255  # really 16-bit data, not uint8 in a uint16 box
    assert run_job(compute_metrics(project)) == 4
    thumb = decode_thumbnail(tile.image_path, tile.mask_path, 64)
    assert thumb.rgb.dtype == np.uint8 and thumb.rgb.std() > 0  # stretched, not a flat image


# ---------------------------------------------------------------------- LabelMe fuzzing
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_points = st.lists(st.lists(st.integers(-5, 40) | st.floats(-5, 40) | _json, min_size=0, max_size=3), max_size=6)
_shape = st.fixed_dictionaries(
    {"label": st.sampled_from(["landslide", "_background_", "scar"]) | _json, "points": _points | _json},
    optional={"shape_type": st.sampled_from(["polygon", "rectangle", "circle", "line", "point", "mask"]) | _json,
              "mask": _json, "group_id": _json, "flags": _json},
)
_doc = st.fixed_dictionaries(
    {},
    optional={"shapes": st.lists(_shape, max_size=3) | _json, "version": _json, "flags": _json,
              "imagePath": st.sampled_from(["img.png", "missing.png", "../img.png"]) | _json,
              "imageData": _json, "imageHeight": st.integers(-1, 40) | _json,
              "imageWidth": st.integers(-1, 40) | _json},
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Catalog]:
    root = tmp_path_factory.mktemp("fuzz")
    folder = root / "labelme"
    folder.mkdir()
    with rasterio.open(folder / "img.png", "w", driver="PNG", width=32, height=32, count=3, dtype="uint8") as ds:
        ds.write(np.full((3, 32, 32), 120, np.uint8))
    cat = Catalog.create(root / "fuzz.casdesk")
    yield folder, cat
    cat.close()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_doc | _json)
def test_fuzzed_labelme_through_the_importer(fuzz_dir: tuple[Path, Catalog], doc: object) -> None:
    """Whatever the JSON holds, importing the folder either works or raises a CasdeskError
    (never a KeyError/TypeError/... that the GUI would show as a crash)."""
    folder, cat = fuzz_dir
    (folder / "img.json").write_text(json.dumps(doc))
    try:
        run_job(import_labelme(cat, folder))
    except CasdeskError:
        return
    [tile] = cat.tiles(subdataset="labelme")
    with rasterio.open(tile.mask_path) as ds:
        assert set(np.unique(ds.read())) <= {0, 1}


# ---------------------------------------------------------------------- project files
def test_older_schema_project_is_migrated_by_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     cli: Callable[..., CliResult]) -> None:
    """A project from the previous casdesk opens in this one: its tiles are all there and
    the schema is upgraded in place (one transaction, so a crash leaves the old schema)."""
    project = tmp_path / "old.casdesk"
    cat = Catalog.create(project)
    cat.add_tiles([{"name": f"t{i}", "subdataset": "A", "image_path": f"/x/t{i}.tif", "width": 512,
                    "height": 512} for i in range(5)])
    cat.close()
    migrations = [*schema_module.MIGRATIONS, lambda db: db.executescript("CREATE TABLE extra (x INTEGER);")]
    monkeypatch.setattr(schema_module, "MIGRATIONS", migrations)
    monkeypatch.setattr(schema_module, "SCHEMA_VERSION", len(migrations))
    # a read-only command reads the older project as it is, without touching it
    before = project.read_bytes()
    result = cli("info", project, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["schema_version"] == len(migrations) - 1
    assert project.read_bytes() == before
    # the first command that writes migrates it, and every tile is still there
    result = cli("add-scene", project, make_scene(tmp_path / "s.tif", width=256, height=256).path)
    assert result.code == 0, result.err
    result = cli("info", project, "--json")
    summary = json.loads(result.out)
    assert summary["schema_version"] == len(migrations) and summary["tiles"] == 5
    with sqlite3.connect(project) as db:
        assert db.execute("SELECT COUNT(*) FROM extra").fetchone()[0] == 0


# ---------------------------------------------------------------------- disk full
def test_disk_full_during_crop(project: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills after 20 tile files: an OutputError naming the tile folder; every
    tile registered has whole files, the earlier crop's tiles are untouched, and cropping
    again once there is space completes the set."""
    scene = make_scene(tmp_path / "s.tif", width=512, height=512)
    sid = add_scene(project, scene.path).scene_id
    other = add_scene(project, make_scene(tmp_path / "o.tif", width=128, height=128, seed=3).path).scene_id
    kept = run_job(crop_scene(project, other, CropParams(64, 64)))
    real = tiling._atomic_write
    calls = {"n": 0}

    def filling(path: Path, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] > 20:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tiling, "_atomic_write", filling)
    with pytest.raises(OutputError, match="writing tiles failed: the disk is full") as info:
        run_job(crop_scene(project, sid, CropParams(64, 64), workers=2))
    assert info.value.path == project.data_dir / "tiles" / "s"
    assert "Traceback" not in str(info.value)
    cat = assert_project_sound(project.path)
    assert [t.id for t in cat.tiles(scene_id=other)] == kept
    partial = cat.tiles(scene_id=sid)
    assert len(partial) < 64
    cat.close()
    leftovers = [p for p in (project.data_dir / "tiles").rglob(".*.tmp")]
    assert leftovers == []

    monkeypatch.setattr(tiling, "_atomic_write", real)
    ids = run_job(crop_scene(project, sid, CropParams(64, 64)))
    assert len(ids) == 64 and {t.id for t in partial} <= set(ids)  # ids survive re-crop
