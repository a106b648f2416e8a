"""Outputs people open elsewhere, and batch commands that keep going (issue 13, items 7-8).

* prediction rasters are Cloud-Optimized GeoTIFFs (layout checked IFD by IFD, see cog.py);
* a folder prediction with one bad scene predicts every other scene, lists the failure at
  the end and exits 2;
* released CAS tiles (no georeference) give one info line, not a warning per file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling

from casdesk.core.project.catalog import Catalog
from casdesk.core.raster.outputs import StripWriter, output_profile
from tests.support.tiles import UTM33_2M, noise_scene, write_raster

from .cog import cog_errors
from .conftest import CliResult

UTM = Affine(2.0, 0, 500000.0, 0, -2.0, 4000000.0)


def test_strip_writer_writes_a_valid_cog(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (700, 900)).astype(np.uint8)
    data[:40] = 255  # nodata rows
    writer = StripWriter(tmp_path / "prob.tif", output_profile(900, 700, "EPSG:32633", UTM, "uint8", 255),
                         Resampling.average)
    for r0 in range(0, 700, 100):
        writer.write_rows(data[r0:r0 + 100])
    path = writer.commit()
    assert cog_errors(path) == []
    with rasterio.open(path) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.nodata == 255 and ds.crs.to_epsg() == 32633 and ds.transform == UTM
        assert ds.overviews(1) == [2, 4]
        assert np.array_equal(ds.read(1), data)
    assert [p.name for p in tmp_path.iterdir()] == ["prob.tif"]  # no temporary file left


def test_the_cog_check_can_fail(tmp_path: Path) -> None:
    """What the writer did before: a GeoTIFF with overviews added after the image."""
    path = tmp_path / "old.tif"
    with rasterio.open(path, "w", **output_profile(900, 700, "EPSG:32633", UTM, "uint8", 255)) as ds:
        ds.write(np.zeros((1, 700, 900), np.uint8))
        ds.build_overviews([2, 4], Resampling.average)
    errors = cog_errors(path)
    assert any("after image data" in e or "not before" in e for e in errors), errors


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model file (U-Net, MobileNetV2, random weights, 64-pixel tiles)."""
    import torch

    from casdesk.ml.modelfile import save_model_file
    from casdesk.ml.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("unet", encoder="mobilenet_v2", in_channels=3, classes=1)
    meta = {"architecture": "unet", "encoder": "mobilenet_v2", "in_channels": 3, "bands": 3, "classes": 1,
            "threshold": 0.5, "tile_size": [64, 64], "resolution_m": [2.0],
            "normalization": {"mean": [80.0] * 3, "std": [40.0] * 3}}
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model_file(path, model, meta)
    return path


def test_folder_predict_keeps_going_after_a_bad_scene(tmp_path: Path, tiny_model: Path,
                                                      cli: Callable[..., CliResult]) -> None:
    folder = tmp_path / "scenes"
    folder.mkdir()
    write_raster(folder / "a.tif", noise_scene(300, 0), UTM33_2M, nodata=0)  # > one 256-pixel block: one overview level
    (folder / "b.tif").write_text("not a raster: a failed download\n")
    write_raster(folder / "c.tif", noise_scene(64, 2), UTM33_2M, nodata=0)
    out = tmp_path / "out"
    result = cli("predict", tiny_model, folder, "--out", out, "--overlap", "0", "--vector", "none",
                 "--device", "cpu")
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    assert sorted(p.name for p in out.iterdir()) == ["a_mask.tif", "a_prob.tif", "c_mask.tif", "c_prob.tif"]
    assert "a.tif" in result.out and "c.tif" in result.out
    lines = result.err.strip().splitlines()
    assert lines[-2].startswith("casdesk predict: failed: b.tif:")
    assert lines[-1].startswith("casdesk predict: error: 1 of 3 scenes failed")
    for name in ("a_prob.tif", "a_mask.tif", "c_prob.tif"):
        assert cog_errors(out / name) == [], name
    with rasterio.open(out / "a_prob.tif") as ds:
        assert ds.nodata == 255 and ds.overviews(1) == [2]


def test_released_cas_tiles_warn_once(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    """Plain images without a georeference (as the released CAS tiles): importing,
    measuring and exporting them prints one info line, no warning text per file."""
    root = tmp_path / "cas" / "Sub"
    for d in ("img", "mask"):
        (root / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        for d, count in (("img", 3), ("mask", 1)):
            arr = rng.integers(0, 2 if d == "mask" else 255, (count, 32, 32)).astype(np.uint8)
            with rasterio.open(root / d / f"t{i}.tif", "w", driver="GTiff", width=32, height=32, count=count,
                               dtype="uint8") as ds:
                ds.write(arr)
    project = tmp_path / "p.casdesk"
    cli("init", project)
    for argv in (["import-dataset", project, tmp_path / "cas"], ["qc", project], ["export", project, tmp_path / "x"]):
        result = cli(*argv)
        assert result.code == 0, result.text
        assert "NotGeoreferencedWarning" not in result.text and "RuntimeWarning" not in result.text
        assert result.text.count("no georeference") <= 1


def test_folder_import_keeps_going_after_a_bad_tile(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    """A CAS folder with a damaged image and a mask of the wrong size: every other tile is
    imported, the two are listed with their reason."""
    root = tmp_path / "cas" / "Sub"
    for d in ("img", "mask"):
        (root / d).mkdir(parents=True)
    for i in range(4):
        for d, count, size in (("img", 3, 32), ("mask", 1, 32 if i != 2 else 16)):
            with rasterio.open(root / d / f"t{i}.tif", "w", driver="GTiff", width=size, height=size, count=count,
                               dtype="uint8", crs="EPSG:32633", transform=UTM) as ds:
                ds.write(np.ones((count, size, size), np.uint8))
    (root / "img" / "t1.tif").write_text("a damaged download")
    project = tmp_path / "p.casdesk"
    cli("init", project)
    result = cli("import-dataset", project, tmp_path / "cas")
    assert "Traceback" not in result.text
    assert result.code == 1, "a batch with skipped files must not exit 0"
    assert "imported 2 tiles (cas layout), 2 file(s) skipped" in result.out
    assert "skipped" in result.out and "t1.tif" in result.out and "t2.tif" in result.out
    with Catalog.open(project, readonly=True) as cat:
        assert sorted(t.name for t in cat.tiles()) == ["t0", "t3"]


def test_library_warnings_become_one_info_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's warning hook: rasterio's NotGeoreferencedWarning (one per released CAS tile)
    is said once as an info line; NumPy RuntimeWarnings go to the log only; other warnings
    are shown as before."""
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    from casdesk.cli import quiet_library_warnings

    with pytest.warns(UserWarning, match="something else") as record, quiet_library_warnings():
        for i in range(50):
            warnings.warn_explicit("Dataset has no geotransform", NotGeoreferencedWarning, f"tile{i}.py", i)
            warnings.warn_explicit("invalid value encountered in divide", RuntimeWarning, f"qc{i}.py", i)
        warnings.warn_explicit("something else", UserWarning, "x.py", 1)  # passed on as before
    err = capsys.readouterr().err
    assert err.count("casdesk: info: some rasters have no georeference") == 1
    assert "NotGeoreferencedWarning" not in err and "invalid value" not in err
    assert [w.category for w in record] == [UserWarning]
