"""What a LabelMe shape covers: LabelMe's own mask rule and the outlines of area shapes.

Masks follow LabelMe's ``shape_to_mask``/``shapes_to_label``, drawn with PIL's
``ImageDraw`` exactly as LabelMe does: a polygon is filled *including its outline*; lines and
line strips are 10 px wide, points discs of radius 5; a ``mask`` shape pastes its PNG at its
first point; later shapes paint over earlier ones.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import numpy as np

from casdesk.core.labels.labelme_model import (
    BACKGROUND_LABELS,
    IGNORE_LABELS,
    IGNORE_VALUE,
    LINE_WIDTH_PX,
    MAX_COORD,
    ORIENTED_TYPES,
    POINT_RADIUS_PX,
    SHAPE_TYPES,
    LabelMeDocument,
    LabelMeError,
    LabelMeShape,
)


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
