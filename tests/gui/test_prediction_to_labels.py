"""Prediction -> editable labels: the core function the editor's "Accept as polygons" and
`casdesk labels from-prediction` share (one transaction, predicted labels replaced, edited
labels kept, masks of the touched tiles listed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely

from casdesk.cli import main
from casdesk.core.labels.from_prediction import accept_probability, polygons_from_probability
from casdesk.core.labels.store import tile_target
from casdesk.core.project.catalog import Catalog


@pytest.fixture()
def scene_project(tmp_path: Path) -> tuple[Path, int]:
    """A 128 x 128 georeferenced scene cut into four 64-pixel tiles, no labels."""
    from casdesk.core.dataset.scenes import add_scene
    from casdesk.core.dataset.synthetic import make_scene
    from casdesk.core.dataset.tiling import CropParams, crop_scene
    from casdesk.core.jobs import run_job

    scene = make_scene(tmp_path / "scene.tif", 128, 128, seed=2, n_scars=1, cloud=False, seam=False, fill=False)
    with Catalog.create(tmp_path / "proj") as cat:
        sid = add_scene(cat, scene.path, subdataset="demo").scene_id
        run_job(crop_scene(cat, sid, CropParams(size=64, stride=64), workers=1))
        path = cat.path
    return path, sid


def square_prob(size: int = 64, box: tuple[int, int, int, int] = (10, 12, 30, 40)) -> np.ndarray:
    prob = np.full((size, size), 0.1, np.float32)
    r0, c0, r1, c1 = box
    prob[r0:r1, c0:c1] = 0.9
    return prob


def test_polygons_from_probability_traces_the_thresholded_area() -> None:
    polys = polygons_from_probability(square_prob(), 0.5)
    assert len(polys) == 1
    assert polys[0].area == pytest.approx(20 * 28)
    assert polys[0].bounds == (12.0, 10.0, 40.0, 30.0)  # x = column, y = row (pixel corners)
    assert polygons_from_probability(square_prob(), 0.95) == []
    valid = np.ones((64, 64), bool)
    valid[:, :26] = False
    assert polygons_from_probability(square_prob(), 0.5, valid)[0].area == pytest.approx(20 * 14)


def test_accept_on_a_scene_tile_stores_scene_labels_replaces_predicted_keeps_edited(scene_project) -> None:
    path, sid = scene_project
    with Catalog.open(path) as cat:
        tile = next(t for t in cat.tiles() if t.col_off == 64 and t.row_off == 64)
        target = tile_target(cat, tile.id)
        assert target.kind == "scene" and target.offset == (64, 64)
        edited = cat.add_labels([{"name": "landslide", "geometry_px": shapely.box(70, 70, 75, 75).wkt}],
                                scene_id=sid, source="edited")[0]
        first = accept_probability(cat, target, square_prob(), 0.5)
        assert first.added == 1 and first.removed == 0
        [pred] = [lab for lab in cat.labels(scene_id=sid) if lab.source == "predicted"]
        geom = shapely.from_wkt(pred.geometry_px)
        assert geom.bounds == (64 + 12.0, 64 + 10.0, 64 + 40.0, 64 + 30.0)  # stored in scene pixels
        assert pred.geometry_crs is not None  # the scene is georeferenced
        assert tile.id in first.tiles
        # accepting again replaces the earlier prediction, never doubles it; the edited label stays
        second = accept_probability(cat, target, square_prob(box=(0, 0, 10, 10)), 0.5)
        assert second.added == 1 and second.removed == 1
        labels = cat.labels(scene_id=sid)
        assert sorted(lab.source for lab in labels) == ["edited", "predicted"]
        assert any(lab.id == edited for lab in labels)


def test_accepting_a_tile_keeps_the_part_of_earlier_predictions_outside_it(scene_project) -> None:
    """Tiles overlap or touch: accepting one tile replaces the predicted labels inside its
    window only; a predicted polygon reaching out of the tile keeps its outside part."""
    path, sid = scene_project
    with Catalog.open(path) as cat:
        across = cat.add_labels([{"name": "landslide", "geometry_px": shapely.box(40, 10, 90, 30).wkt}],
                                scene_id=sid, source="predicted")[0]
        right = next(t for t in cat.tiles() if t.col_off == 64 and t.row_off == 0)
        left = next(t for t in cat.tiles() if t.col_off == 0 and t.row_off == 0)
        report = accept_probability(cat, tile_target(cat, right.id), np.zeros((64, 64), np.float32), 0.5)
        assert (report.added, report.removed, report.clipped) == (0, 0, 1)
        [lab] = cat.labels(scene_id=sid)
        assert lab.id == across and lab.source == "predicted"
        assert shapely.from_wkt(lab.geometry_px).equals(shapely.box(40, 10, 64, 30))
        assert shapely.from_wkt(lab.geometry_crs).area > 0  # the CRS geometry follows
        assert {left.id, right.id} <= set(report.tiles)
        # the rest lies inside the left tile: accepting an empty prediction there removes it
        report = accept_probability(cat, tile_target(cat, left.id), np.zeros((64, 64), np.float32), 0.5)
        assert (report.removed, report.clipped) == (1, 0) and cat.labels(scene_id=sid) == []


def test_cli_from_prediction_accepts_stored_tile_predictions(scene_project, capsys, tmp_path: Path) -> None:
    path, sid = scene_project
    with Catalog.open(path) as cat:
        tiles = cat.tiles()
        rows = []
        for t in tiles:  # what `casdesk predict-tiles` stores: a 0/1 mask and a probability per tile
            prob = square_prob()
            mask_path, prob_path = tmp_path / f"{t.name}_mask.tif", tmp_path / f"{t.name}_prob.tif"
            for p, data in ((mask_path, (prob > 0.5).astype(np.uint8)), (prob_path, np.rint(prob * 254).astype(np.uint8))):
                with rasterio.open(p, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8") as dst:
                    dst.write(data[None])
            rows.append((t.id, "tiny", str(mask_path), str(prob_path), 0.5, None, "2026-01-01"))
        with cat.transaction() as db:
            db.executemany("INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    assert main(["labels", "from-prediction", str(path), "--model", "tiny", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["labels"] == len(tiles) and out["replaced"] == 0 and out["tiles_updated"] == len(tiles)
    with Catalog.open(path, readonly=True) as cat:
        labels = [lab for lab in cat.labels(scene_id=sid) if lab.source == "predicted"]
        assert len(labels) == len(tiles)
        # the masks were regenerated from the new labels
        t = next(t for t in cat.tiles() if t.col_off == 0 and t.row_off == 0)
        with rasterio.open(t.mask_path) as ds:
            assert int(ds.read(1).sum()) == 20 * 28
    # twice: replaced, not doubled; a higher threshold on the stored probability keeps nothing
    assert main(["labels", "from-prediction", str(path), "--model", "tiny", "--threshold", "0.95", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["labels"] == 0 and out["replaced"] == len(tiles)
    # a model without predictions: one line, exit 2
    assert main(["labels", "from-prediction", str(path), "--model", "nope"]) == 2
    assert "no stored tile predictions" in capsys.readouterr().err
