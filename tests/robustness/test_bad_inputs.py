"""Every bad input of the foundation issue, through the CLI as a user meets it.

One table: each row builds its input, runs one ``casdesk`` command on a project that
already holds a scene and its tiles, and states the outcome the user sees: the exit code,
a one-line message naming the file (never a traceback), and, for errors, that nothing
saved before was lost and the project still opens.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import rasterio
from rasterio.warp import transform_geom

from casdesk.core.project.catalog import Catalog

from .conftest import CliResult, assert_project_sound, small_scene

SIZE = 128  # tile size of the base project: 4 tiles from a 256 x 256 scene


@dataclass
class Case:
    """``build(tmp, project, public) -> argv``; the outcome the user must see."""

    build: Callable[[Path, Path, Path], list[str | Path]]
    code: int
    message: str  # a substring of the printed output
    names: str | None = None  # a path fragment the message must name (the file at fault)


def _geojson(path: Path, geometries: list[dict]) -> Path:
    """A GeoJSON file (RFC 7946: WGS-84 longitude/latitude)."""
    features = [{"type": "Feature", "properties": {}, "geometry": g} for g in geometries]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _box_in_wgs84(public: Path) -> dict:
    """The real box.shp polygon (UTM 18N), reprojected to WGS-84 by us, so casdesk must
    reproject it back to the scene's CRS."""
    import shapely
    from pyogrio.raw import read

    meta, _, geometry, _ = read(public / "box.shp")
    geom = shapely.from_wkb(geometry[0]).__geo_interface__
    return transform_geom(meta["crs"], "EPSG:4326", geom)


def _outside(public: Path) -> dict:
    """A polygon in the Pacific, far from the Landsat scene."""
    return {"type": "Polygon", "coordinates": [[[-150, 10], [-149, 10], [-149, 11], [-150, 11], [-150, 10]]]}


def _not_a_project(tmp: Path, project: Path, public: Path) -> list[str | Path]:
    notes = tmp / "notes.casdesk"
    notes.write_text("my field notes, not a database")
    return ["info", notes]


def _sqlite_of_another_program(tmp: Path, project: Path, public: Path) -> list[str | Path]:
    other = tmp / "other.casdesk"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE x (a)")
    return ["info", other]


