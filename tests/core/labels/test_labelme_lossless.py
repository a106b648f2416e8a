"""LabelMe files through casdesk: masks by LabelMe's own rule, every shape kept, round trips.

The reference below is written here, independently of casdesk, the way LabelMe's
``labelme.utils.shape_to_mask`` / ``shapes_to_label`` draw (PIL ``ImageDraw``), with the
VOC export's class values: ``_background_`` 0, ``__ignore__`` 255.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image, ImageDraw

from casdesk.cli import main
from casdesk.core.dataset.importers import import_labelme
from casdesk.core.jobs import run_job
from casdesk.core.labels.store import regenerate_masks
from casdesk.core.project.catalog import Catalog

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "public" / "labelme"


# --------------------------------------------------------------------------- reference
def ref_shape_mask(size, shape, line_width=10, point_size=5) -> np.ndarray:
    rows, cols = size
    kind = shape.get("shape_type") or "polygon"
    if kind == "mask":
        m = np.zeros(size, bool)
        arr = np.asarray(Image.open(io.BytesIO(base64.b64decode(shape["mask"])))).astype(bool)
        (x1, y1), (x2, y2) = np.asarray(shape["points"]).astype(int)
        m[y1 : y2 + 1, x1 : x2 + 1] = arr
        return m
    img = Image.new("L", (cols, rows), 0)
    draw = ImageDraw.Draw(img)
    xy = [tuple(p) for p in shape["points"]]
    if kind == "circle":
        (cx, cy), (px, py) = xy
        d = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = xy
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=1, fill=1)
    elif kind in ("line", "linestrip"):
        draw.line(xy=xy, fill=1, width=line_width)
    elif kind == "point":
        (cx, cy) = xy[0]
        draw.ellipse([cx - point_size, cy - point_size, cx + point_size, cy + point_size], outline=1, fill=1)
    else:
        draw.polygon(xy=xy, outline=1, fill=1)
    return np.array(img, dtype=bool)


def ref_mask(data: dict, names=None) -> np.ndarray:
    size = (data["imageHeight"], data["imageWidth"])
    out = np.zeros(size, np.uint8)
    for shape in data["shapes"]:
        label = shape["label"]
        if label == "__ignore__":
            value = 255
        elif label == "_background_":
            value = 0
        else:
            value = 1 if names is None or label in names else 0
        out[ref_shape_mask(size, shape)] = value
    return out


def read_mask(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def png_b64(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- generated files
def every_shape_file(folder: Path, stem: str = "all", image_path: str | None = None, embed: bool = False) -> dict:
    """A 64 x 80 image and a LabelMe file with every shape type, holes and extra keys."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(stem))
    rgb = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    mask_arr = np.zeros((6, 7), np.uint8)
    mask_arr[1:5, 2:6] = 1
    data = {
        "version": "5.4.1",
        "flags": {"reviewed": True},
        "shapes": [
            {"label": "landslide", "points": [[3.3, 4.7], [40.2, 2.5], [44.9, 30.1], [5.5, 33.3]], "group_id": 1,
             "description": "main scar", "shape_type": "polygon", "flags": {"old": False}, "mask": None,
             "score": 0.9},
            {"label": "_background_", "points": [[15.2, 12.2], [25.7, 12.2], [25.7, 20.9], [15.2, 20.9]],
             "group_id": None, "description": "", "shape_type": "polygon", "flags": {}, "mask": None},
            {"label": "landslide", "points": [[50.4, 5.5], [70.6, 18.2]], "group_id": None, "description": "",
             "shape_type": "rectangle", "flags": {}, "mask": None},
            {"label": "landslide", "points": [[60.5, 45.5], [60.5, 53.9]], "group_id": 2, "description": "",
             "shape_type": "circle", "flags": {}, "mask": None},
            {"label": "landslide", "points": [[2.0, 60.0], [30.5, 50.2]], "group_id": None, "description": "",
             "shape_type": "line", "flags": {}, "mask": None},
            {"label": "landslide", "points": [[35.0, 40.0], [40.0, 55.0], [48.2, 44.4]], "group_id": None,
             "description": "", "shape_type": "linestrip", "flags": {}, "mask": None},
            {"label": "landslide", "points": [[76.0, 60.0]], "group_id": None, "description": "",
             "shape_type": "point", "flags": {}, "mask": None},
            {"label": "landslide", "points": [[10.0, 40.0], [16.0, 45.0]], "group_id": None, "description": "",
             "shape_type": "mask", "flags": {}, "mask": png_b64(mask_arr)},
            {"label": "road", "points": [[0.0, 35.0], [79.0, 35.0], [79.0, 37.0], [0.0, 37.0]], "group_id": None,
             "description": "", "shape_type": "polygon", "flags": {}, "mask": None},
            {"label": "__ignore__", "points": [[70.0, 25.0], [79.0, 25.0], [79.0, 30.0]], "group_id": None,
             "description": "", "shape_type": "polygon", "flags": {}, "mask": None},
        ],
        "imagePath": image_path if image_path is not None else f"{stem}.png",
        "imageData": base64.b64encode(buf.getvalue()).decode("ascii") if embed else None,
        "imageHeight": 64,
        "imageWidth": 80,
        "lineColor": [0, 255, 0, 128],
    }
    if not embed:
        target = (folder / (image_path or f"{stem}.png").replace("\\", "/")).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(buf.getvalue())
    (folder / f"{stem}.json").write_text(json.dumps(data, indent=2))
    return data


