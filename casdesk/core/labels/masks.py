"""The one rasteriser: stored labels -> a tile mask, each label by the rule it was drawn with.

Every stored label remembers its *mask rule* in ``attributes['mask_rule']``:

- ``"labelme"`` (LabelMe files, editor drawings): LabelMe's own ``shape_to_mask`` /
  ``shapes_to_label``, drawn with PIL (:func:`casdesk.core.labels.labelme.draw_shape`):
  polygons filled with their outline, rectangles, circles, lines / line strips 10 px wide,
  points of radius 5, ``mask`` shapes pasted. A LabelMe-origin label keeps its original
  shape (``attributes['labelme']['shape_type'/'points'/'mask']``) until its geometry is edited;
  then its stored polygon is drawn by the same rule.
- ``"gdal"`` (GIS layers, polygonised rasters, labels stored before rules existed): GDAL's
  pixel-centre rule, what QGIS's *Rasterize* gives; the polygons of a polygonised mask give
  that mask back pixel for pixel.

Labels paint in catalog order (later over earlier) onto the tile's *base* (an imported raster
label kept as is, else zeros). What a label paints is :func:`label_burn`: 1 landslide, 0
background (a LabelMe label outside the label filter given at import, or ``_background_``),
255 ignore (``__ignore__``/``nodata``). A GDAL-rule label burning 0 paints nothing (a GIS
rasterize burns only the features it is given). Pixels outside the image footprint (image
nodata) are 255 in every mask.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio import features
from shapely.geometry.base import BaseGeometry

from casdesk.core.labels.labelme import IGNORE_VALUE, burn_value, draw_shape

RULE_LABELME = "labelme"
RULE_GDAL = "gdal"
RULES = (RULE_LABELME, RULE_GDAL)
MASK_IGNORE = IGNORE_VALUE


@dataclass(frozen=True)
class MaskLabel:
    """What the rasteriser needs of one stored label."""

    name: str
    geometry: BaseGeometry | None  # stored pixel coordinates
    attributes: Mapping[str, Any]


def label_rule(attributes: Mapping[str, Any] | None) -> str:
    """The label's mask rule; labels stored before rules existed were rasterized by GDAL's rule."""
    rule = (attributes or {}).get("mask_rule")
    return rule if rule in RULES else RULE_GDAL


def label_filter(attributes: Mapping[str, Any] | None) -> list[str] | None:
    """The label-name filter given when the label was imported (None: no filter)."""
    names = (attributes or {}).get("label_names")
    return [str(n) for n in names] if isinstance(names, list) else None


def label_burn(name: str, attributes: Mapping[str, Any] | None) -> int:
    """0, 1 or 255: what the label paints (its name and the filter stored with it)."""
    return burn_value(name, label_filter(attributes))


def labelme_shape_of(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The original LabelMe shape kept with a label (None once its geometry was edited)."""
    meta = (attributes or {}).get("labelme")
    if isinstance(meta, dict) and isinstance(meta.get("points"), list) and meta.get("shape_type"):
        return meta
    return None


def _rings_pixels(geom: BaseGeometry, shape_rc: tuple[int, int], offset: tuple[float, float]) -> np.ndarray:
    """Pixels of a polygon geometry by LabelMe's polygon rule: each exterior drawn with its
    outline, minus each hole drawn with its outline (a hole is a ``_background_`` polygon)."""
    out = np.zeros(shape_rc, dtype=bool)
    polys = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type == "Polygon" and not g.is_empty]
    for poly in polys:
        m = draw_shape("polygon", list(poly.exterior.coords)[:-1], shape_rc, offset=offset)
        for hole in poly.interiors:
            m &= ~draw_shape("polygon", list(hole.coords)[:-1], shape_rc, offset=offset)
        out |= m
    return out


def labelme_pixels(label: MaskLabel, shape_rc: tuple[int, int], offset: tuple[float, float]) -> np.ndarray:
    """Boolean pixels a LabelMe-rule label covers in the window at ``offset`` (x, y)."""
    meta = labelme_shape_of(label.attributes)
    if meta is not None:
        return draw_shape(
            meta["shape_type"],
            meta["points"],
            shape_rc,
            mask_b64=meta.get("mask"),
            offset=offset,
            line_width=int(meta.get("line_width") or 10),
            point_size=int(meta.get("point_size") or 5),
        )
    if label.geometry is None or label.geometry.is_empty:
        return np.zeros(shape_rc, dtype=bool)
    return _rings_pixels(label.geometry, shape_rc, offset)


def render_mask(
    labels: Iterable[MaskLabel],
    shape_rc: tuple[int, int],
    offset: tuple[int, int] = (0, 0),
    base: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 (rows, cols) mask (0, 1, 255) of ``labels`` painted in order onto ``base``.

    ``offset`` = (col_off, row_off) of the window in the labels' pixel coordinates;
    ``valid`` False marks pixels outside the image footprint (set to 255).
    """
    out = np.zeros(shape_rc, dtype=np.uint8) if base is None else np.array(base, dtype=np.uint8, copy=True)
    transform = Affine.translation(float(offset[0]), float(offset[1]))
    batch: list[tuple[BaseGeometry, int]] = []

    def flush() -> None:
        if batch:
            features.rasterize(batch, out_shape=shape_rc, out=out, transform=transform, all_touched=False, dtype="uint8")
            batch.clear()

    for lab in labels:
        burn = label_burn(lab.name, lab.attributes)
        if label_rule(lab.attributes) == RULE_GDAL:
            if burn and lab.geometry is not None and not lab.geometry.is_empty:
                batch.append((lab.geometry, burn))
            continue
        flush()
        out[labelme_pixels(lab, shape_rc, offset)] = burn
    flush()
    if valid is not None:
        out[~np.asarray(valid, dtype=bool)] = MASK_IGNORE
    return out


def geometry_pixels(geoms: Sequence[BaseGeometry], shape_rc: tuple[int, int], rule: str, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Boolean union of ``geoms`` by one rule (for previews and tests)."""
    labs = [MaskLabel("landslide", g, {"mask_rule": rule}) for g in geoms]
    return render_mask(labs, shape_rc, offset) == 1


def window_box(offset: tuple[int, int], shape_rc: tuple[int, int], margin: float = 0.0) -> BaseGeometry:
    """The window's footprint in stored pixel coordinates (``margin`` pixels wider)."""
    c0, r0 = offset
    return shapely.box(c0 - margin, r0 - margin, c0 + shape_rc[1] + margin, r0 + shape_rc[0] + margin)
