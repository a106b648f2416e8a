"""A real model file through the CLI (one scene, a folder), and bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from casdesk.cli import main
from casdesk.ml.inference.scene import estimate_memory, strip_memory
from tests.support.tiles import UTM33_2M, scar_scene, write_raster


def test_cli_predict_scene_with_model_file(tmp_path, model_file, capsys):
    image, _ = scar_scene(150, 130, seed=7, border=10)
    scene = write_raster(tmp_path / "scene.tif", image, UTM33_2M, nodata=0)
    code = main(["predict", str(model_file), str(scene), "--out", str(tmp_path / "out"),
                 "--overlap", "16", "--device", "cpu", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "peak memory" in captured.err
    (result,) = json.loads(captured.out)
    assert result["model"] == "tiny" and result["tile_size"] == [64, 64]
    with rasterio.open(scene) as src, rasterio.open(result["mask_path"]) as ds:
        assert ds.crs == src.crs and ds.transform == src.transform and ds.shape == src.shape
        mask = ds.read(1)
        assert (mask[:10] == 255).all() and (mask[10:, 10:] != 255).all()
    assert Path(result["vector_path"]).suffix == ".gpkg"


def test_cli_predict_folder_and_errors(tmp_path, model_file, capsys):
    folder = tmp_path / "scenes"
    folder.mkdir()
    for i in range(2):
        image, _ = scar_scene(70, 90, seed=i)
        write_raster(folder / f"s{i}.tif", image, UTM33_2M, nodata=0)
    code = main(["predict", str(model_file), str(folder), "--out", str(tmp_path / "o"), "--overlap", "0",
                 "--vector", "geojson", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    assert "s0.tif" in out and "s1.tif" in out
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "s0_landslides.geojson", "s0_mask.tif", "s0_prob.tif",
        "s1_landslides.geojson", "s1_mask.tif", "s1_prob.tif",
    ]
    four = tmp_path / "four.tif"
    write_raster(four, np.zeros((4, 64, 64), np.uint8) + 50, UTM33_2M)
    assert main(["predict", str(model_file), str(four), "--out", str(tmp_path / "x"), "--device", "cpu"]) == 2
    assert "4 band(s)" in capsys.readouterr().err


def test_strip_memory_does_not_depend_on_height(tmp_path, model_file):
    a = strip_memory(4000, 3, (256, 256), 128)
    assert a < 64 * 2**20
    for h in (1000, 8000):
        scene = tmp_path / f"s{h}.tif"
        with rasterio.open(scene, "w", driver="GTiff", width=500, height=h, count=3, dtype="uint8",
                           crs="EPSG:32633", transform=Affine(1, 0, 500000, 0, -1, 4000000), tiled=True) as ds:
            ds.write(np.full((3, 16, 16), 80, np.uint8), window=Window(0, 0, 16, 16))
        est = estimate_memory(model_file, scene, overlap=16)
        assert est.strip_bytes == strip_memory(500, 3, (64, 64), 16)
    assert est.scene_bytes == 500 * 8000 * 4


_RSS_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[3])
    import importlib.util
    spec = importlib.util.spec_from_file_location("helpers", sys.argv[3] + "/conftest.py")
    helpers = importlib.util.module_from_spec(spec); spec.loader.exec_module(helpers)
    from casdesk.core.jobs import run_job
    from casdesk.ml.inference.scene import predict_scene
    predictor = helpers.make_predictor(helpers.BrightNet(), tile=256)
    res = run_job(predict_scene(predictor, sys.argv[1], sys.argv[2], overlap=64, check_values=False))
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent (pytest) across exec
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            rss = int(line.split()[1]) * 1024
    print(json.dumps({"rss": rss,
                      "polygons": res.polygons, "windows": res.windows}))
    """
)


def write_big_scene(path: Path, width: int, height: int) -> None:
    """A scene with scars, written block by block (never whole in memory)."""
    block, _ = scar_scene(512, 512, seed=1, n=8)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=Affine(1, 0, 500000, 0, -1, 4000000), nodata=0,
                       tiled=True, blockxsize=256, blockysize=256, compress="deflate") as ds:
        for r in range(0, height, 512):
            for c in range(0, width, 512):
                w = Window(c, r, min(512, width - c), min(512, height - r))
                ds.write(block[:, : w.height, : w.width], window=w)


def peak_rss(scene: Path, out: Path) -> dict:
    here = str(Path(__file__).parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(scene), str(out), here],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _growth(tmp_path: Path, width: int, height: int) -> tuple[dict, dict]:
    small, big = tmp_path / "small.tif", tmp_path / "big.tif"
    write_big_scene(small, width, height // 4)
    write_big_scene(big, width, height)
    return peak_rss(small, tmp_path / "o1"), peak_rss(big, tmp_path / "o2")


def test_peak_memory_bounded_4x_taller_scene(tmp_path):
    """1536 x 768 vs 1536 x 3072: peak RSS grows < 20 % (a subprocess each)."""
    a, b = _growth(tmp_path, 1536, 3072)
    assert b["windows"] > 3 * a["windows"] and b["polygons"] > a["polygons"]
    assert b["rss"] < 1.2 * a["rss"], (a, b)


@pytest.mark.slow
def test_peak_memory_bounded_8k_scene(tmp_path):
    """8,000 x 8,000 (and a 4x smaller one): run with ``-m slow`` (a few minutes on 2 cores)."""
    a, b = _growth(tmp_path, 8000, 8000)
    assert b["rss"] < 1.2 * a["rss"], (a, b)
