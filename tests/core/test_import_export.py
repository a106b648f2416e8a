import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio

from casdesk.core.dataset.export import export_dataset
from casdesk.core.dataset.importers import (
    detect_format,
    import_cas,
    import_pairs,
    subdataset_metadata,
)
from casdesk.core.dataset.scenes import add_scene
from casdesk.core.dataset.tiling import CropParams, crop_scene
from casdesk.core.errors import ImportDatasetError, OutputError
from casdesk.core.jobs import run_job
from casdesk.core.labels.io import mask_to_cas_label
from casdesk.core.project.catalog import Catalog


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def test_export_then_import_gives_the_same_tiles(project: Catalog, public_data: Path, tmp_path: Path):
    sid = add_scene(project, public_data / "RGB.byte.tif", labels=public_data / "box.shp").scene_id
    run_job(crop_scene(project, sid, CropParams(256, 256)))
    out = tmp_path / "export"
    assert run_job(export_dataset(project, out)) == 12
    other = Catalog.create(tmp_path / "other")
    assert run_job(import_cas(other, out)) == 12
    originals = {t.name: t for t in project.tiles()}
    for tile in other.tiles():
        src = originals[tile.name]
        assert tile.subdataset == src.subdataset
        assert np.array_equal(_read(tile.image_path), _read(src.image_path))
        assert np.array_equal(_read(tile.mask_path), _read(src.mask_path))
        assert np.array_equal(_read(tile.label_path), _read(src.label_path))
        assert tile.label_pixels == src.label_pixels
    other.close()


def _cas_folder(public_data: Path, root: Path) -> Path:
    """The shared CAS tiles laid out as two subdatasets with awkward names."""
    subs = {"Luding（UAV） 1m": ["Luding_1m_UAV325.tiff"], "Haiti SAT": ["Haiti146.tiff", "Haiti_Planet286.tiff"]}
    for sub, names in subs.items():
        for d in ("img", "label"):
            (root / sub / d).mkdir(parents=True)
        for i, name in enumerate(names):
            shutil.copy(public_data / "cas_tiles" / name, root / sub / "img" / name)
            mask = np.zeros((512, 512), np.uint8)
            mask[100 + 10 * i:200, 50:300] = 1
            with rasterio.open(root / sub / "label" / Path(name).with_suffix(".tif"), "w", driver="GTiff",
                               width=512, height=512, count=3, dtype="uint8") as dst:
                dst.write(mask_to_cas_label(mask))
    return root


def test_import_cas_layout_with_label_only_and_fullwidth_names(project: Catalog, public_data: Path, tmp_path: Path):
    root = _cas_folder(public_data, tmp_path / "CAS Landslide")
    assert detect_format(root) == "cas"
    n = run_job(import_cas(project, root))
    assert n == 3
    subs = {s["name"]: s for s in project.subdatasets()}
    assert subs["Luding（UAV） 1m"]["sensor"] == "UAV"
    assert subs["Luding（UAV） 1m"]["resolution_m"] == 1.0
    assert subs["Haiti SAT"]["sensor"] == "SAT"
    assert "Haiti" in subs["Haiti SAT"]["region"]
    tile = project.tiles(subdataset="Haiti SAT")[0]
    mask = _read(tile.mask_path)[0]
    assert set(np.unique(mask)) == {0, 1}
    assert tile.label_pixels == int(mask.sum()) == 100 * 250


def test_subdataset_metadata_from_names():
    assert subdataset_metadata("jiuzzhaigou_0.2m_UVA")["resolution_m"] == 0.2
    assert subdataset_metadata("Longxihe（SAT）")["sensor"] == "SAT"
    assert subdataset_metadata("Moxitaidi UAV")["trigger"] == "earthquake (2022)"  # Luding, Table 4
    assert subdataset_metadata("my own data") == {}


def test_import_hokkaido_pairs_red_on_black(project: Catalog, public_data: Path):
    folder = public_data / "hokkaido_png"
    assert detect_format(folder) == "pairs"
    n = run_job(import_pairs(project, folder, subdataset="Hokkaido"))
    assert n == len(list((folder / "images").glob("*.png")))
    for tile in project.tiles():
        png = cv2.imread(str(folder / "masks" / f"{tile.name}.png"), cv2.IMREAD_COLOR)
        expected = (png[:, :, 2] > 0).astype(np.uint8)  # red channel (OpenCV is BGR)
        assert np.array_equal(_read(tile.mask_path)[0], expected)
        assert tile.label_pixels == int(expected.sum())


def test_import_errors_are_specific(project: Catalog, tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportDatasetError, match="cannot tell the dataset layout"):
        detect_format(tmp_path / "empty")
    with pytest.raises(ImportDatasetError, match="no subdataset found"):
        run_job(import_cas(project, tmp_path / "empty"))


def test_export_refuses_non_empty_and_unwritable(project: Catalog, tmp_path: Path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(OutputError, match="not empty"):
        run_job(export_dataset(project, tmp_path / "full"))
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    with pytest.raises(OutputError):
        run_job(export_dataset(project, Path("/proc/casdesk-export")))


def test_export_disk_full_leaves_nothing(project: Catalog, public_data: Path, tmp_path: Path, monkeypatch):
    import errno

    import casdesk.core.dataset.export as export_module

    sid = add_scene(project, public_data / "RGB.byte.tif").scene_id
    run_job(crop_scene(project, sid, CropParams(256, 256)))
    calls = {"n": 0}
    real = export_module._export_tile

    def failing(tile, root, *rest):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tile, root, *rest)

    monkeypatch.setattr(export_module, "_export_tile", failing)
    with pytest.raises(OutputError, match="disk is full"):
        run_job(export_dataset(project, tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