def import_folder(project: Path, folder: Path, names=None, sub=None):
    with Catalog.open(project) as cat:
        result = run_job(import_labelme(cat, folder, label_names=names, subdataset=sub))
        tiles = {t.name: t for t in cat.tiles()}
    return result, tiles


@pytest.fixture()
def proj(tmp_path: Path) -> Path:
    with Catalog.create(tmp_path / "p") as cat:
        return cat.path


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("names", [None, ["person"], ["bus", "car"]])
def test_shared_examples_masks_equal_labelmes_rule(proj: Path, names) -> None:
    if not SHARED.is_dir():
        pytest.skip("shared LabelMe examples not found")
    result, tiles = import_folder(proj, SHARED, names)
    assert result == 3 and not result.skipped
    for f in sorted(SHARED.glob("*.json")):
        data = json.loads(f.read_text())
        np.testing.assert_array_equal(read_mask(tiles[f.stem].mask_path), ref_mask(data, names), err_msg=f.name)
        with Catalog.open(proj, readonly=True) as cat:
            assert len(cat.labels(tile_id=tiles[f.stem].id)) == len(data["shapes"])  # every shape kept


def test_every_shape_type_windows_paths_embedded_and_broken_files(proj: Path, tmp_path: Path) -> None:
    src = tmp_path / "lm"
    plain = every_shape_file(src, "plain")
    win = every_shape_file(src, "win", image_path="..\\images\\win.png")
    embedded = every_shape_file(src, "embedded", embed=True)
    itself = every_shape_file(src, "itself", image_path="itself.json", embed=True)  # points at the JSON itself
    (src / "broken.json").write_text('{"shapes": [{"label": "a", "points": "oops"}]}')
    (src / "noimage.json").write_text(json.dumps({**plain, "imagePath": "missing.png", "imageData": None}))
    result, tiles = import_folder(proj, src, names=["landslide"])
    assert int(result) == 4
    skipped = dict(result.skipped)
    assert set(map(lambda p: Path(p).name, skipped)) == {"broken.json", "noimage.json"}
    assert "points" in skipped[str(src / "broken.json")] and "missing.png" in skipped[str(src / "noimage.json")]
    for stem, data in (("plain", plain), ("win", win), ("embedded", embedded), ("itself", itself)):
        got = read_mask(tiles[stem].mask_path)
        want = ref_mask(data, ["landslide"])
        np.testing.assert_array_equal(got, want, err_msg=stem)
        assert {0, 1, 255} <= set(np.unique(got).tolist())  # road paints 0, __ignore__ 255
    assert tiles["win"].image_path.resolve() == (tmp_path / "images" / "win.png").resolve()
    assert tiles["embedded"].image_path.is_file() and "embedded" in tiles["embedded"].image_path.name
    # regeneration by the one rasteriser leaves every mask as it was, byte for byte
    before = {n: t.mask_path.read_bytes() for n, t in tiles.items()}
    with Catalog.open(proj) as cat:
        run_job(regenerate_masks(cat, [t.id for t in tiles.values()]))
        after = {t.name: t for t in cat.tiles()}
    for n in tiles:
        assert after[n].mask_path.read_bytes() == before[n], n
        assert after[n].modified == tiles[n].modified, n  # not even touched


