import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image, ImageDraw

from casdesk.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_subcommand_has_help(capsys):
    from casdesk.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"init", "add-scene", "crop", "import-dataset", "info", "export", "demo"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        assert "usage: casdesk" in capsys.readouterr().out


def test_pipeline_on_real_landsat(capsys, public_data: Path, tmp_path: Path):
    project = tmp_path / "p.casdesk"
    assert run(capsys, "init", project)[0] == 0
    code, out, _ = run(capsys, "add-scene", project, public_data / "RGB.byte.tif", "--labels",
                       public_data / "box.shp", "--sensor", "SAT", "--json")
    assert code == 0 and json.loads(out)["labels"] == 1
    code, out, _ = run(capsys, "crop", project, "--size", "256", "--stride", "128", "--json")
    assert json.loads(out) == {"RGB.byte": {"tiles": 30, "labelled_tiles": 12}}
    code, out, _ = run(capsys, "info", project, "--json")
    info = json.loads(out)
    assert info["tiles"] == 30 and info["scenes"][0]["crs"] == "EPSG:32618"
    assert 0.05 < info["labelled_fraction"] < 0.2
    code, out, _ = run(capsys, "export", project, tmp_path / "out", "--json")
    assert json.loads(out)["tiles"] == 30
    assert len(list((tmp_path / "out" / "RGB.byte" / "mask").glob("*.tif"))) == 30


@pytest.mark.parametrize(
    ("name", "message"),
    [("corrupt.tif", "damaged"), ("all-nodata.tif", "every pixel is nodata"), ("nope.tif", "not found")],
)
def test_bad_scenes_exit_2_with_a_message(capsys, public_data: Path, tmp_path: Path, name: str, message: str):
    project = tmp_path / "p.casdesk"
    main(["init", str(project)])
    code, _, err = run(capsys, "add-scene", project, public_data / name)
    assert code == 2
    assert message in err and name in err and "Traceback" not in err
    code, out, _ = run(capsys, "info", project, "--json")
    assert json.loads(out)["scenes"] == []


def test_malformed_labelme_and_not_a_project(capsys, public_data: Path, tmp_path: Path):
    project = tmp_path / "p.casdesk"
    main(["init", str(project)])
    bad = tmp_path / "bad.json"
    bad.write_text('{"shapes": [{"label": "landslide", "points": "oops"}]')
    code, _, err = run(capsys, "add-scene", project, public_data / "RGB.byte.tif", "--labels", bad)
    assert code == 2 and "bad.json" in err
    notes = tmp_path / "notes.casdesk"
    notes.write_text("not sqlite")
    code, _, err = run(capsys, "info", notes)
    assert code == 2 and "not a casdesk project" in err


def test_import_labelme_folder_matches_labelme_rules(capsys, public_data: Path, tmp_path: Path):
    project = tmp_path / "p.casdesk"
    run(capsys, "init", project)
    code, out, _ = run(capsys, "import-dataset", project, public_data / "labelme", "--label-name", "person", "--json")
    assert code == 0 and json.loads(out)["format"] == "labelme"
    from casdesk.core.project.catalog import Catalog

    with Catalog.open(project) as cat:
        tiles = cat.tiles()
        assert len(tiles) == 3
        labelled = 0
        for tile in tiles:
            doc = json.loads((public_data / "labelme" / f"{tile.name}.json").read_text())
            ref = Image.new("L", (doc["imageWidth"], doc["imageHeight"]), 0)
            for shape in doc["shapes"]:  # LabelMe: later shapes overwrite earlier ones
                value = 255 if shape["label"] == "__ignore__" else int(shape["label"] == "person")  # labelme2voc
                pts = [tuple(p) for p in shape["points"]]
                if shape.get("shape_type", "polygon") == "polygon":
                    ImageDraw.Draw(ref).polygon(pts, outline=value, fill=value)
                elif shape["shape_type"] == "rectangle":
                    ImageDraw.Draw(ref).rectangle(pts, outline=value, fill=value)
            ref = np.array(ref)
            with rasterio.open(tile.mask_path) as ds:
                ours = ds.read(1)
            labelled += int((ref == 1).sum() > 0)
            np.testing.assert_array_equal(ours, ref, err_msg=tile.name)  # LabelMe's rule, pixel for pixel
        assert labelled == 2


def test_demo_builds_its_project(capsys, tmp_path: Path):
    code, out, _ = run(capsys, "demo", "--dir", tmp_path, "--no-gui")
    assert code == 0 and "demo project" in out
    code, out, _ = run(capsys, "info", tmp_path / "demo.casdesk", "--json")
    info = json.loads(out)
    assert info["tiles"] == 49
    assert info["scenes"][0]["labels"] >= 10
    assert 0.01 < info["labelled_fraction"] < 0.2


def test_export_accepted_only_honours_qc(capsys, public_data: Path, tmp_path: Path):
    from casdesk.core.project.catalog import Catalog
    from casdesk.core.qc.rules import accepted_tile_ids, set_decision

    project = tmp_path / "p.casdesk"
    run(capsys, "init", project)
    run(capsys, "add-scene", project, public_data / "RGB.byte.tif", "--labels", public_data / "box.shp")
    run(capsys, "crop", project, "--size", "256", "--stride", "128")
    code, out, _ = run(capsys, "qc", project, "--json")
    assert code == 0
    with Catalog.open(project) as cat:
        accepted = accepted_tile_ids(cat)
        assert accepted, "some tiles are labelled and inside the footprint"
        set_decision(cat, [accepted[0]], "reject", note="test")
        expected = set(accepted_tile_ids(cat))
        names = {t.name for t in cat.tiles(ids=sorted(expected))}
    code, out, _ = run(capsys, "export", project, tmp_path / "out", "--accepted-only", "--json")
    assert code == 0 and json.loads(out)["tiles"] == len(expected)
    exported = {p.stem for p in (tmp_path / "out" / "RGB.byte" / "img").glob("*.tif")}
    assert exported == names
