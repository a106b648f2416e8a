"""LabelMe JSON: loss-free round trip, LabelMe's mask rule, typed errors on broken files."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from casdesk.core.errors import LabelError
from casdesk.core.labels.labelme import (
    LabelMeDocument,
    LabelMeError,
    LabelMeShape,
    encode_image_data,
    labelme_mask,
    load_labelme_image,
    polygon_shape,
    read_labelme,
    write_labelme,
)


# --------------------------------------------------------------------------- reference
def pil_reference_mask(doc: LabelMeDocument, size: tuple[int, int], names=None) -> np.ndarray:
    """LabelMe's rule written independently with PIL, as LabelMe itself draws masks."""
    out = np.zeros(size, np.uint8)
    for s in doc.shapes:
        img = Image.new("L", (size[1], size[0]), 0)
        draw = ImageDraw.Draw(img)
        xy = [tuple(p) for p in s.points]
        if s.shape_type == "polygon":
            draw.polygon(xy, outline=1, fill=1)
        elif s.shape_type == "rectangle":
            (x0, y0), (x1, y1) = xy
            draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=1, fill=1)
        elif s.shape_type == "circle":
            (cx, cy), (px, py) = xy
            r = ((cx - px) ** 2 + (cy - py) ** 2) ** 0.5
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
        m = np.asarray(img, bool)
        if s.label == "__ignore__":  # labelme2voc: ignore (255)
            out[m] = 255
            continue
        landslide = s.label != "_background_" if names is None else s.label in names
        out[m] = int(landslide)
    return out


def assert_within_one_pixel_of_boundary(got: np.ndarray, ref: np.ndarray) -> None:
    import cv2

    kernel = np.ones((3, 3), np.uint8)
    band = cv2.dilate(ref, kernel) != cv2.erode(ref, kernel)
    diff = got != ref
    assert not (diff & ~band).any(), f"{int((diff & ~band).sum())} pixels differ away from edges"
    assert diff.sum() <= 0.2 * max(1, band.sum())


# --------------------------------------------------------------------------- examples
def test_round_trip_shared_examples(labelme_dir: Path, tmp_path: Path) -> None:
    files = sorted(labelme_dir.glob("*.json"))
    assert files
    for f in files:
        doc = read_labelme(f)
        out = tmp_path / f.name
        write_labelme(doc, out)
        assert json.loads(out.read_text("utf-8")) == json.loads(f.read_text("utf-8"))
        assert list(json.loads(out.read_text("utf-8"))) == list(json.loads(f.read_text("utf-8")))
        # twice is stable byte for byte
        write_labelme(read_labelme(out), tmp_path / "again.json")
        assert (tmp_path / "again.json").read_bytes() == out.read_bytes()


def test_masks_match_labelme_rule_on_shared_examples(labelme_dir: Path) -> None:
    for f in sorted(labelme_dir.glob("*.json")):
        doc = read_labelme(f)
        size = doc.image_shape
        for names in (None, {"person"}, {"bus", "car"}):
            got = labelme_mask(doc, names)
            assert got.dtype == np.uint8 and got.shape == size
            assert set(np.unique(got)) <= {0, 1, 255}
            np.testing.assert_array_equal(got, pil_reference_mask(doc, size, names))


def test_load_image_from_path_and_embedded(labelme_dir: Path, tmp_path: Path) -> None:
    f = sorted(labelme_dir.glob("*.json"))[0]
    doc = read_labelme(f)
    img = load_labelme_image(doc, f)
    assert img.dtype == np.uint8 and img.shape == (*doc.image_shape, 3)
    small = img[:20, :30]
    embedded = LabelMeDocument(imageData=encode_image_data(small), imageHeight=20, imageWidth=30)
    write_labelme(embedded, tmp_path / "e.json")
    back = load_labelme_image(read_labelme(tmp_path / "e.json"), tmp_path / "e.json")
    np.testing.assert_array_equal(back, small)  # PNG is lossless


def test_shapes_of_every_kind_and_later_shapes_overwrite() -> None:
    doc = LabelMeDocument(
        shapes=[
            LabelMeShape("landslide", [[2, 2], [30, 2], [30, 30], [2, 30]]),
            LabelMeShape("road", [[10, 10], [20, 20]], shape_type="rectangle"),
            LabelMeShape("landslide", [[45, 45], [45, 52]], shape_type="circle"),
            LabelMeShape("landslide", [[5.4, 40.6], [8.5, 44.5]], shape_type="rectangle"),
        ],
        imageHeight=64,
        imageWidth=64,
    )
    got = labelme_mask(doc, {"landslide"})
    ref = pil_reference_mask(doc, (64, 64), {"landslide"})
    assert_within_one_pixel_of_boundary(got, ref)
    assert got[15, 15] == 0 and got[5, 5] == 1 and got[45, 45] == 1
    assert got[2, 2] == 1 and got[30, 30] == 1  # outline included
    unknown = LabelMeDocument(
        shapes=[LabelMeShape("x", [[1, 1]], shape_type="blob")], imageHeight=4, imageWidth=4
    )
    with pytest.raises(LabelMeError, match="blob"):
        labelme_mask(unknown)


