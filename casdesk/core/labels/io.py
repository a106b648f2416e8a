"""Landslide labels: vector files, label rasters, and polygon <-> mask conversion.

Polygons are kept in *pixel coordinates* of their scene (x = column, y = row, pixel
corners at integers: pixel (r, c) covers [c, c+1) x [r, r+1)), which works for rotated
grids and non-georeferenced tiles alike, and in the scene CRS when it has one.
Masks are uint8 0/1 (1 = landslide).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio import features
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from casdesk.core.errors import LabelError
from casdesk.core.raster.io import IDENTITY, RasterInfo, is_lossy, open_raster

log = logging.getLogger(__name__)

LABEL_FIELDS = ("label", "name", "class", "classname", "type", "category")
VECTOR_SUFFIXES = {".shp", ".gpkg", ".geojson", ".json", ".fgb", ".kml", ".gml"}
RASTER_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp"}


@dataclass
class LabelSet:
    """Polygons ready for the catalog, plus what the user should be told about them."""

    labels: list[dict[str, Any]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def geometries(self) -> list[BaseGeometry]:
        return [shapely.from_wkt(lab["geometry_px"]) for lab in self.labels]


# --------------------------------------------------------------------------- masks
def rasterize_polygons(
    geometries: Sequence[BaseGeometry],
    shape_rc: tuple[int, int],
    transform: Affine = IDENTITY,
    all_touched: bool = False,
) -> np.ndarray:
    """Burn polygons into a uint8 0/1 mask of ``shape_rc`` (rows, cols).

    ``transform`` maps mask pixels to the geometries' coordinates: identity when the
    geometries are in the mask's own pixel coordinates, ``Affine.translation(col_off,
    row_off)`` for a window of a scene whose polygons are in scene pixel coordinates.
    A pixel is landslide when its centre is inside a polygon (GDAL's rule).
    """
    geoms = [g for g in geometries if g is not None and not g.is_empty]
    if not geoms:
        return np.zeros(shape_rc, dtype=np.uint8)
    return features.rasterize(
        ((g, 1) for g in geoms),
        out_shape=shape_rc,
        transform=transform,
        fill=0,
        all_touched=all_touched,
        dtype="uint8",
    )


def mask_to_polygons(
    mask: np.ndarray,
    transform: Affine = IDENTITY,
    min_area: float = 0.0,
    simplify: float = 0.0,
    value: int = 1,
) -> list[Polygon]:
    """Valid polygons (holes kept) of the ``value`` pixels of a mask (True in a boolean
    mask), in ``transform``'s coordinates.

    Exact: without ``simplify``/``min_area`` the polygons rasterized back by GDAL's
    pixel-centre rule give the mask pixel for pixel. Components are 4-connected (pixels
    touching only at a corner are separate polygons), so no ring touches itself; anything
    GEOS still finds invalid is repaired with ``make_valid`` (same pixels).
    ``min_area`` and ``simplify`` are in the same units (pixels for the identity
    transform, map units otherwise). Simplification preserves topology.
    """
    arr = np.asarray(mask)
    m = arr.astype(bool) if arr.dtype == bool else (arr == value)
    m = m.astype(np.uint8)
    polys: list[Polygon] = []
    for geom, v in features.shapes(m, mask=m.astype(bool), transform=transform, connectivity=4):
        if v != 1:
            continue
        poly = valid_polygonal(shape(geom))
        if simplify > 0:
            poly = valid_polygonal(poly.simplify(simplify, preserve_topology=True))
        for part in getattr(poly, "geoms", [poly]):
            if part.area >= min_area and not part.is_empty:
                polys.append(part)
    return polys


def valid_polygonal(geom: BaseGeometry) -> BaseGeometry:
    """``geom`` made valid (``make_valid``) keeping only its polygonal parts."""
    if geom.is_valid:
        return geom
    fixed = shapely.make_valid(geom)
    polys = [g for g in _flat(fixed) if g.geom_type == "Polygon" and not g.is_empty]
    if not polys:
        return Polygon()
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def _flat(geom: BaseGeometry) -> list[BaseGeometry]:
    if hasattr(geom, "geoms"):
        out: list[BaseGeometry] = []
        for g in geom.geoms:
            out += _flat(g)
        return out
    return [geom]


def mask_to_cas_label(mask: np.ndarray) -> np.ndarray:
    """The released CAS ``label/`` convention: 3-band RGB, landslide black on white
    (255, ignore, is not landslide: white)."""
    band = np.where(np.asarray(mask) == 1, np.uint8(0), np.uint8(255))
    return np.stack((band, band, band))


LOSSY_DARK = 64
"""In a JPEG-compressed label, a band value up to this counts as black (the 8 px blocks
ring by tens of DN along a label's edge and leave a few DN everywhere)."""


def binarize_label_array(
    data: np.ndarray, path: Path | None = None, nodata: float | None = None, lossy: bool = False
) -> np.ndarray:
    """Turn a label raster (bands, rows, cols) into a 0/1 mask, detecting the convention;
    pixels equal to ``nodata`` (in every band) become 255, the ignore value.

    - one band: 0/1 or 0/255 (or any two values): landslide = value > 0.
    - three or more bands where every pixel is black or white: the CAS ``label/``
      convention, landslide = black (0, 0, 0) on white.
    - three or more bands otherwise (e.g. landslide red on black): landslide = any
      non-black pixel.

    ``lossy``: the raster is JPEG-compressed, so no pixel is exactly black or white: black
    is every band <= :data:`LOSSY_DARK`, white every band >= 255 - LOSSY_DARK, and a
    one-band mask whose values exceed 1 is split at half its maximum. Read exactly, a CAS
    label saved as JPEG was taken for "landslide = any non-black pixel" and came out
    inverted (93 % landslide for 8 %).
    """
    if data.ndim == 2:
        data = data[None]
    missing = None
    if nodata is not None:
        missing = np.all(np.isnan(data) if np.isnan(nodata) else data == nodata, axis=0)
    if lossy and np.issubdtype(data.dtype, np.integer):
        out = _binarize_lossy(data, path, missing)
    else:
        out = _binarize(data, path, missing)
    if missing is not None:
        out[missing] = 255
    return out


def _binarize(data: np.ndarray, path: Path | None, missing: np.ndarray | None) -> np.ndarray:
    if data.shape[0] == 1:
        return (np.nan_to_num(data[0]) > 0).astype(np.uint8)
    rgb = data[:3]
    black = np.all(rgb == 0, axis=0)
    white = np.all(rgb == 255, axis=0)
    known = black | white if missing is None else black | white | missing
    if np.all(known) and white.any():
        if white.mean() < 0.5 and black.any():
            log.info("%s: black/white label with mostly black: read as CAS (landslide black)", path)
        return black.astype(np.uint8)
    return (~black).astype(np.uint8)


def _binarize_lossy(data: np.ndarray, path: Path | None, missing: np.ndarray | None) -> np.ndarray:
    """:func:`_binarize` for a JPEG-compressed label (see :func:`binarize_label_array`)."""
    if data.shape[0] == 1:
        top = int(data.max()) if data.size else 0
        return (data[0] > (top // 2 if top > 1 else 0)).astype(np.uint8)
    rgb = data[:3]
    black = np.all(rgb <= LOSSY_DARK, axis=0)
    white = np.all(rgb >= 255 - LOSSY_DARK, axis=0)
    known = black | white if missing is None else black | white | missing
    if known.mean() >= 0.995 and white.any():  # black and white but for a few edge pixels
        grey = rgb.astype(np.float32).mean(axis=0)
        return (grey < 128).astype(np.uint8)
    return (~black).astype(np.uint8)


def read_label_raster(path: str | Path, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a label raster (GeoTIFF or PNG/JPEG) as a uint8 mask: 0/1, and 255 (ignore)
    where the raster has its nodata value."""
    p = Path(path)
    with open_raster(p) as ds:
        if expected_shape is not None and (ds.height, ds.width) != tuple(expected_shape):
            raise LabelError(
                f"label raster is {ds.width}x{ds.height} but the image is "
                f"{expected_shape[1]}x{expected_shape[0]}",
                p,
                "labels must be on the same pixel grid as the image",
            )
        try:
            data = ds.read()
        except Exception as exc:  # noqa: BLE001 - rasterio raises several IO errors
            raise LabelError(f"label pixels cannot be read ({exc})", p) from exc
        nodata = ds.nodata
        lossy = is_lossy(ds)
    return binarize_label_array(data, p, nodata, lossy)


# --------------------------------------------------------------------------- vectors
def _pick_label_field(fields: Sequence[str], wanted: str | None) -> str | None:
    if wanted:
        if wanted not in fields:
            raise LabelError(f"no attribute named {wanted!r}; attributes are {list(fields)}")
        return wanted
    lower = {f.lower(): f for f in fields}
    for name in LABEL_FIELDS:
        if name in lower:
            return lower[name]
    return None


def read_vector_labels(
    path: str | Path,
    scene: RasterInfo,
    label_names: Collection[str] | None = None,
    label_field: str | None = None,
    layer: str | int | None = None,
) -> LabelSet:
    """Read polygons from a Shapefile / GeoPackage / GeoJSON onto a scene's pixel grid.

    Geometries in another CRS are reprojected to the scene's CRS (and the message says
    so). ``label_names`` keeps only features whose label attribute is one of them;
    ``None`` keeps all. Parts outside the scene are clipped off; a file with nothing
    inside the scene gives a warning message and no labels.
    """
    from pyogrio.errors import DataSourceError
    from pyogrio.raw import read

    p = Path(path)
    if not p.exists():
        raise LabelError("file not found", p, "check the path")
    try:
        meta, fids, wkb, field_data = read(p, layer=layer, return_fids=True)
    except (DataSourceError, OSError, ValueError) as exc:
        raise LabelError(f"not a vector file GDAL can read ({exc})", p) from exc
    out = LabelSet()
    fields = list(meta["fields"])
    lf = _pick_label_field(fields, label_field)
    values = (
        [None if v is None else str(v) for v in field_data[fields.index(lf)]]
        if lf
        else [None] * len(wkb)
    )
    geoms = shapely.from_wkb(wkb)
    keep = np.ones(len(geoms), dtype=bool)
    if label_names is not None:
        if lf is None:
            raise LabelError(
                "a label name filter was given but the file has no label attribute",
                p,
                f"attributes are {fields}; name one with --label-field",
            )
        names = set(label_names)
        keep = np.array([v in names for v in values], dtype=bool)
        out.messages.append(f"{int(keep.sum())} of {len(keep)} features have a label in {sorted(names)}")

    src_crs = meta.get("crs")
    if scene.crs_wkt and src_crs:
        from pyproj import CRS, Transformer

        a, b = CRS.from_user_input(src_crs), CRS.from_wkt(scene.crs_wkt)
        if not a.equals(b):
            tr = Transformer.from_crs(a, b, always_xy=True)
            geoms = shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
            out.messages.append(
                f"labels reprojected from {a.to_string()} to the scene CRS {b.to_string()}"
            )
    elif scene.crs_wkt is None and src_crs:
        raise LabelError(
            "the labels have a CRS but the scene is not georeferenced",
            p,
            "use pixel-coordinate labels (LabelMe JSON or a label raster) for this scene",
        )
    elif scene.crs_wkt and not src_crs:
        out.messages.append("the label file has no CRS: assumed to be the scene's CRS")

    inv = ~scene.transform
    box = shapely.box(0, 0, scene.width, scene.height)
    outside = 0
    fid_list = list(fids) if fids is not None else list(range(len(geoms)))
    rules = (  # a layer casdesk exported says which rule each polygon's masks were drawn with
        [v if v in ("labelme", "gdal") else "gdal" for v in field_data[fields.index("mask_rule")]]
        if "mask_rule" in fields
        else ["gdal"] * len(geoms)
    )
    for fid, geom, value, k, rule in zip(fid_list, geoms, values, keep, rules, strict=True):
        if not k or geom is None or geom.is_empty:
            continue
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            continue
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        px = shapely.transform(geom, lambda xy: _apply(inv, xy))
        clipped = px.intersection(box)
        polys = [g for g in getattr(clipped, "geoms", [clipped]) if g.geom_type == "Polygon" and g.area > 0]
        if not polys:
            outside += 1
            continue
        px_geom = polys[0] if len(polys) == 1 else MultiPolygon(polys)
        crs_geom = shapely.transform(px_geom, lambda xy: _apply(scene.transform, xy))
        out.labels.append(
            {
                "name": value if value is not None else "landslide",
                "geometry_px": px_geom.wkt,
                "geometry_crs": crs_geom.wkt if scene.crs_wkt else None,
                "attributes": {
                    "source_file": str(p.resolve()),
                    "feature": int(fid),
                    "mask_rule": rule,
                    "label_field": lf,
                    **({"label_names": sorted(label_names)} if label_names is not None else {}),
                },
            }
        )
    if outside:
        out.messages.append(f"warning: {outside} feature(s) lie outside the scene and were skipped")
    if not out.labels:
        out.messages.append(
            f"warning: no label polygon falls inside the scene {scene.path.name}; no tile will be labelled"
        )
    return out


def write_vector_labels(
    polygons: Sequence[BaseGeometry],
    path: str | Path,
    crs_wkt: str | None,
    attributes: Mapping[str, Sequence[Any] | np.ndarray[Any, Any]] | None = None,
    driver: str | None = None,
) -> Path:
    """Write polygons (in ``crs_wkt`` coordinates) to a vector file, atomically.

    GeoJSON is written in WGS-84 as RFC 7946 requires (reprojected here).
    """
    import os

    from pyogrio.raw import write

    p = Path(path)
    suffix = p.suffix.lower()
    driver = driver or {".gpkg": "GPKG", ".shp": "ESRI Shapefile", ".geojson": "GeoJSON", ".json": "GeoJSON"}.get(suffix)
    if driver is None:
        raise LabelError("unknown vector format", p, "use .gpkg, .shp or .geojson")
    geoms = np.array([valid_polygonal(g) for g in polygons], dtype=object)  # layer typed MultiPolygon
    crs_out = crs_wkt
    if driver == "GeoJSON" and crs_wkt:
        from pyproj import CRS, Transformer

        tr = Transformer.from_crs(CRS.from_wkt(crs_wkt), CRS.from_epsg(4326), always_xy=True)
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
        crs_out = "EPSG:4326"
    attributes = attributes or {}
    field_names = list(attributes)
    field_data = [np.asarray(list(v)) for v in attributes.values()]
    tmp_dir = p.parent / f".{p.stem}.tmp"
    tmp_dir.mkdir(exist_ok=True)
    tmp = tmp_dir / p.name
    try:
        write(
            tmp,
            geometry=shapely.to_wkb(geoms) if len(geoms) else np.array([], dtype=object),
            field_data=field_data,
            fields=field_names,
            crs=crs_out,
            driver=driver,
            geometry_type="MultiPolygon",
            promote_to_multi=True,
        )
        for f in tmp_dir.iterdir():
            os.replace(f, p.parent / f.name)
    finally:
        for f in tmp_dir.iterdir():
            f.unlink()
        tmp_dir.rmdir()
    return p


def _apply(t: Affine, xy: np.ndarray) -> np.ndarray:
    x, y = xy[:, 0], xy[:, 1]
    return np.column_stack((t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f))


def pixel_to_crs(geom: BaseGeometry, transform: Affine) -> BaseGeometry:
    return shapely.transform(geom, lambda xy: _apply(transform, xy))


def crs_to_pixel(geom: BaseGeometry, transform: Affine) -> BaseGeometry:
    return shapely.transform(geom, lambda xy: _apply(~transform, xy))
