"""Tiles that stay consistent through re-runs and odd rasters (issue 13, items 1-4, and the
export of issue 19).

* two scenes with the same file name keep their own tiles; the same file added twice is
  refused unless allowed;
* a re-crop at another size makes new tiles (new ids), drops and counts the old tiles'
  decisions and split memberships, removes their files; one crop per scene at a time;
* validity comes from GDAL's dataset mask: alpha bands (rasterio's alpha.tif and
  RGBA.uint16, generated here), NaN; padding is nodata in every band type, declared;
* a run whose process is gone is marked interrupted with its model;
* exports hard-link by default (copy where the file system cannot), with a manifest.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from casdesk.core.dataset.scenes import add_scene
from casdesk.core.dataset.tiling import CropParams, crop_scene
from casdesk.core.errors import SceneError, TilingError
from casdesk.core.jobs import run_job
from casdesk.core.project.catalog import Catalog

from .conftest import (
    CliResult,
    assert_project_sound,
    kill9,
    python_subprocess,
    small_scene,
    wait_for,
)

UTM = Affine(10.0, 0, 300000.0, 0, -10.0, 5000000.0)


def _tile_sizes_match_files(cat: Catalog) -> None:
    for t in cat.tiles():
        for p in (t.image_path, t.mask_path, t.label_path):
            with rasterio.open(p) as ds:
                assert (ds.width, ds.height) == (t.width, t.height), (t.name, p)


# ---------------------------------------------------------------------- scene identity
def test_two_scenes_with_the_same_file_name_keep_their_tiles(tmp_path: Path, public_data: Path,
                                                             cli: Callable[..., CliResult]) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        shutil.copyfile(public_data / "RGB.byte.tif", tmp_path / d / "RGB.byte.tif")
    project = tmp_path / "p.casdesk"
    cli("init", project)
    assert cli("add-scene", project, tmp_path / "a" / "RGB.byte.tif").code == 0
    second = cli("add-scene", project, tmp_path / "b" / "RGB.byte.tif")
    assert second.code == 0
    assert "another scene is already named 'RGB.byte': this one is named 'RGB.byte-2'" in second.out
    assert cli("crop", project, "--size", "256").code == 0
    assert cli("crop", project, "--size", "256", "--scene", "1").code == 0  # re-crop one: the other keeps its own
    cat = assert_project_sound(project)
    per_scene = {s.id: cat.tiles(scene_id=s.id) for s in cat.scenes()}
    assert [len(v) for v in per_scene.values()] == [12, 12]
    files = [t.image_path for v in per_scene.values() for t in v]
    assert len(set(files)) == 24 and all(p.exists() for p in files)
    assert {t.subdataset for t in per_scene[2]} == {"RGB.byte-2"}
    cat.close()


def test_the_same_file_twice_is_refused_unless_allowed(tmp_path: Path, public_data: Path,
                                                       cli: Callable[..., CliResult]) -> None:
    project = tmp_path / "p.casdesk"
    cli("init", project)
    scene = tmp_path / "s.tif"
    shutil.copyfile(public_data / "RGB.byte.tif", scene)
    assert cli("add-scene", project, scene).code == 0
    (tmp_path / "link.tif").symlink_to(scene)
    for path in (scene, tmp_path / "link.tif"):
        again = cli("add-scene", project, path)
        assert again.code == 2
        assert "this file is already scene 1 (s) of the project" in again.err and "--allow-duplicate" in again.err
    allowed = cli("add-scene", project, scene, "--allow-duplicate", "--json")
    assert allowed.code == 0 and any("same file is also scene 1" in m for m in json.loads(allowed.out)["messages"])
    named = cli("add-scene", project, scene, "--allow-duplicate", "--name", "s-2")
    assert named.code == 2 and "a scene named 's-2' already exists" in named.err
    with Catalog.open(project, readonly=True) as cat:
        assert [s.name for s in cat.scenes()] == ["s", "s-2"]


def test_scene_names_are_unique_in_the_catalog(project: Catalog, public_data: Path) -> None:
    add_scene(project, public_data / "RGB.byte.tif", name="x")
    with pytest.raises(SceneError, match="already exists"):
        add_scene(project, public_data / "RGB.byte.tif", name="x", allow_duplicate=True)


# ---------------------------------------------------------------------- re-crop
def test_recrop_at_another_size_makes_new_tiles(tmp_path: Path, public_data: Path,
                                                cli: Callable[..., CliResult]) -> None:
    project = tmp_path / "p.casdesk"
    cli("init", project)
    cli("add-scene", project, public_data / "RGB.byte.tif")
    assert cli("crop", project, "--size", "256").code == 0
    cat = Catalog.open(project)
    old = cat.tiles()
    from casdesk.core.qc.rules import set_decision

    set_decision(cat, [t.id for t in old[:3]], "accept", author="test")
    pred = cat.data_dir / "predictions" / "m" / f"{old[0].name}_mask.tif"
    pred.parent.mkdir(parents=True)
    pred.write_bytes(b"stored tile prediction")
    with cat.transaction() as db:
        db.execute("INSERT INTO predictions(tile_id, model, mask_path, created) VALUES (?, 'm', ?, 'x')",
                   (old[0].id, cat.store_path(pred)))
    cat.close()
    assert cli("split", project, "--name", "s1").code == 0
    same = cli("crop", project, "--size", "256", "--json")  # same grid: same tiles, decisions kept
    assert json.loads(same.out)["RGB.byte"] == {"tiles": 12, "labelled_tiles": 0}

    result = cli("crop", project, "--size", "512", "--json")
    assert result.code == 0, result.err
    r = json.loads(result.out)["RGB.byte"]
    assert (r["tiles"], r["replaced_tiles"], r["dropped_decisions"], r["dropped_split_tiles"]) == (4, 12, 3, 12)
    text = cli("crop", project, "--size", "256")  # and back: said in words
    assert "12 old tile(s)" not in text.out and "4 old tile(s) replaced" in text.out
    cat = assert_project_sound(project)
    new = cat.tiles()
    assert not {t.id for t in old} & {t.id for t in new} and len(new) == 12
    assert cat.query("SELECT COUNT(*) FROM qc_decisions")[0][0] == 0
    _tile_sizes_match_files(cat)
    on_disk = {p.name for p in (cat.data_dir / "tiles" / "RGB.byte" / "img").iterdir()}
    assert on_disk == {t.image_path.name for t in new}  # no orphan files
    assert not pred.exists() and cat.query("SELECT COUNT(*) FROM predictions")[0][0] == 0
    cat.close()


def test_one_crop_per_scene_at_a_time(project: Catalog, tmp_path: Path) -> None:
    sid = add_scene(project, small_scene(tmp_path / "s.tif", 256)).scene_id
    first = crop_scene(project, sid, CropParams(32, 32), workers=1)
    next(first)  # running: holds the scene's lock
    other = Catalog.open(project.path)  # another window / thread of this process
    with pytest.raises(TilingError, match=r"scene 1 \(s\) is being cropped by process \d+"):
        run_job(crop_scene(other, sid, CropParams(128, 128)))
    ids = run_job(first)
    assert len(ids) == 64
    assert len(run_job(crop_scene(other, sid, CropParams(128, 128)))) == 4  # free again
    other.close()
    _tile_sizes_match_files(project)


CROP = "from casdesk.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
SLOW_CROP = """
import sys, time
from casdesk.core.dataset import tiling
real = tiling._write_tile
def slow(*args, **kwargs):
    time.sleep(0.1)
    return real(*args, **kwargs)