def test_round_trip_export_import_export_is_loss_free(proj: Path, tmp_path: Path, capsys) -> None:
    src = tmp_path / "lm"
    originals = {s: every_shape_file(src, s, embed=(s == "e")) for s in ("a", "e")}
    import_folder(proj, src, names=["landslide"])
    out1, out2 = tmp_path / "out1", tmp_path / "out2"
    assert main(["labels", "export", str(proj), "--labelme", str(out1)]) == 0
    files = sorted(out1.glob("*/*.json"))
    assert [f.name for f in files] == ["a.json", "e.json"]
    for f in files:
        got, want = json.loads(f.read_text()), originals[f.stem]
        assert got["shapes"] == want["shapes"]  # every type, group_id, flags, description, extra keys
        assert got["flags"] == want["flags"] and got["lineColor"] == want["lineColor"]
        assert (got["imageData"] is not None) == (f.stem == "e")
        assert (f.stat().st_mode & 0o777) == (0o666 & ~_umask())
        if got["imageData"] is None:
            assert (f.parent / got["imagePath"]).resolve() == (src / "a.png").resolve()
    capsys.readouterr()
    assert main(["labels", "import", str(proj), str(out1), "--label-name", "landslide", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["labels"] == sum(len(d["shapes"]) for d in originals.values()) and not rep["skipped"]
    with Catalog.open(proj, readonly=True) as cat:
        assert len(cat.labels()) == rep["labels"]  # replaced, not duplicated
    assert main(["labels", "export", str(proj), "--labelme", str(out2)]) == 0
    for f in files:
        assert json.loads((out2 / f.parent.name / f.name).read_text()) == json.loads(f.read_text())


def test_export_never_overwrites_sources_and_keeps_subdatasets_apart(proj: Path, tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "ds" / "A", tmp_path / "ds" / "B"
    da = every_shape_file(a, "t1")
    db = every_shape_file(b, "t1")
    db["shapes"] = db["shapes"][2:4]  # B's t1 differs from A's t1
    (b / "t1.json").write_text(json.dumps(db))
    import_folder(proj, a, sub="A")
    import_folder(proj, b, sub="B")
    source_bytes = (a / "t1.json").read_bytes()
    # exporting into the source folders: refused per file unless --overwrite
    assert main(["labels", "export", str(proj), "--labelme", str(tmp_path / "ds"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["files"] == [] and len(rep["skipped"]) == 2 and "came from" in rep["skipped"][0]["reason"]
    assert (a / "t1.json").read_bytes() == source_bytes
    out = tmp_path / "out"
    assert main(["labels", "export", str(proj), "--labelme", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert len(rep["files"]) == 2  # t1 of A and t1 of B, no collision
    assert json.loads((out / "A" / "t1.json").read_text())["shapes"] == da["shapes"]
    assert json.loads((out / "B" / "t1.json").read_text())["shapes"] == db["shapes"]
    # re-import goes back to the right subdataset (no crossing over)
    assert main(["labels", "import", str(proj), str(out)]) == 0
    with Catalog.open(proj, readonly=True) as cat:
        by_sub = {t.subdataset: len(cat.labels(tile_id=t.id)) for t in cat.tiles()}
    assert by_sub == {"A": len(da["shapes"]), "B": len(db["shapes"])}
    assert main(["labels", "export", str(proj), "--labelme", str(out), "--overwrite"]) == 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_import_dataset_summary_lists_skipped_files(proj: Path, tmp_path: Path, capsys) -> None:
    src = tmp_path / "lm"
    every_shape_file(src, "good")
    (src / "bad.json").write_text("{not json")
    assert main(["import-dataset", str(proj), str(src), "--format", "labelme", "--json"]) == 1  # skips
    rep = json.loads(capsys.readouterr().out)
    assert rep["tiles"] == 1
    assert [Path(s["file"]).name for s in rep["skipped"]] == ["bad.json"] and "JSON" in rep["skipped"][0]["reason"]
    (src / "good.json").unlink()
    assert main(["import-dataset", str(proj), str(src), "--format", "labelme"]) == 2  # nothing importable
    assert "bad.json" in capsys.readouterr().err