def test_unknown_keys_and_missing_optional_keys_survive(tmp_path: Path) -> None:
    data = {
        "version": "3.16.7",
        "flags": None,
        "shapes": [
            {
                "label": "a",
                "line_color": None,
                "points": [[1, 2], [3, 4], [5, 1]],
                "shape_type": "polygon",
            },
            {
                "label": "b",
                "points": [[1.5, 2.5]],
                "shape_type": "point",
                "flags": {"x": True},
                "other": [1],
            },
        ],
        "lineColor": [0, 255, 0, 128],
        "imagePath": "a.png",
        "imageData": None,
        "imageHeight": 10,
        "imageWidth": 12,
    }
    src = tmp_path / "a.json"
    src.write_text(json.dumps(data))
    doc = read_labelme(src)
    assert doc.extra == {"lineColor": [0, 255, 0, 128]}
    assert doc.shapes[0].extra == {"line_color": None}
    write_labelme(doc, tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text()) == data
    # a new shape gets LabelMe 5.x keys
    doc.shapes.append(polygon_shape("landslide", [(0, 0), (4, 0), (4, 4), (0, 0)]))
    write_labelme(doc, tmp_path / "c.json")
    new = json.loads((tmp_path / "c.json").read_text())["shapes"][-1]
    assert list(new) == [
        "label",
        "points",
        "group_id",
        "description",
        "shape_type",
        "flags",
        "mask",
    ]
    assert len(new["points"]) == 3


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "not valid JSON"),
        ("[1, 2]", "top level is a list"),
        ('{"version": "5"}', "no 'shapes'"),
        ('{"shapes": [{"label": 3, "points": []}]}', "shape 0: 'label'"),
        ('{"shapes": [{"label": "a", "points": [[1, "x"]]}]}', "point 0"),
        (
            '{"shapes": [{"label": "a", "points": [[1, 2]], "shape_type": "rectangle"}]}',
            "needs 2 points",
        ),
        ('{"shapes": [], "imageHeight": -3}', "imageHeight"),
        ('{"shapes": [{"label": "a", "points": [[NaN, 1]]}]}', "finite"),
    ],
)
def test_malformed_files_raise_labelme_errors_naming_the_file(
    tmp_path: Path, text: str, match: str
) -> None:
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(LabelMeError, match=match) as info:
        read_labelme(p)
    assert isinstance(info.value, LabelError)
    assert str(p) in str(info.value)


def test_missing_file_and_atomic_write(tmp_path: Path) -> None:
    with pytest.raises(LabelMeError, match="not found"):
        read_labelme(tmp_path / "nope.json")
    with pytest.raises(LabelMeError, match="does not exist"):
        write_labelme(LabelMeDocument(), tmp_path / "missing" / "x.json")
    write_labelme(LabelMeDocument(), tmp_path / "x.json")
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left


# --------------------------------------------------------------------------- fuzzing
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, width=32)
    | st.text(max_size=5)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
shape_like = st.fixed_dictionaries(
    {
        "label": st.one_of(st.text(max_size=4), json_values),
        "points": st.one_of(
            st.lists(
                st.lists(
                    st.floats(-50, 100, allow_nan=False) | st.integers(-50, 100),
                    min_size=1,
                    max_size=3,
                ),
                max_size=6,
            ),
            json_values,
        ),
    },
    optional={
        "shape_type": st.sampled_from(
            ["polygon", "rectangle", "circle", "line", "point", "linestrip", "mask", "blob"]
        )
        | json_values,
        "group_id": json_values,
        "flags": json_values,
        "description": json_values,
        "mask": st.text(max_size=8) | json_values,
    },
)
doc_like = st.fixed_dictionaries(
    {},
    optional={
        "shapes": st.lists(shape_like, max_size=4) | json_values,
        "version": json_values,
        "flags": json_values,
        "imagePath": json_values,
        "imageData": json_values | st.text(max_size=8),
        "imageHeight": st.integers(-2, 40) | json_values,
        "imageWidth": st.integers(-2, 40) | json_values,
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=doc_like | json_values)
def test_fuzzed_files_load_or_raise_labelme_error(tmp_path: Path, data: object) -> None:
    p = tmp_path / "fuzz.json"
    p.write_text(json.dumps(data))
    try:
        doc = read_labelme(p)
    except LabelMeError:
        return
    with contextlib.suppress(LabelMeError):
        labelme_mask(doc, shape=(16, 16))
    write_labelme(doc, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == data


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=64))
def test_fuzzed_bytes_load_or_raise_labelme_error(tmp_path: Path, raw: bytes) -> None:
    p = tmp_path / "raw.json"
    p.write_bytes(raw)
    with contextlib.suppress(LabelMeError):
        read_labelme(p)
