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
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import os
import tempfile
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from casdesk.core.errors import LabelError

SHAPE_TYPES = ("polygon", "rectangle", "circle", "line", "point", "linestrip", "points", "mask")
# Labels LabelMe reserves: never landslide when no label names are given.
RESERVED_LABELS = frozenset({"_background_", "__ignore__"})
LINE_WIDTH_PX = 10  # LabelMe draws lines and line strips this wide in masks
POINT_RADIUS_PX = 5  # ... and points as discs of this radius
MAX_IMAGE_SIDE = 1_000_000  # a larger imageWidth/imageHeight is a broken file, not an image
MAX_COORD = 1e7  # coordinates are clipped to this for drawing (pixels)
ORIENTED_TYPES = ("oriented_rectangle", "rotation")  # other tools' 4-point rectangles: polygons
IGNORE_LABELS = frozenset({"__ignore__", "nodata"})  # paint 255 (ignore), as labelme2voc does
BACKGROUND_LABELS = frozenset({"_background_", "background"})  # paint 0
IGNORE_VALUE = 255

_SHAPE_KEYS = ("label", "points", "group_id", "description", "shape_type", "flags", "mask")
_DOC_KEYS = ("version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth")
DEFAULT_VERSION = "5.4.1"
# What a key that is missing from a file reads as; such a key is written back only if changed.
_ABSENT: dict[str, Any] = {
    "group_id": None,
    "description": None,
    "mask": None,
    "flags": {},
    "shape_type": "polygon",
    "version": DEFAULT_VERSION,
    "imagePath": None,
    "imageData": None,
    "imageHeight": None,
    "imageWidth": None,
}


class LabelMeError(LabelError):
    """A LabelMe JSON file cannot be read, written or rasterized; names the file and why."""


