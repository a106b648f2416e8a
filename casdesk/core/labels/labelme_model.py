"""The Qt-free model of a LabelMe JSON file: :class:`LabelMeDocument` and its
:class:`LabelMeShape` objects, which remember the keys of each object and their order and
keep the keys casdesk does not know (see :mod:`casdesk.core.labels.labelme`), and the
constants of LabelMe's formats and mask rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

# The keys LabelMe 5.x writes, in its order (a new shape or document is written so).
SHAPE_KEYS = ("label", "points", "group_id", "description", "shape_type", "flags", "mask")
DOC_KEYS = ("version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth")
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
        order = self.keys if self.keys is not None else SHAPE_KEYS
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
        order = self.keys if self.keys is not None else DOC_KEYS
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
