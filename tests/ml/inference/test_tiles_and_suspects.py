"""Predictions on project tiles and the label-error finder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from casdesk.core.jobs import run_job
from casdesk.core.project.catalog import Catalog
from casdesk.core.qc.suspects import (
    SUSPECT_METRIC,
    SuspectParams,
    find_suspects,
    score_tile,
    stored_suspects,
    suspect_queue,
)
from casdesk.core.raster.outputs import PROB_SCALE
from casdesk.ml.inference.tiles import predict_tiles
from tests.support.tiles import UTM33_2M, scar_scene, write_raster

SIZE = 96
CORRUPT = {3: "removed", 7: "shifted", 11: "added"}


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    return np.roll(np.roll(mask, dy, axis=0), dx, axis=1)


def build_project(folder: Path, n: int = 16) -> tuple[Path, dict[int, int]]:
    """Tiles with bright scars and correct masks, except the :data:`CORRUPT` ones."""
    project = folder / "p.casdesk"
    cat = Catalog.create(project)
    tdir = folder / "tiles"
    tdir.mkdir()
    rows = []
    for i in range(n):
        image, mask = scar_scene(SIZE, SIZE, seed=100 + i, n=2, border=12 if i % 4 == 1 else 0)
        label = mask.copy()
        if CORRUPT.get(i) == "removed":
            label[:] = 0
        elif CORRUPT.get(i) == "shifted":
            label = _shift(mask, 9, -9)
        elif CORRUPT.get(i) == "added":
            yy, xx = np.mgrid[0:SIZE, 0:SIZE]
            for cy, cx in ((70, 25), (25, 70), (25, 25), (70, 70), (48, 48)):
                fake = (yy - cy) ** 2 + (xx - cx) ** 2 < 13**2
                if not (fake & (mask > 0)).any():
                    break
            assert not (fake & (mask > 0)).any(), "no room for a false label"
            label[fake] = 1
        img_path = write_raster(tdir / f"t{i:02d}.tif", image, UTM33_2M, nodata=0)
        mask_path = write_raster(tdir / f"t{i:02d}_mask.tif", label[None], UTM33_2M)
        rows.append({"name": f"t{i:02d}", "subdataset": "A" if i % 2 else "B", "image_path": img_path,
                     "mask_path": mask_path, "width": SIZE, "height": SIZE,
                     "label_pixels": int(label.sum()), "valid_pixels": SIZE * SIZE})
    ids = cat.add_tiles(rows)
    cat.close()
    return project, dict(enumerate(ids))


def test_score_tile_kinds():
    yy, xx = np.mgrid[0:128, 0:128]
    blob = ((yy - 60) ** 2 + (xx - 60) ** 2 < 20**2).astype(np.uint8)
    prob = np.where(blob, 0.95, 0.05).astype(np.float32)
    valid = np.ones(blob.shape, bool)
    assert score_tile(prob, valid, blob).score == 0.0
    assert score_tile(prob, valid, blob).kind == "agree"
    missed = score_tile(prob, valid, np.zeros_like(blob))
    assert missed.kind == "missed_landslide" and missed.score > 0.85
    false = score_tile(np.full(blob.shape, 0.05, np.float32), valid, blob)
    assert false.kind == "false_label" and false.score > 0.85
    moved = score_tile(prob, valid, _shift(blob, 8, 6))
    assert moved.kind == "misaligned" and moved.shift_px == (-6, -8)
    tiny = blob * 0
    tiny[5:8, 5:8] = 1
    assert score_tile(np.where(tiny, 0.95, 0.05).astype(np.float32), valid, blob * 0 + 0).score == 0.0


def test_predict_tiles_then_suspects_finds_corrupted_labels(tmp_path, bright_predictor):
    project, ids = build_project(tmp_path)
    with Catalog.open(project) as cat:
        summary = run_job(predict_tiles(bright_predictor, cat))
        assert summary.tiles == 16 and summary.labelled == 16
        rows = cat.query("SELECT tile_id, mask_path, prob_path, confidence, iou FROM predictions")
        assert len(rows) == 16
        by_tile = {r[0]: r for r in rows}
        for i, tid in ids.items():
            tile = cat.tile(tid)
            mask_path, prob_path = cat.resolve(by_tile[tid][1]), cat.resolve(by_tile[tid][2])
            assert mask_path.is_relative_to(cat.data_dir / "predictions" / bright_predictor.name)
            with rasterio.open(mask_path) as m, rasterio.open(tile.image_path) as img:
                assert m.transform == img.transform and m.crs == img.crs
                assert set(np.unique(m.read(1))) <= {0, 1}
            with rasterio.open(prob_path) as p:
                assert p.read(1).max() <= PROB_SCALE or p.nodata == 255
            iou = by_tile[tid][4]
            if i not in CORRUPT:
                assert iou > 0.8, f"clean tile {i} IoU {iou}"
            assert 0 <= by_tile[tid][3] <= 1

        suspects = run_job(find_suspects(cat, top=5))
        top3 = {s.tile_id for s in suspects[:3]}
        assert top3 == {ids[i] for i in CORRUPT}
        kinds = {s.tile_id: s.kind for s in suspects}
        assert kinds[ids[3]] == "missed_landslide"
        assert kinds[ids[7]] == "misaligned"
        assert kinds[ids[11]] == "false_label"
        region = cat.resolve(suspects[0].attributes["region_path"])
        with rasterio.open(region) as ds:
            assert set(np.unique(ds.read(1))) <= {0, 1, 2, 255}
        queue = suspect_queue(cat)
        assert queue[:3] == [s.tile_id for s in suspects[:3]]
        n_metric = cat.execute("SELECT COUNT(*) FROM qc_metrics WHERE metric = ? AND version = 1",
                               (SUSPECT_METRIC,)).fetchone()[0]
        assert n_metric == len(suspects) <= 5
        assert len(stored_suspects(cat)) == 16  # every scored tile is stored, top N queued
        # a second run replaces, never duplicates
        run_job(find_suspects(cat, top=2, params=SuspectParams()))
        assert len(suspect_queue(cat)) == 2


def test_predict_tiles_split_part(tmp_path, bright_predictor):
    from casdesk.core.dataset.splits import make_split

    project, _ = build_project(tmp_path, n=8)
    with Catalog.open(project) as cat:
        make_split(cat, "random", "s", 0.5, 0, [])
        summary = run_job(predict_tiles(bright_predictor, cat, split="s", part="val"))
        val = cat.execute("SELECT COUNT(*) FROM split_tiles WHERE part = 'val'").fetchone()[0]
        assert summary.tiles == val < 8


def test_suspects_without_predictions_is_a_clear_error(tmp_path):
    from casdesk.core.qc.suspects import SuspectsError

    project, _ = build_project(tmp_path, n=2)
    with pytest.raises(SuspectsError, match="predict-tiles"):
        run_job(find_suspects(project))


def test_cli_predict_tiles_and_suspects(tmp_path, model_file, capsys):
    from casdesk.cli import main

    project, _ = build_project(tmp_path, n=4)
    assert main(["predict-tiles", str(model_file), str(project), "--device", "cpu", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tiles"] == 4 and summary["model"] == "tiny"
    assert main(["suspects", str(project), "--top", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out, list) and len(out) <= 3  # --top 3 caps the queue
    with Catalog.open(project, readonly=True) as cat:
        assert len(stored_suspects(cat)) == 4  # the CLI scored every predicted tile ...
        assert suspect_queue(cat) == [row["tile_id"] for row in out]  # ... and printed the queue it stored