def _truncated(tmp: Path, project: Path, public: Path) -> list[str | Path]:
    """A copy of the project cut in half (a crashed copy to a USB stick)."""
    with sqlite3.connect(project) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = project.read_bytes()
    cut = tmp / "cut.casdesk"
    cut.write_bytes(data[: len(data) // 2 + 100])
    return ["info", cut]


def _malformed_labelme(tmp: Path, project: Path, public: Path) -> list[str | Path]:
    bad = tmp / "scar.json"
    bad.write_text('{"version": "5.4.1", "shapes": [{"label": "landslide", "points": [[1, 2], [3')
    return ["add-scene", project, public / "RGB.byte.tif", "--labels", bad]


def _malformed_labelme_folder(tmp: Path, project: Path, public: Path) -> list[str | Path]:
    folder = tmp / "lm"
    folder.mkdir()
    (folder / "a.json").write_text('{"shapes": "not a list"}')
    return ["import-dataset", project, folder, "--format", "labelme"]


def _tiny_scene(tmp: Path, project: Path, public: Path) -> list[str | Path]:
    """float_nan.tif is 3 x 2 pixels: smaller than a default 512-pixel tile."""
    from casdesk.core.dataset.scenes import add_scene

    with Catalog.open(project) as cat:
        sid = add_scene(cat, public / "float_nan.tif").scene_id
    return ["crop", project, "--scene", str(sid)]


CASES: dict[str, Case] = {
    "corrupt-geotiff": Case(lambda t, p, d: ["add-scene", p, d / "corrupt.tif"], 2, "damaged", "corrupt.tif"),
    "all-nodata": Case(lambda t, p, d: ["add-scene", p, d / "all-nodata.tif"], 2, "every pixel is nodata",
                       "all-nodata.tif"),
    "missing-scene": Case(lambda t, p, d: ["add-scene", p, t / "nowhere.tif"], 2, "file not found", "nowhere.tif"),
    "missing-labels": Case(lambda t, p, d: ["add-scene", p, d / "RGB.byte.tif", "--labels", t / "gone.gpkg"], 2,
                           "not found", "gone.gpkg"),
    "missing-project": Case(lambda t, p, d: ["info", t / "nope.casdesk"], 2, "no such project", "nope.casdesk"),
    "scene-smaller-than-tile": Case(_tiny_scene, 2,
                                    "the scene (3x2) is smaller than one 512-pixel tile (use --edge pad",
                                    "float_nan.tif"),
    "not-a-database": Case(_not_a_project, 2, "not a casdesk project", "notes.casdesk"),
    "sqlite-of-another-program": Case(_sqlite_of_another_program, 2, "another program", "other.casdesk"),
    "truncated-project": Case(_truncated, 2, "truncated or damaged; it was not modified", "cut.casdesk"),
    "malformed-labelme": Case(_malformed_labelme, 2, "not valid JSON", "scar.json"),
    "malformed-labelme-folder": Case(_malformed_labelme_folder, 2, "'shapes' is a text", "a.json"),
    "labels-in-another-crs": Case(
        lambda t, p, d: ["add-scene", p, d / "RGB.byte.tif", "--labels", _geojson(t / "box.geojson", [_box_in_wgs84(d)])],
        0, "labels reprojected from EPSG:4326 to the scene CRS"),
    "labels-outside-scene": Case(
        lambda t, p, d: ["add-scene", p, d / "RGB.byte.tif", "--labels", _geojson(t / "far.geojson", [_outside(d)])],
        0, "warning: no label polygon falls inside the scene RGB.byte.tif; no tile will be labelled"),
    # We run as root, so chmod cannot make a folder unwritable: /proc refuses new folders
    # for everyone (the os.access variant is test_unwritable_folder_by_permissions).
    "unwritable-crop-folder": Case(lambda t, p, d: ["crop", p, "--size", SIZE, "--out", "/proc/casdesk-tiles"], 2,
                                   "cannot create the tile folders", "/proc"),
    "unwritable-export-folder": Case(lambda t, p, d: ["export", p, "/proc/casdesk-export"], 2,
                                     "export failed", "/proc/casdesk-export"),
}


@pytest.fixture()
def base_project(tmp_path: Path, cli: Callable[..., CliResult]) -> Path:
    """A project with one synthetic scene cropped into 4 tiles: what must survive."""
    project = tmp_path / "base.casdesk"
    assert cli("init", project).code == 0
    assert cli("add-scene", project, small_scene(tmp_path / "scene.tif")).code == 0
    assert cli("crop", project, "--size", SIZE).code == 0
    return project


def _snapshot(project: Path) -> dict[str, object]:
    cat = assert_project_sound(project)
    try:
        return {"scenes": [s.name for s in cat.scenes()], "tiles": sorted((t.id, t.name) for t in cat.tiles()),
                "labels": len(cat.labels())}
    finally:
        cat.close()


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input(case: Case, base_project: Path, tmp_path: Path, public_data: Path,
                   cli: Callable[..., CliResult]) -> None:
    argv = case.build(tmp_path, base_project, public_data)
    before = _snapshot(base_project)
    watched = [Path(a) for a in argv[1:] if str(a).endswith(".casdesk")]
    bytes_before = {p: p.read_bytes() for p in watched if p.exists() and p != base_project}

    result = cli(*argv)

    assert result.code == case.code, result.text
    assert case.message in result.text
    assert "Traceback" not in result.text
    if case.code:
        [line] = result.err.strip().splitlines()  # one line, prefixed with the command
        assert line.startswith(f"casdesk {argv[0]}: error: ")
        assert case.names is not None and case.names in line
        assert _snapshot(base_project) == before  # nothing saved before was lost
    for path, data in bytes_before.items():
        assert path.read_bytes() == data  # a refused project file is never rewritten


def test_labels_outside_the_scene_label_no_tile(tmp_path: Path, public_data: Path,
                                                cli: Callable[..., CliResult]) -> None:
    """Warned at import, then the crop runs and no tile has landslide pixels."""
    project = tmp_path / "p.casdesk"
    cli("init", project)
    far = _geojson(tmp_path / "far.geojson", [_outside(public_data)])
    added = cli("add-scene", project, public_data / "RGB.byte.tif", "--labels", far, "--json")
    assert added.code == 0
    assert json.loads(added.out)["labels"] == 0
    crop = cli("crop", project, "--size", "256", "--json")
    assert crop.code == 0
    assert json.loads(crop.out)["RGB.byte"] == {"tiles": 12, "labelled_tiles": 0}


def test_labels_in_another_crs_land_on_the_right_pixels(tmp_path: Path, public_data: Path,
                                                        cli: Callable[..., CliResult]) -> None:
    """The WGS-84 copy of box.shp labels the same tiles as the UTM original."""
    labelled = []
    for name, labels in (("utm", public_data / "box.shp"),
                         ("wgs84", _geojson(tmp_path / "box.geojson", [_box_in_wgs84(public_data)]))):
        project = tmp_path / f"{name}.casdesk"
        cli("init", project)
        assert cli("add-scene", project, public_data / "RGB.byte.tif", "--labels", labels).code == 0
        crop = cli("crop", project, "--size", "256", "--json")
        labelled.append(json.loads(crop.out)["RGB.byte"])
    assert labelled[0] == labelled[1] and labelled[0]["labelled_tiles"] > 0


def test_unwritable_folder_by_permissions(base_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          cli: Callable[..., CliResult]) -> None:
    """A folder the user may not write (simulated: os.access says no, as root bypasses chmod)."""
    locked = tmp_path / "locked"
    real_access = os.access

    def access(path: object, mode: int, **kw: object) -> bool:
        if str(path).startswith(str(locked)) and mode & os.W_OK:
            return False
        return real_access(path, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    result = cli("crop", base_project, "--size", SIZE, "--out", locked)
    assert result.code == 2 and "Traceback" not in result.err
    assert "the tile folder is not writable" in result.err and str(locked) in result.err
    assert _snapshot(base_project)["tiles"]


def test_float_nan_nodata_scene_crops_with_nan_nodata(tmp_path: Path, public_data: Path,
                                                      cli: Callable[..., CliResult]) -> None:
    """float_nan.tif (NaN nodata) padded into one tile: NaN stays nodata, not a value."""
    project = tmp_path / "nan.casdesk"
    cli("init", project)
    assert cli("add-scene", project, public_data / "float_nan.tif").code == 0
    assert cli("crop", project, "--size", "8", "--edge", "pad").code == 0
    cat = assert_project_sound(project)
    [tile] = cat.tiles()
    cat.close()
    with rasterio.open(public_data / "float_nan.tif") as src:
        scene = src.read(1)
    with rasterio.open(tile.image_path) as ds:
        assert ds.dtypes[0] == "float32" and ds.nodata != ds.nodata  # NaN
    expected_valid = int((scene == scene).sum())  # non-NaN pixels of the scene
    assert tile.valid_pixels == expected_valid