# --------------------------------------------------------------------------- model
@dataclass
class LabelMeShape:
    """One LabelMe shape. ``points`` are [x, y] pixel coordinates (floats).

    ``keys`` is the order of the keys in the file (None for a new shape: LabelMe 5.x order);
    ``extra`` holds keys casdesk does not know, written back unchanged.
    """

    label: str
    points: list[list[float]]
    shape_type: str = "polygon"
    group_id: int | None = None
    flags: dict[str, Any] | None = field(default_factory=dict)
    description: str | None = ""
    mask: str | None = None  # base64 PNG of the bounding box (shape_type "mask")
    extra: dict[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        known = {
            "label": self.label,
            "points": [list(p) for p in self.points],
            "group_id": self.group_id,
            "description": self.description,
            "shape_type": self.shape_type,
            "flags": self.flags,
            "mask": self.mask,
        }
        order = self.keys if self.keys is not None else _SHAPE_KEYS
        return _ordered(order, known, self.extra)


@dataclass
class LabelMeDocument:
    """A whole LabelMe file. ``imageData`` is None or the base64 text of the image file."""

    shapes: list[LabelMeShape] = field(default_factory=list)
    imagePath: str | None = None  # noqa: N815 - LabelMe's key names, kept for clarity
    imageData: str | None = None  # noqa: N815
    imageHeight: int | None = None  # noqa: N815
    imageWidth: int | None = None  # noqa: N815
    version: str = DEFAULT_VERSION
    flags: dict[str, Any] | None = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        known = {
            "version": self.version,
            "flags": self.flags,
            "shapes": [s.to_json() for s in self.shapes],
            "imagePath": self.imagePath,
            "imageData": self.imageData,
            "imageHeight": self.imageHeight,
            "imageWidth": self.imageWidth,
        }
        order = self.keys if self.keys is not None else _DOC_KEYS
        return _ordered(order, known, self.extra)

    @property
    def image_shape(self) -> tuple[int, int] | None:
        """(rows, cols) as the file states it, or None when it does not."""
        if self.imageHeight is None or self.imageWidth is None:
            return None
        return int(self.imageHeight), int(self.imageWidth)


def _ordered(
    order: tuple[str, ...], known: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    """Keys in file order; known keys that were absent are only written when set."""
    out: dict[str, Any] = {}
    for key in order:
        if key in known:
            out[key] = known[key]
        elif key in extra:
            out[key] = extra[key]
    for key, value in known.items():  # set after reading a file that had no such key
        if key not in out and value != _ABSENT.get(key):
            out[key] = value
    for key, value in extra.items():
        out.setdefault(key, value)
    return out


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
        extra={k: v for k, v in data.items() if k not in _DOC_KEYS},
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
        extra={k: v for k, v in raw.items() if k not in _SHAPE_KEYS},
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


# --------------------------------------------------------------------------- masks
def burn_value(label: str, label_names: Collection[str] | None = None) -> int:
    """What a shape labelled ``label`` paints into a mask (LabelMe's ``shapes_to_label``
    with one class): 255 (ignore) for ``__ignore__``/``nodata``, 0 for ``_background_``/
    ``background`` and, when ``label_names`` is given, for every label not in it; else 1."""
    low = (label or "").lower()
    if low in IGNORE_LABELS:
        return IGNORE_VALUE
    if low in BACKGROUND_LABELS:
        return 0
    if label_names is not None:
        return 1 if label in label_names else 0
    return 1


def _xy(points: Any, offset: tuple[float, float]) -> list[tuple[float, float]]:
    dx, dy = offset
    pts = np.clip(np.asarray(points, dtype=np.float64).reshape(-1, 2), -MAX_COORD, MAX_COORD)
    return [(float(x) - dx, float(y) - dy) for x, y in pts]


def draw_shape(
    shape_type: str | None,
    points: Any,
    size: tuple[int, int],
    *,
    mask_b64: str | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
    line_width: int = LINE_WIDTH_PX,
    point_size: int = POINT_RADIUS_PX,
) -> np.ndarray:
    """Boolean (rows, cols) pixels one shape covers, drawn exactly as LabelMe's
    ``shape_to_mask`` draws it (PIL ``ImageDraw``, outline included), in a window whose
    top-left pixel corner is ``offset`` = (x, y) in the points' coordinates."""
    from PIL import Image, ImageDraw

    rows, cols = size
    kind = shape_type or "polygon"
    if kind == "mask":
        canvas = np.zeros((rows, cols), dtype=bool)
        _paste_mask(canvas, points, mask_b64, offset)
        return canvas
    img = Image.new("L", (cols, rows), 0)
    draw = ImageDraw.Draw(img)
    xy = _xy(points, offset)
    if kind == "circle" and len(xy) == 2:
        (cx, cy), (px, py) = xy
        d = math.hypot(cx - px, cy - py)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif kind == "rectangle" and len(xy) == 2:
        (x0, y0), (x1, y1) = xy
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=1, fill=1)
    elif kind in ("line", "linestrip"):
        if xy:
            draw.line(xy=xy, fill=1, width=line_width)
    elif kind in ("point", "points"):
        for cx, cy in xy:
            r = point_size
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    elif len(xy) > 2:  # polygon, oriented rectangle and any other type: LabelMe's polygon
        draw.polygon(xy=xy, outline=1, fill=1)
    elif len(xy) == 2:
        draw.line(xy=xy, fill=1, width=1)
    elif len(xy) == 1:
        draw.point(xy, fill=1)
    return np.asarray(img, dtype=bool)


def shape_mask(
    shape: LabelMeShape,
    size: tuple[int, int],
    offset: tuple[float, float] = (0.0, 0.0),
    line_width: int = LINE_WIDTH_PX,
    point_size: int = POINT_RADIUS_PX,
) -> np.ndarray:
    """Boolean (rows, cols) pixels a single shape covers, by LabelMe's rule."""
    if shape.shape_type not in SHAPE_TYPES and shape.shape_type not in ORIENTED_TYPES:
        raise LabelMeError(
            f"shape type {shape.shape_type!r} cannot be rasterized",
            None,
            f"known types: {', '.join(SHAPE_TYPES)}",
        )
    return draw_shape(
        shape.shape_type,
        shape.points,
        size,
        mask_b64=shape.mask,
        offset=offset,
        line_width=line_width,
        point_size=point_size,
    )


def decode_mask_png(mask_b64: str | None, label: str = "") -> np.ndarray:
    """The boolean array of a ``mask`` shape's base64 PNG (LabelMe's ``img_b64_to_arr``)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        png = base64.b64decode(mask_b64 or "", validate=False)
        with Image.open(io.BytesIO(png)) as im:
            arr = np.asarray(im)
    except (binascii.Error, ValueError, OSError, UnidentifiedImageError) as exc:
        raise LabelMeError(f"mask shape {label!r}: 'mask' is not a base64 PNG image ({exc})") from exc
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr.astype(bool)


def _paste_mask(
    canvas: np.ndarray, points: Any, mask_b64: str | None, offset: tuple[float, float]
) -> None:
    """``mask[y1:y2+1, x1:x2+1] = shape['mask']`` as LabelMe's ``shapes_to_label`` does."""
    img = decode_mask_png(mask_b64)
    pts = np.clip(np.asarray(points, dtype=np.float64).reshape(-1, 2), -MAX_COORD, MAX_COORD)
    x0, y0 = (int(v) for v in pts[0].astype(int))
    x0 -= int(offset[0])
    y0 -= int(offset[1])
    rows, cols = canvas.shape
    h, w = img.shape
    r0, c0 = max(0, y0), max(0, x0)
    r1, c1 = min(rows, y0 + h), min(cols, x0 + w)
    if r0 < r1 and c0 < c1:
        canvas[r0:r1, c0:c1] = img[r0 - y0 : r1 - y0, c0 - x0 : c1 - x0]


def labelme_mask(
    doc: LabelMeDocument,
    label_names: Collection[str] | None = None,
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """uint8 (rows, cols) landslide mask by LabelMe's own rule (0, 1, 255 = ignore).

    Shapes are painted in file order with :func:`burn_value`: a shape whose label is in
    ``label_names`` paints 1, any other shape paints 0 (so a later non-landslide shape cuts
    an earlier landslide); ``__ignore__`` paints 255. ``label_names`` None means every label
    is landslide except ``_background_``. ``shape`` overrides the file's image size.
    """
    size = shape or doc.image_shape
    if size is None:
        raise LabelMeError(
            "the file does not state the image size (imageHeight/imageWidth)",
            doc.imagePath,
            "pass the image shape",
        )
    out = np.zeros(size, dtype=np.uint8)
    for s in doc.shapes:
        out[shape_mask(s, size)] = burn_value(s.label, label_names)
    return out


# --------------------------------------------------------------------------- images
def load_labelme_image(doc: LabelMeDocument, json_path: str | Path) -> np.ndarray:
    """(rows, cols, 3) uint8 RGB image: the embedded ``imageData``, else ``imagePath``
    resolved relative to the JSON file's folder (Windows backslashes accepted)."""
    import cv2

    jp = Path(json_path)
    embedded = embedded_image_bytes(doc, jp)
    if embedded is not None:
        raw = embedded
        source: Path = jp
    else:
        if not doc.imagePath:
            raise LabelMeError("the file has neither imageData nor imagePath", jp)
        source = _find_image(doc.imagePath, jp)
        try:
            raw = source.read_bytes()
        except OSError as exc:
            raise LabelMeError(f"image cannot be read ({exc.strerror or exc})", source) from exc
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED) if raw else None
    if img is None:
        img = _read_with_rasterio(raw, source)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        img = np.repeat(img[:, :, :1], 3, axis=2)
    if img.dtype != np.uint8:
        img = _stretch_to_uint8(img)
    return np.ascontiguousarray(img)


def image_candidates(image_path: str, json_path: Path) -> list[Path]:
    """Where LabelMe looks for ``imagePath``: relative to the JSON file's folder (Windows
    backslashes read as separators), then absolute; then the image's file name beside the
    JSON (a folder moved as a whole)."""
    norm = image_path.replace("\\", "/")
    out: list[Path] = []
    for c in (norm, image_path):
        p = Path(c)
        out.append(p if p.is_absolute() else json_path.parent / p)
        if len(c) > 2 and c[1] == ":":  # a Windows drive path read on another system
            out.append(json_path.parent / Path(norm).name)
    out.append(json_path.parent / Path(norm).name)
    return list(dict.fromkeys(out))


def _find_image(image_path: str, json_path: Path) -> Path:
    for p in image_candidates(image_path, json_path):
        if p.is_file() and p.resolve() != json_path.resolve():
            return p
    raise LabelMeError(
        f"the image {image_path!r} it points to is not found",
        json_path,
        "put the image beside the JSON file, or embed it (imageData)",
    )


def find_image_file(doc: LabelMeDocument, json_path: str | Path) -> Path | None:
    """The image file of a LabelMe document (``imagePath`` resolved as LabelMe does, then a
    same-named image beside the JSON), or None when there is no such file (an embedded
    image, or an ``imagePath`` pointing at the JSON file itself)."""
    jp = Path(json_path)
    if doc.imagePath:
        try:
            return _find_image(doc.imagePath, jp)
        except LabelMeError:
            pass
    for suffix in (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".JPG", ".PNG"):
        candidate = jp.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def embedded_image_bytes(doc: LabelMeDocument, json_path: str | Path | None = None) -> bytes | None:
    """The decoded ``imageData`` (the image file's bytes), or None when there is none."""
    if not doc.imageData:
        return None
    try:
        raw = base64.b64decode(doc.imageData, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise LabelMeError(f"'imageData' is not base64 ({exc})", json_path) from exc
    if not raw:
        raise LabelMeError("'imageData' is empty", json_path)
    return raw


def image_suffix(raw: bytes) -> str:
    """File suffix for image bytes (by their signature); ``.png`` when unknown."""
    signatures = {b"\x89PNG": ".png", b"\xff\xd8": ".jpg", b"II*\x00": ".tif", b"MM\x00*": ".tif", b"BM": ".bmp"}
    for sig, ext in signatures.items():
        if raw.startswith(sig):
            return ext
    return ".png"


def _read_with_rasterio(raw: bytes, source: Path) -> np.ndarray:
    """Fallback for images OpenCV cannot decode (e.g. multi-band GeoTIFF)."""
    from rasterio.errors import RasterioIOError
    from rasterio.io import MemoryFile

    try:
        with MemoryFile(raw) as mem, mem.open() as ds:
            data = ds.read(list(range(1, min(3, ds.count) + 1)))
    except (RasterioIOError, ValueError) as exc:
        raise LabelMeError("the image cannot be decoded", source) from exc
    rgb = np.moveaxis(data, 0, -1)
    return rgb[:, :, ::-1] if rgb.shape[2] == 3 else rgb  # BGR, as cv2 gives


def _stretch_to_uint8(img: np.ndarray) -> np.ndarray:
    f = img.astype(np.float64)
    lo, hi = np.nanpercentile(f, [2, 98])
    return np.clip((f - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)


def encode_image_data(rgb: np.ndarray, ext: str = ".png") -> str:
    """Base64 text of an RGB image encoded as LabelMe embeds it (``imageData``)."""
    import cv2

    ok, buf = cv2.imencode(ext, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise LabelMeError(f"the image cannot be encoded as {ext}")
    return base64.b64encode(buf.tobytes()).decode("ascii")


# --------------------------------------------------------------------------- geometry
def shape_polygon_points(
    shape: LabelMeShape, circle_segments: int = 64
) -> list[tuple[float, float]] | None:
    """The outline of an area shape as (x, y) pixel-corner coordinates, or None for lines
    and points (which are not areas). Rectangles become 4 corners, circles ``circle_segments``
    vertices."""
    pts = shape.points
    if shape.shape_type == "polygon":
        return [(float(x), float(y)) for x, y in pts] if len(pts) >= 3 else None
    if shape.shape_type == "rectangle":
        (x0, y0), (x1, y1) = pts
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    if shape.shape_type == "circle":
        (cx, cy), (px, py) = pts
        r = math.hypot(cx - px, cy - py)
        if r <= 0:
            return None
        return [
            (
                cx + r * math.cos(2 * math.pi * k / circle_segments),
                cy + r * math.sin(2 * math.pi * k / circle_segments),
            )
            for k in range(circle_segments)
        ]
    return None


def iter_area_shapes(
    doc: LabelMeDocument,
) -> Iterator[tuple[LabelMeShape, list[tuple[float, float]]]]:
    """Shapes that enclose an area (polygon, rectangle, circle) with their outlines."""
    for s in doc.shapes:
        ring = shape_polygon_points(s)
        if ring is not None:
            yield s, ring


def polygon_shape(
    label: str,
    ring: list[tuple[float, float]],
    *,
    group_id: int | None = None,
    flags: Mapping[str, Any] | None = None,
    description: str = "",
) -> LabelMeShape:
    """A new LabelMe 5.x polygon shape from one ring (no closing vertex repeated)."""
    pts = [[float(x), float(y)] for x, y in ring]
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts.pop()
    return LabelMeShape(
        label=label,
        points=pts,
        shape_type="polygon",
        group_id=group_id,
        flags=dict(flags or {}),
        description=description,
    )
