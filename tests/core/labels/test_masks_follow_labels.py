"""Masks change only when labels change: imported raster labels, nodata, repeated imports,
a crash between the label commit and the mask, and the editor's draw-then-delete."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine

from casdesk.cli import main
from casdesk.core.dataset.importers import import_cas, import_pairs
from casdesk.core.jobs import run_job
from casdesk.core.labels.io import mask_to_polygons, rasterize_polygons, write_vector_labels
from casdesk.core.labels.store import (
    LabelStore,
    adopt_base,
    pending_tiles,
    regenerate_masks,
    tile_mask,
    tile_target,
)
from casdesk.core.project.catalog import Catalog
from tests.support.tiles import UTM33_2M, read_band, write_raster


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def circles(size=96) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    m = ((yy - 30) ** 2 + (xx - 30) ** 2 <= 15**2) | ((yy - 65) ** 2 + (xx - 60) ** 2 <= 20**2)
    m &= ~(((yy - 65) ** 2 + (xx - 60) ** 2) <= 5**2)  # a hole
    m[5, 90] = m[6, 91] = True  # pixels touching only at a corner
    return m.astype(np.uint8)


@pytest.fixture()
def cas(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    """A CAS-layout dataset: one tile with img/, mask/ (0/1, nodata 255 strip) and label/."""
    root = tmp_path / "cas" / "Palu"
    rgb = np.random.default_rng(1).integers(0, 255, (3, 96, 96), dtype=np.uint8)
    mask = circles()
    mask[:, :8] = 255  # unsurveyed ground
    write_raster(root / "img" / "t1.tif", rgb, UTM33_2M)
    write_raster(root / "mask" / "t1.tif", mask, UTM33_2M, nodata=255)
    lab = np.where(mask == 1, 0, 255).astype(np.uint8)
    write_raster(root / "label" / "t1.tif", np.stack([lab] * 3), UTM33_2M)
    with Catalog.create(tmp_path / "p") as cat:
        run_job(import_cas(cat, root.parent))
        return cat.path, root.parent, mask


def test_nodata_label_raster_is_ignore_and_untouched_tiles_never_rewritten(cas) -> None:
    proj, root, mask = cas
    before = digest(root)
    with Catalog.open(proj) as cat:
        t = cat.tiles()[0]
        assert t.label_pixels == int((mask == 1).sum())  # not the 255 strip
        np.testing.assert_array_equal(tile_mask(cat, t), mask)  # nodata -> 255, never 1
        run_job(regenerate_masks(cat, [t.id]))
        assert cat.tile(t.id).modified == t.modified and cat.tile(t.id).mask_path == t.mask_path
    assert main(["labels", "regenerate", str(proj), "--json"]) == 0
    assert digest(root) == before  # the user's dataset (mask/ and label/) is never written


def test_draw_then_delete_on_an_imported_tile_restores_its_mask(cas) -> None:
    proj, root, mask = cas
    before = digest(root)
    with Catalog.open(proj) as cat:
        tid = cat.tiles()[0].id
        assert adopt_base(cat, tid) > 0  # what the editor does on opening the tile
        target = tile_target(cat, tid)
        store = LabelStore(cat, target)
        shown = store.load()
        assert {s.name for s in shown} == {"landslide", "__ignore__"}
        assert all(s.geometry.is_valid for s in shown)
        assert sum(len(p.interiors) for s in shown for p in getattr(s.geometry, "geoms", [s.geometry])) >= 1
        np.testing.assert_array_equal(tile_mask(cat, cat.tile(tid)), mask)  # exact, pixel for pixel
        drawn = shapely.Polygon([(40, 5), (70, 5), (70, 25), (40, 25)])
        lid = store.create(drawn, "landslide")
        assert pending_tiles(cat) == [tid]
        run_job(regenerate_masks(cat, pending_tiles(cat)))
        assert pending_tiles(cat) == []
        t = cat.tile(tid)
        now = read_band(t.mask_path)
        changed = now != mask
        assert changed.any() and now[changed].tolist() == [1] * int(changed.sum())
        ys, xs = np.nonzero(changed)
        assert xs.min() >= 40 and xs.max() <= 70 and ys.min() >= 5 and ys.max() <= 25  # only what was drawn
        assert t.mask_path.parent.parent.parent == cat.data_dir  # written into the project, not the dataset
        store.delete(lid)
        run_job(regenerate_masks(cat, pending_tiles(cat)))
        t = cat.tile(tid)
        np.testing.assert_array_equal(read_band(t.mask_path), mask)
        assert t.label_pixels == int((mask == 1).sum())
    assert digest(root) == before


def test_pairs_import_keeps_the_mask_as_base(tmp_path: Path) -> None:
    folder = tmp_path / "pairs"
    m = circles()
    write_raster(folder / "images" / "a.tif", np.zeros((3, 96, 96), np.uint8) + 80, UTM33_2M)
    write_raster(folder / "masks" / "a.tif", m * 255, UTM33_2M)  # 0/255 convention
    with Catalog.create(tmp_path / "p") as cat:
        run_job(import_pairs(cat, folder))
        t = cat.tiles()[0]
        run_job(regenerate_masks(cat, [t.id]))
        assert cat.tile(t.id).modified == t.modified
        adopt_base(cat, t.id)
        np.testing.assert_array_equal(tile_mask(cat, t), m)


def test_mask_polygons_are_valid_and_exact() -> None:
    rng = np.random.default_rng(4)
    noisy = (rng.random((120, 140)) > 0.55).astype(np.uint8)  # many corner-touching pixels
    polys = mask_to_polygons(noisy)
    assert all(p.is_valid for p in polys)
    np.testing.assert_array_equal(rasterize_polygons(polys, noisy.shape), noisy)


def scene_project(tmp_path: Path) -> tuple[Path, int, Path]:
    from casdesk.core.dataset.scenes import add_scene
    from casdesk.core.dataset.synthetic import make_scene
    from casdesk.core.dataset.tiling import CropParams, crop_scene

    scene = make_scene(tmp_path / "scene.tif", 320, 320, seed=2, n_scars=0, cloud=False, seam=False, fill=False)
    with Catalog.create(tmp_path / "proj") as cat:
        sid = add_scene(cat, scene.path, subdataset="demo").scene_id
        run_job(crop_scene(cat, sid, CropParams(size=64, stride=64), workers=1))
        info = cat.scene(sid)
        polys = [shapely.box(20.3, 20.6, 150.2, 90.4), shapely.Polygon([(200, 200), (300, 210), (250, 300)])]
        t = Affine(*info.transform[:6])
        crs_polys = [shapely.affinity.affine_transform(p, [t.a, t.b, t.d, t.e, t.c, t.f]) for p in polys]
        gpkg = write_vector_labels(crs_polys + [shapely.affinity.translate(crs_polys[0], 30, -30)], tmp_path / "l.gpkg",
                                   info.crs, {"label": ["landslide", "landslide", "road"]})
        return cat.path, sid, gpkg


def test_repeated_labels_import_replaces_and_honours_the_filter(tmp_path: Path, capsys) -> None:
    proj, sid, gpkg = scene_project(tmp_path)
    for _ in range(2):
        assert main(["labels", "import", str(proj), str(gpkg), "--label-name", "landslide", "--json"]) == 0
        capsys.readouterr()
        with Catalog.open(proj, readonly=True) as cat:
            labels = cat.labels(scene_id=sid)
            assert len(labels) == 2 and {lab.name for lab in labels} == {"landslide"}
            masks = {t.id: read_band(t.mask_path) for t in cat.tiles()}
            assert sum(int((m == 1).sum()) for m in masks.values()) > 0
    assert main(["labels", "regenerate", str(proj), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changed"] == 0  # regeneration leaves them unchanged


CRASH = """
import os, sys
from casdesk.core.labels.exchange import import_vector
from casdesk.core.project.catalog import Catalog
cat = Catalog.open(sys.argv[1])
import_vector(cat, sys.argv[2], label_names=["landslide"])   # labels + pending markers committed
os.kill(os.getpid(), 9)                                        # killed before any mask is written
"""


def test_kill_between_label_commit_and_masks_then_regenerate(tmp_path: Path, capsys) -> None:
    proj, sid, gpkg = scene_project(tmp_path)
    with Catalog.open(proj, readonly=True) as cat:
        stale = {t.id: read_band(t.mask_path) for t in cat.tiles()}
    proc = subprocess.run([sys.executable, "-c", CRASH, str(proj), str(gpkg)], capture_output=True, timeout=120)
    assert proc.returncode == -9
    with Catalog.open(proj, readonly=True) as cat:
        pending = pending_tiles(cat)
        assert len(pending) >= 10 and len(cat.labels(scene_id=sid)) == 2
        assert all(np.array_equal(read_band(t.mask_path), stale[t.id]) for t in cat.tiles())  # masks are stale
    assert main(["labels", "regenerate", str(proj), "--pending", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["tiles"] == len(pending) and rep["pending"] == 0
    with Catalog.open(proj, readonly=True) as cat:
        for t in cat.tiles():
            np.testing.assert_array_equal(read_band(t.mask_path), tile_mask(cat, t))
        assert sum(t.label_pixels for t in cat.tiles()) > 0


def test_crop_and_regeneration_write_the_same_masks_on_a_real_scene(tmp_path: Path, public_data: Path, capsys) -> None:
    """Landsat scene with a nodata frame, a GIS layer and an editor polygon: the crop's masks
    are what regeneration writes (255 outside the footprint, never 1)."""
    from casdesk.core.dataset.scenes import add_scene
    from casdesk.core.dataset.tiling import CropParams, crop_scene
    from casdesk.core.labels.store import scene_target

    with Catalog.create(tmp_path / "p") as cat:
        sid = add_scene(cat, public_data / "RGB.byte.tif", labels=public_data / "box.shp").scene_id
        LabelStore(cat, scene_target(cat, sid)).create(shapely.Polygon([(0, 0), (300.5, 10.2), (40.7, 200.3)]), "landslide")
        run_job(crop_scene(cat, sid, CropParams(256, 256, "shift")))
        masks = {t.id: read_band(t.mask_path) for t in cat.tiles()}
        path = cat.path
    assert masks[min(masks)][0, 0] == 255  # the editor polygon reaches the nodata corner: ignore, not 1
    assert main(["labels", "regenerate", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changed"] == 0
    with Catalog.open(path, readonly=True) as cat:
        assert all(np.array_equal(read_band(t.mask_path), masks[t.id]) for t in cat.tiles())


def test_dataset_export_keeps_ignore_pixels_out_of_the_landslide_class(cas, tmp_path: Path) -> None:
    proj, _root, mask = cas
    assert main(["export", str(proj), str(tmp_path / "out")]) == 0
    [m] = list((tmp_path / "out").rglob("mask/*.tif"))
    [lab] = list((tmp_path / "out").rglob("label/*.tif"))
    with rasterio.open(m) as ds:
        got = ds.read(1)
        assert ds.nodata == 255
    np.testing.assert_array_equal(got, mask)
    with rasterio.open(lab) as ds:
        assert (ds.read(1)[mask == 255] == 255).all()  # white (not landslide) on the ignore strip


def test_scene_label_raster_with_nodata_gives_ignore_not_landslide(tmp_path: Path, public_data: Path) -> None:
    from casdesk.core.dataset.scenes import add_scene
    from casdesk.core.dataset.tiling import CropParams, crop_scene

    with rasterio.open(public_data / "RGB.byte.tif") as src:
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": 1, "dtype": "uint8",
                   "crs": src.crs, "transform": src.transform, "nodata": 255}
        valid = src.dataset_mask() > 0
    lab = np.zeros((profile["height"], profile["width"]), np.uint8)
    lab[300:340, 300:360] = 1  # surveyed landslide: 2,400 px
    lab[:, 500:] = 255  # unsurveyed ground
    with rasterio.open(tmp_path / "lab.tif", "w", **profile) as dst:
        dst.write(lab[None])
    with Catalog.create(tmp_path / "p") as cat:
        sid = add_scene(cat, public_data / "RGB.byte.tif", labels=tmp_path / "lab.tif").scene_id
        run_job(crop_scene(cat, sid, CropParams(256, 256, "shift")))
        assert sum(t.label_pixels for t in cat.tiles()) == 2400
        ignored = sum(int((read_band(t.mask_path) == 255).sum()) for t in cat.tiles())
    assert ignored >= int((valid[:, 500:]).sum())  # the unsurveyed strip is ignore wherever there is image


def test_labelme_export_of_scene_tiles_imports_back_without_doubling(tmp_path: Path, capsys) -> None:
    proj, sid, gpkg = scene_project(tmp_path)
    assert main(["labels", "import", str(proj), str(gpkg), "--label-name", "landslide"]) == 0
    with Catalog.open(proj, readonly=True) as cat:
        masks = {t.id: read_band(t.mask_path) for t in cat.tiles()}
    out = tmp_path / "lm"
    assert main(["labels", "export", str(proj), "--labelme", str(out)]) == 0
    assert main(["labels", "import", str(proj), str(out), "--json"]) == 0
    capsys.readouterr()
    with Catalog.open(proj, readonly=True) as cat:
        assert len(cat.labels(scene_id=sid)) == 2  # each polygon once, though it spans many tiles
        for t in cat.tiles():
            np.testing.assert_array_equal((read_band(t.mask_path) == 1), (tile_mask(cat, t) == 1))
        assert sum(int((read_band(t.mask_path) == 1).sum()) for t in cat.tiles()) >= 0.9 * sum(int((m == 1).sum()) for m in masks.values())


def test_vector_round_trip_keeps_each_labels_mask_rule(tmp_path: Path, capsys) -> None:
    from casdesk.core.labels.store import scene_target

    proj, sid, _gpkg = scene_project(tmp_path)
    with Catalog.open(proj) as cat:
        LabelStore(cat, scene_target(cat, sid)).create(shapely.Polygon([(10.5, 10.5), (200.2, 30.7), (60.1, 150.3)]), "landslide")
        run_job(regenerate_masks(cat, pending_tiles(cat)))
        before = {t.name: read_band(t.mask_path) for t in cat.tiles()}
    out = tmp_path / "l.gpkg"
    assert main(["labels", "export", str(proj), str(out)]) == 0
    with Catalog.open(proj) as cat:
        for lab in cat.labels():
            cat.delete_label(lab.id)
    assert main(["labels", "import", str(proj), str(out)]) == 0
    capsys.readouterr()
    with Catalog.open(proj, readonly=True) as cat:
        assert [lab.attributes["mask_rule"] for lab in cat.labels()] == ["labelme"]
        for t in cat.tiles():
            np.testing.assert_array_equal(read_band(t.mask_path), before[t.name], err_msg=t.name)