tiling._write_tile = slow
from casdesk.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX child helper")
def test_concurrent_crops_of_one_scene_from_two_terminals(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    from casdesk.core.dataset.synthetic import make_scene

    project = tmp_path / "c.casdesk"
    cli("init", project)
    cli("add-scene", project, make_scene(tmp_path / "big.tif", width=128, height=128, seed=1).path)
    first = python_subprocess(SLOW_CROP, "crop", project, "--size", "16", "--workers", "1")  # 64 tiles, >= 6 s
    reader = Catalog.open(project, readonly=True)
    try:
        wait_for(lambda: reader.crop_state(1) == "running", 60, "the first crop to start", first)
    finally:
        reader.close()
    second = subprocess.run([sys.executable, "-c", CROP, "crop", str(project), "--size", "64"],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 2, second.stderr
    assert "is being cropped by process" in second.stderr and "Traceback" not in second.stderr
    assert first.wait(90) == 0
    kill9(first)
    cat = assert_project_sound(project)
    assert {(t.width, t.height) for t in cat.tiles()} == {(16, 16)} and cat.tile_count() == 64
    _tile_sizes_match_files(cat)
    cat.close()


# ---------------------------------------------------------------------- validity
def _alpha_scene(path: Path, dtype: str, width: int = 1100, height: int = 1000, seed: int = 0) -> np.ndarray:
    """An RGB + alpha scene (as rasterio's alpha.tif and RGBA.uint16): image values
    everywhere, alpha opaque in a blob of about 1.6 % of the pixels. Returns alpha > 0."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    opaque = ((yy - 0.3 * height) / 90.0) ** 2 + ((xx - 0.64 * width) / 70.0) ** 2 < 1
    top = np.iinfo(dtype).max
    rgb = rng.integers(1, top // 2, (3, height, width)).astype(dtype)
    alpha = np.where(opaque, top, 0).astype(dtype)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=4, dtype=dtype, crs="EPSG:32633",
                       transform=UTM, photometric="RGB", alpha="YES") as ds:
        ds.write(np.concatenate([rgb, alpha[None]]))
    return opaque


@pytest.mark.parametrize("dtype", ["uint8", "uint16"], ids=["alpha.tif", "RGBA.uint16"])
def test_alpha_band_decides_valid_pixels(dtype: str, project: Catalog, tmp_path: Path) -> None:
    opaque = _alpha_scene(tmp_path / f"alpha_{dtype}.tif", dtype)
    assert 0.014 < opaque.mean() < 0.018  # about rasterio's alpha.tif
    sid = add_scene(project, tmp_path / f"alpha_{dtype}.tif").scene_id
    ids = run_job(crop_scene(project, sid, CropParams(512, 512, "pad")))
    tiles = project.tiles(ids=ids)
    assert len(tiles) == 6  # 3 x 2, the last row and column padded
    assert sum(t.valid_pixels for t in tiles) == int(opaque.sum())
    assert sum(1 for t in tiles if t.valid_pixels) == 1
    for t in tiles:
        with rasterio.open(t.image_path) as ds:
            valid = ds.dataset_mask() > 0
            expected = np.zeros((512, 512), bool)
            part = opaque[t.row_off:t.row_off + 512, t.col_off:t.col_off + 512]
            expected[:part.shape[0], :part.shape[1]] = part
            assert np.array_equal(valid, expected), t.name
            data = ds.read()
            assert not data[:, part.shape[0]:, :].any() and not data[:, :, part.shape[1]:].any()  # padding


def test_qc_fill_of_an_alpha_scene(project: Catalog, tmp_path: Path) -> None:
    opaque = _alpha_scene(tmp_path / "a.tif", "uint8", 512, 512)
    sid = add_scene(project, tmp_path / "a.tif").scene_id
    (tile,) = project.tiles(ids=run_job(crop_scene(project, sid, CropParams(512, 512))))
    assert tile.valid_pixels == int(opaque.sum()) < 0.1 * 512 * 512


def test_float_scene_padding_is_nan_never_zero(project: Catalog, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.normal(0.2, 0.05, (2, 90, 100)).astype(np.float32)
    data[:, 10:20, 10:20] = np.nan
    for name, nodata in (("nan.tif", math.nan), ("none.tif", None)):
        with rasterio.open(tmp_path / name, "w", driver="GTiff", width=100, height=90, count=2, dtype="float32",
                           crs="EPSG:32633", transform=UTM, nodata=nodata) as ds:
            ds.write(data)
        sid = add_scene(project, tmp_path / name).scene_id
        tiles = project.tiles(ids=run_job(crop_scene(project, sid, CropParams(64, 64, "pad"))))
        assert sum(t.valid_pixels for t in tiles) == 100 * 90 - 100
        corner = next(t for t in tiles if t.row_off == 64 and t.col_off == 64)
        with rasterio.open(corner.image_path) as ds:
            assert ds.nodata is not None and math.isnan(ds.nodata), name  # declared
            tile = ds.read()
            assert np.isnan(tile[:, 90 - 64:, :]).all() and np.isnan(tile[:, :, 100 - 64:]).all(), name
            assert not (tile == 0).any(), name
            assert np.array_equal(ds.dataset_mask() > 0, np.isfinite(tile).all(axis=0))


def test_integer_tiles_declare_nodata(project: Catalog, public_data: Path) -> None:
    sid = add_scene(project, public_data / "RGB.byte.tif").scene_id
    tiles = project.tiles(ids=run_job(crop_scene(project, sid, CropParams(512, 512, "pad"))))
    for t in tiles:
        with rasterio.open(t.image_path) as ds:
            assert ds.nodata == 0


# ---------------------------------------------------------------------- self-cleaning
def test_a_run_whose_process_is_gone_is_marked_interrupted(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    project = tmp_path / "p.casdesk"
    cli("init", project)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_path / "run1"
    run_dir.mkdir()
    (run_dir / "model.pt").write_bytes(b"weights")
    with Catalog.open(project) as cat, cat.transaction() as db:
        for name, pid, out in (("killed", dead.pid, run_dir), ("alive", os.getpid(), tmp_path / "run2")):
            db.execute("INSERT INTO runs(name, status, config, started, out_dir, pid, host) VALUES"
                       " (?, 'running', '{}', 'x', ?, ?, ?)", (name, str(out), pid, os.uname().nodename))
    assert cli("split", project).code == 2  # any writing command cleans up first (this one then fails)
    with Catalog.open(project, readonly=True) as cat:
        rows = {r["name"]: (r["status"], r["model_path"]) for r in cat.query("SELECT * FROM runs")}
    assert rows == {"killed": ("interrupted", str(run_dir / "model.pt")), "alive": ("running", None)}
    with Catalog.open(project) as cat:  # how the trainer records its process
        run_id = cat.query("SELECT id FROM runs WHERE name = 'killed'")[0][0]
        cat.claim_run(run_id)
        assert tuple(cat.query("SELECT pid, host FROM runs WHERE id = ?", (run_id,))[0]) == (
            os.getpid(), os.uname().nodename)


def test_leftovers_of_live_processes_are_kept(tmp_path: Path) -> None:
    from casdesk.core.project.cleanup import remove_stale_files

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = tmp_path / f".t.tif.{os.getpid()}-99.tmp"
    gone = tmp_path / f".t.tif.{dead.pid}-99.tmp"
    partial = tmp_path / f".out.partial-{dead.pid}"
    for p in (live, gone):
        p.write_bytes(b"x")
    partial.mkdir()
    (partial / "f").write_bytes(b"x")
    visible = tmp_path / "t.tif.1.tmp"  # not hidden: never ours
    visible.write_bytes(b"x")
    assert sorted(remove_stale_files(tmp_path)) == sorted([gone, partial])
    assert live.exists() and visible.exists()


# ---------------------------------------------------------------------- export (issue 19)
@pytest.fixture()
def tiled(tmp_path: Path, cli: Callable[..., CliResult]) -> Path:
    project = tmp_path / "p.casdesk"
    cli("init", project)
    cli("add-scene", project, small_scene(tmp_path / "s.tif", 128))
    assert cli("crop", project, "--size", "64").code == 0
    return project


def _manifest(out: Path) -> list[dict[str, str]]:
    with open(out / "manifest.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_export_hard_links_by_default_with_a_manifest(tiled: Path, tmp_path: Path,
                                                      cli: Callable[..., CliResult]) -> None:
    out = tmp_path / "export"
    result = cli("export", tiled, out)
    assert result.code == 0 and "12 hard links" in result.out and "manifest.csv" in result.out
    rows = _manifest(out)
    assert len(rows) == 4 and {r["how"] for r in rows} == {"hard"}
    for r in rows:
        for kind in ("image", "mask", "label"):
            exported = out / r[kind]
            source = Path(r[f"source_{kind}"])
            assert exported.stat().st_ino == source.stat().st_ino and not exported.is_symlink()
        assert r["subdataset"] == "s" and r["width"] == "64" and r["scene_id"] == "1"
    assert sorted(r["tile_id"] for r in rows) == ["1", "2", "3", "4"]


def test_export_symlinks_and_copies(tiled: Path, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    sym = cli("export", tiled, tmp_path / "sym", "--link", "symlink", "--json")
    assert sym.code == 0 and json.loads(sym.out)["files"] == {"symlink": 12}
    first = _manifest(tmp_path / "sym")[0]
    assert (tmp_path / "sym" / first["image"]).is_symlink()
    copy = cli("export", tiled, tmp_path / "copy", "--link", "copy", "--json")
    assert copy.code == 0 and json.loads(copy.out)["files"] == {"copy": 12}
    img = tmp_path / "copy" / _manifest(tmp_path / "copy")[0]["image"]
    assert img.stat().st_nlink == 1 and not img.is_symlink()


def test_export_falls_back_to_copies_where_links_cannot_be_made(tiled: Path, tmp_path: Path,
                                                                cli: Callable[..., CliResult],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(src: object, dst: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    result = cli("export", tiled, tmp_path / "other-disk")
    assert result.code == 0
    assert "12 copies" in result.out and "no hard links: the export is on another disk: files were copied" in result.out
    assert {r["how"] for r in _manifest(tmp_path / "other-disk")} == {"copy"}


def test_export_of_a_project_in_use_survives_kill(tiled: Path, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    """A leftover of a killed export beside the new one is removed by the next export."""
    proc = python_subprocess("import time; time.sleep(0.01)")
    proc.wait()
    stale = tmp_path / f".old.partial-{proc.pid}"
    (stale / "s" / "img").mkdir(parents=True)
    kill9(proc)
    assert cli("export", tiled, tmp_path / "new").code == 0
    assert not stale.exists()
