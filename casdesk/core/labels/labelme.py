"""LabelMe JSON label files: a Qt-free model, loss-free read/write, and LabelMe's mask rule.

A LabelMe file holds shapes drawn on one image, in image pixel coordinates (x = column,
y = row; LabelMe displays pixel (r, c) over [c, c+1) x [r, r+1), the same pixel-corner
convention the catalog uses). Files written by LabelMe 3.x-5.x differ in which keys they
carry (``description``, ``mask`` appeared in 5.x), so the model remembers the keys of each
object and their order, and keeps keys it does not know: reading then writing a file gives
back the same JSON (only whitespace may differ).

Masks follow LabelMe's own ``shape_to_mask``/``shapes_to_label``, drawn with PIL's
``ImageDraw`` exactly as LabelMe does: a polygon is filled *including its outline*; lines and
line strips are 10 px wide, points discs of radius 5; a ``mask`` shape pastes its PNG at its
first point; later shapes paint over earlier ones.

The module is split by responsibility: the model and constants
(:mod:`~casdesk.core.labels.labelme_model`), reading and writing (here), the mask rule and
area outlines (:mod:`~casdesk.core.labels.labelme_shapes`), the image
(:mod:`~casdesk.core.labels.labelme_images`). Every name is importable from this module.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from casdesk.core.errors import LabelError
from casdesk.core.labels.labelme_images import (
    embedded_image_bytes,
    encode_image_data,
    find_image_file,
    image_candidates,
    image_suffix,
    load_labelme_image,
)
from casdesk.core.labels.labelme_model import (
    BACKGROUND_LABELS,
    DEFAULT_VERSION,
    DOC_KEYS,
    IGNORE_LABELS,
    IGNORE_VALUE,
    LINE_WIDTH_PX,
    MAX_COORD,
    MAX_IMAGE_SIDE,
    ORIENTED_TYPES,
    POINT_RADIUS_PX,
    RESERVED_LABELS,
    SHAPE_KEYS,
    SHAPE_TYPES,
    LabelMeDocument,
    LabelMeError,
    LabelMeShape,
)
from casdesk.core.labels.labelme_shapes import (
    burn_value,
    decode_mask_png,
    draw_shape,
    iter_area_shapes,
    labelme_mask,
    polygon_shape,
    shape_mask,
    shape_polygon_points,
)

__all__ = [  # the names importers use from here; most live in the modules above
    "BACKGROUND_LABELS", "DEFAULT_VERSION", "IGNORE_LABELS", "IGNORE_VALUE", "LINE_WIDTH_PX",
    "MAX_COORD", "MAX_IMAGE_SIDE", "ORIENTED_TYPES", "POINT_RADIUS_PX", "RESERVED_LABELS",
    "SHAPE_TYPES", "LabelMeDocument", "LabelMeError", "LabelMeShape", "atomic_write_bytes",
    "burn_value", "decode_mask_png", "draw_shape", "embedded_image_bytes", "encode_image_data",
    "find_image_file", "image_candidates", "image_suffix", "iter_area_shapes", "labelme_mask",
    "load_labelme_image", "parse_labelme", "polygon_shape", "read_labelme", "shape_mask",
    "shape_polygon_points", "write_labelme",
]


# --------------------------------------------------------------------------- reading
def read_labelme(path: str | Path) -> LabelMeDocument:
    """Read a LabelMe JSON file; raise :class:`LabelMeError` naming what is wrong."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise LabelMeError("file not found", p, "check the path") from exc
    except UnicodeDecodeError as exc:
        raise LabelMeError("not UTF-8 text, so not a LabelMe JSON file", p) from exc
    except OSError as exc:
        raise LabelMeError(f"cannot be read ({exc.strerror or exc})", p) from exc
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise LabelMeError(f"not valid JSON ({exc})", p, "was the file truncated?") from exc
    return parse_labelme(data, p)


def parse_labelme(data: Any, path: str | Path | None = None) -> LabelMeDocument:
    """Build a document from already-decoded JSON (``path`` only names it in errors)."""

    def fail(reason: str) -> LabelMeError:
        return LabelMeError(reason, path, "is this a LabelMe file?")

    if not isinstance(data, dict):
        raise fail(f"the top level is a {_kind(data)}, not an object")
    if "shapes" not in data:
        raise fail("there is no 'shapes' list")
    raw_shapes = data["shapes"]
    if not isinstance(raw_shapes, list):
        raise fail(f"'shapes' is a {_kind(raw_shapes)}, not a list")
    shapes = [_parse_shape(s, i, path) for i, s in enumerate(raw_shapes)]

    version = data.get("version", DEFAULT_VERSION)
    if not isinstance(version, str):
        raise fail(f"'version' is a {_kind(version)}, not text")
    flags = data.get("flags", {})
    if flags is not None and not isinstance(flags, dict):
        raise fail(f"'flags' is a {_kind(flags)}, not an object")
    image_path = data.get("imagePath")
    if image_path is not None and not isinstance(image_path, str):
        raise fail(f"'imagePath' is a {_kind(image_path)}, not text")
    image_data = data.get("imageData")
    if image_data is not None and not isinstance(image_data, str):
        raise fail(f"'imageData' is a {_kind(image_data)}, not base64 text")
    sizes = {}
    for key in ("imageHeight", "imageWidth"):
        value = data.get(key)
        if value is not None and (not _is_int(value) or not 0 < value <= MAX_IMAGE_SIDE):
            raise fail(f"'{key}' is {value!r}, not a positive image size in pixels")
        sizes[key] = value
    return LabelMeDocument(
        shapes=shapes,
        imagePath=image_path,
        imageData=image_data,
        imageHeight=sizes["imageHeight"],
        imageWidth=sizes["imageWidth"],
        version=version,
        flags=flags,
        extra={k: v for k, v in data.items() if k not in DOC_KEYS},
        keys=tuple(data),
    )


