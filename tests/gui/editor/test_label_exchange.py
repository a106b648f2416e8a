"""`casdesk labels export|import`: vector files in the scene CRS / WGS-84, LabelMe per tile."""

from __future__ import annotations

import json

import numpy as np
import pyogrio
import pytest
import shapely

from casdesk.cli import main
from casdesk.core.jobs import run_job
from casdesk.core.labels.exchange import export_labelme, import_labelme_file
from casdesk.core.labels.labelme import labelme_mask, read_labelme, write_labelme
from casdesk.core.labels.store import regenerate_masks, scene_target, tile_target
from casdesk.core.project.catalog import Catalog


def add_polygons(path, scene_id):
    with Catalog.open(path) as cat:
        holed = shapely.Polygon([(20, 20), (200, 20), (200, 200), (20, 200)], [[(80, 80), (120, 80), (120, 120), (80, 120)]])
        other = shapely.box(300, 300, 420, 380)
        target = scene_target(cat, scene_id)
        rows = [
            {"name": "landslide", "geometry_px": g.wkt, "geometry_crs": target.to_crs(g).wkt}
            for g in (holed, other)
        ]
        cat.add_labels(rows, scene_id=scene_id, source="edited")
        run_job(regenerate_masks(cat, [t.id for t in cat.tiles()]))
    return holed, other


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".shp"])
def test_vector_export_import_round_trip(editor_project, tmp_path, capsys, suffix) -> None:
    holed, other = add_polygons(editor_project.path, editor_project.scene_id)
    out = tmp_path / f"labels{suffix}"
    assert main(["labels", "export", str(editor_project.path), str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"] == 2
    info = pyogrio.read_info(out)
    assert info["features"] == 2
    assert {"label", "area_m2", "source", "edited"} <= set(info["fields"])
    meta, _, wkb, fields = pyogrio.raw.read(out)
    if suffix == ".geojson":
        assert "4326" in str(meta["crs"])
        x, y = shapely.from_wkb(wkb[0]).centroid.coords[0]
        assert -180 <= x <= 180 and -90 <= y <= 90
    else:
        areas = fields[list(meta["fields"]).index("area_m2")]
        with Catalog.open(editor_project.path, readonly=True) as cat:
            px_area = abs(scene_target(cat, editor_project.scene_id).transform.determinant)
        assert sorted(areas) == pytest.approx(sorted([holed.area * px_area, other.area * px_area]))
    # import into a fresh copy of the project: same polygons, in pixels, holes kept
    with Catalog.open(editor_project.path) as cat:
        for lab in cat.labels():
            cat.delete_label(lab.id)
    assert main(["labels", "import", str(editor_project.path), str(out), "--json"]) == 0
    with Catalog.open(editor_project.path, readonly=True) as cat:
        back = sorted((shapely.from_wkt(lab.geometry_px) for lab in cat.labels()), key=lambda g: g.area)
        assert cat.labels()[0].source == "imported"
        assert sum(t.label_pixels for t in cat.tiles()) > 0
    for got, want in zip(back, sorted([holed, other], key=lambda g: g.area), strict=True):
        assert got.symmetric_difference(want).area < 1e-3 * want.area
    assert len(back[-1].interiors) == 1


def test_labelme_export_import_per_tile(editor_project, tmp_path, capsys) -> None:
    add_polygons(editor_project.path, editor_project.scene_id)
    out = tmp_path / "lm"
    assert main(["labels", "export", str(editor_project.path), "--labelme", str(out)]) == 0
    files = sorted(out.glob("*/*.json"))  # one folder per subdataset
    assert files
    with Catalog.open(editor_project.path) as cat:
        for f in files:
            doc = read_labelme(f)
            tile = next(t for t in cat.tiles() if t.name == f.stem)
            import rasterio

            with rasterio.open(tile.mask_path) as ds:
                truth = ds.read(1)
            # LabelMe's rule (outline included) vs centre rule: equal up to the boundary
            diff = labelme_mask(doc) != truth
            assert diff.sum() < 0.1 * max(1, truth.sum())
            assert (f.parent / doc.imagePath).resolve() == tile.image_path.resolve()
    # a stand-alone tile: import edits its own labels and a re-export equals the file
    f = files[0]
    doc = read_labelme(f)
    doc.shapes[0].flags = {"occluded": True}
    doc.shapes[0].group_id = 7
    write_labelme(doc, f)
    with Catalog.open(editor_project.path) as cat:
        tile = next(t for t in cat.tiles() if t.name == f.stem)
        cat.execute("UPDATE tiles SET scene_id = NULL WHERE id = ?", (tile.id,))
        cat.connection.commit()
        target = tile_target(cat, tile.id)
        assert target.kind == "tile"
        ids = import_labelme_file(cat, target, f)
        assert ids
        export_labelme(cat, target, tmp_path / "again.json")
    again = json.loads((tmp_path / "again.json").read_text())
    first = json.loads(f.read_text())
    for a, b in zip(again["shapes"], first["shapes"], strict=True):
        assert a["label"] == b["label"] and a["flags"] == b["flags"] and a["group_id"] == b["group_id"]
        if a["label"] == "_background_":  # a hole: same ring, the start vertex may differ
            assert shapely.Polygon(a["points"]).equals(shapely.Polygon(b["points"]))
        else:
            assert np.allclose(a["points"], b["points"])


def test_cli_errors_are_one_line(editor_project, tmp_path, capsys) -> None:
    assert main(["labels", "export", str(editor_project.path), str(tmp_path / "x.txt")]) == 2
    assert "unknown vector format" in capsys.readouterr().err
    assert main(["labels", "import", str(editor_project.path), str(tmp_path / "nope.gpkg")]) == 2
