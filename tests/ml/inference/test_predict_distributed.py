"""`torchrun ... casdesk predict`: 2 gloo CPU processes write what one process writes, bit for bit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from casdesk.cli import main
from tests.support.tiles import UTM33_2M, scar_scene, write_raster


def _torchrun(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME=os.environ.get("GLOO_SOCKET_IFNAME", "lo"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "casdesk", "predict", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _same_outputs(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and names
    for name in names:
        if name.endswith(".tif"):
            with rasterio.open(a / name) as x, rasterio.open(b / name) as y:
                pa, pb = dict(x.profile), dict(y.profile)
                assert np.array_equal([pa.pop("nodata")], [pb.pop("nodata")], equal_nan=True) and pa == pb
                ax, ay = x.read(), y.read()
                assert np.array_equal(ax, ay, equal_nan=True), name
                assert (x.transform, x.crs) == (y.transform, y.crs)
        elif name.endswith(".gpkg"):
            from pyogrio.raw import read

            _, _, geom_a, fields_a = read(a / name)
            _, _, geom_b, fields_b = read(b / name)
            assert len(geom_a) > 0 and list(geom_a) == list(geom_b)
            for fa, fb in zip(fields_a, fields_b):
                assert list(fa) == list(fb)


def _scene_args(model_file: Path, scene: Path, out: Path) -> list[str]:
    return [str(model_file), str(scene), "--out", str(out), "--device", "cpu", "--tile-size", "64",
            "--overlap", "16", "--float", "--no-value-check", "--batch-size", "3"]


# two torchrun processes (about 15 s): in CI, the equality requirement
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_torchrun_predict_splits_windows_and_matches_one_process(
    model_file: Path, tmp_path: Path
) -> None:
    image, _ = scar_scene(230, 170, seed=3, border=20)
    scene = write_raster(tmp_path / "scene.tif", image, UTM33_2M, nodata=0)
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["predict", *_scene_args(model_file, scene, one)]) == 0
    proc = _torchrun(_scene_args(model_file, scene, two))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "x2 processes" in proc.stderr
    _same_outputs(one, two)


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_torchrun_predict_splits_a_folder_by_scene(model_file: Path, tmp_path: Path) -> None:
    folder = tmp_path / "scenes"
    folder.mkdir()
    for i in range(3):
        image, _ = scar_scene(120, 100, seed=i)
        write_raster(folder / f"s{i}.tif", image, UTM33_2M, nodata=0)
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["predict", *_scene_args(model_file, folder, one)]) == 0
    proc = _torchrun([*_scene_args(model_file, folder, two), "--json"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"scene"') == 3  # rank 0 reports every scene, once
    _same_outputs(one, two)