def _parse_shape(raw: Any, index: int, path: str | Path | None) -> LabelMeShape:
    def fail(reason: str) -> LabelMeError:
        return LabelMeError(f"shape {index}: {reason}", path, "fix or remove that shape")

    if not isinstance(raw, dict):
        raise fail(f"is a {_kind(raw)}, not an object")
    label = raw.get("label")
    if not isinstance(label, str):
        raise fail(f"'label' is {_kind(label)}, not text")
    shape_type = raw.get("shape_type", "polygon")
    if shape_type is None:
        shape_type = "polygon"  # LabelMe 3.x wrote null for polygons
    if not isinstance(shape_type, str):
        raise fail(f"'shape_type' is a {_kind(shape_type)}, not text")
    points_raw = raw.get("points")
    if not isinstance(points_raw, list):
        raise fail(f"'points' is a {_kind(points_raw)}, not a list of [x, y]")
    points: list[list[float]] = []
    for j, pt in enumerate(points_raw):
        if (
            not isinstance(pt, list)
            or len(pt) != 2
            or not all(_is_number(v) and math.isfinite(v) for v in pt)
        ):
            raise fail(f"point {j} is {_short(pt)}, not [x, y] with finite numbers")
        points.append(list(pt))
    needed = {"rectangle": 2, "circle": 2, "mask": 2}.get(shape_type)
    if needed is not None and len(points) != needed:
        raise fail(f"a {shape_type} needs {needed} points, it has {len(points)}")
    if shape_type in ("polygon", "line", "linestrip", "point", "points") and not points:
        raise fail(f"a {shape_type} without points")
    group_id = raw.get("group_id")
    if group_id is not None and not _is_int(group_id):
        raise fail(f"'group_id' is {_short(group_id)}, not an integer or null")
    flags = raw.get("flags", {})
    if flags is not None and not isinstance(flags, dict):
        raise fail(f"'flags' is a {_kind(flags)}, not an object")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise fail(f"'description' is a {_kind(description)}, not text")
    mask = raw.get("mask")
    if mask is not None and not isinstance(mask, str):
        raise fail(f"'mask' is a {_kind(mask)}, not base64 PNG text")
    if shape_type == "mask" and mask is None:
        raise fail("a mask shape without 'mask' data")
    return LabelMeShape(
        label=label,
        points=points,
        shape_type=shape_type,
        group_id=group_id,
        flags=flags,
        description=description,
        mask=mask,
        extra={k: v for k, v in raw.items() if k not in SHAPE_KEYS},
        keys=tuple(raw),
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _kind(v: Any) -> str:
    return {dict: "object", list: "list", str: "text", type(None): "null", bool: "boolean"}.get(
        type(v), "number"
    )


def _short(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, float) or math.isfinite(v) else repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------- writing
def write_labelme(doc: LabelMeDocument, path: str | Path) -> None:
    """Write ``doc`` as LabelMe does (UTF-8, indent 2), atomically: temp file + os.replace."""
    p = Path(path)
    try:
        text = json.dumps(doc.to_json(), ensure_ascii=False, indent=2)
    except (TypeError, ValueError) as exc:
        raise LabelMeError(
            f"cannot be written: the labels hold a value JSON cannot ({exc})", p
        ) from exc
    atomic_write_bytes(p, text.encode("utf-8"), LabelMeError)


def atomic_write_bytes(path: Path, payload: bytes, error: type[LabelError] = LabelError) -> None:
    """Write to a temp file in the same folder, fsync, then replace ``path`` in one step."""
    if not path.parent.is_dir():
        raise error("the folder does not exist", path.parent, "create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode(path))  # mkstemp makes 0600: give the file normal permissions
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise error(f"cannot be written ({exc.strerror or exc})", path) from exc


def _file_mode(path: Path) -> int:
    """The mode of the file being replaced, else 0666 minus the umask (what open() gives)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask
