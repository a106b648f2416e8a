"""Qt-free polygon editing: the vertex model the editor mutates and the shapely operations
behind brush, eraser, holes and snapping.

An editable shape is a list of *parts*; a part is a list of *rings* (exterior first, then
holes); a ring is a float64 (N, 2) array of (x, y) pixel coordinates with no repeated
closing vertex. The editor changes single vertices in place (cheap while dragging) and turns
the rings into a shapely geometry only to save, rasterize or run a boolean operation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

Ring = np.ndarray  # (N, 2) float64, open (first vertex not repeated)
Part = list[Ring]
Parts = list[Part]

MIN_RING_VERTICES = 3


@dataclass(frozen=True)
class VertexRef:
    """Address of one vertex: part, ring (0 = exterior), index in the ring."""

    part: int
    ring: int
    index: int


# --------------------------------------------------------------------------- conversion
def open_ring(coords: Iterable[Sequence[float]]) -> Ring:
    """(N, 2) array without the closing vertex that shapely and WKT repeat."""
    arr = np.asarray(list(coords), dtype=np.float64).reshape(-1, 2)
    if len(arr) > 1 and np.array_equal(arr[0], arr[-1]):
        arr = arr[:-1]
    return arr.copy()


def parts_from_geometry(geom: BaseGeometry) -> Parts:
    """Editable parts of a Polygon/MultiPolygon (other geometry types give no parts)."""
    polys = _polygons(geom)
    return [
        [open_ring(p.exterior.coords), *(open_ring(h.coords) for h in p.interiors)] for p in polys
    ]


def geometry_from_parts(parts: Parts) -> BaseGeometry:
    """A valid Polygon or MultiPolygon (possibly empty) from editable parts.

    Self-intersections a user dragged into a ring are repaired with ``make_valid`` so that
    what is saved always rasterizes as drawn.
    """
    polys = []
    for part in parts:
        if not part or len(part[0]) < MIN_RING_VERTICES:
            continue
        holes = [h for h in part[1:] if len(h) >= MIN_RING_VERTICES]
        polys.append(Polygon(part[0], holes))
    if not polys:
        return Polygon()
    geom: BaseGeometry = polys[0] if len(polys) == 1 else MultiPolygon(polys)
    if not geom.is_valid:
        geom = _area_only(shapely.make_valid(geom))
    return geom


def _polygons(geom: BaseGeometry | None) -> list[Polygon]:
    if geom is None or geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    return [g for sub in getattr(geom, "geoms", []) for g in _polygons(sub)]


def _area_only(geom: BaseGeometry) -> BaseGeometry:
    polys = [p for p in _polygons(geom) if p.area > 0]
    if not polys:
        return Polygon()
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def vertex_count(parts: Parts) -> int:
    return sum(len(r) for part in parts for r in part)


# --------------------------------------------------------------------------- hit testing
def nearest_vertex(parts: Parts, xy: tuple[float, float], tolerance: float) -> VertexRef | None:
    """The vertex closest to ``xy`` within ``tolerance`` (pixels), or None."""
    best: tuple[float, VertexRef] | None = None
    p = np.asarray(xy, dtype=np.float64)
    for i, part in enumerate(parts):
        for j, ring in enumerate(part):
            if not len(ring):
                continue
            d2 = np.sum((ring - p) ** 2, axis=1)
            k = int(np.argmin(d2))
            if d2[k] <= tolerance * tolerance and (best is None or d2[k] < best[0]):
                best = (float(d2[k]), VertexRef(i, j, k))
    return None if best is None else best[1]


def nearest_edge(
    parts: Parts, xy: tuple[float, float], tolerance: float
) -> tuple[VertexRef, tuple[float, float]] | None:
    """The edge closest to ``xy`` within ``tolerance``: (ref of the vertex to insert *at*,
    i.e. after the edge's first vertex, and the projected point on the edge)."""
    p = np.asarray(xy, dtype=np.float64)
    best: tuple[float, VertexRef, np.ndarray] | None = None
    for i, part in enumerate(parts):
        for j, ring in enumerate(part):
            if len(ring) < 2:
                continue
            a, b = ring, np.roll(ring, -1, axis=0)
            ab = b - a
            denom = np.maximum(np.sum(ab * ab, axis=1), 1e-12)
            t = np.clip(np.sum((p - a) * ab, axis=1) / denom, 0.0, 1.0)
            proj = a + ab * t[:, None]
            d2 = np.sum((proj - p) ** 2, axis=1)
            k = int(np.argmin(d2))
            if d2[k] <= tolerance * tolerance and (best is None or d2[k] < best[0]):
                best = (float(d2[k]), VertexRef(i, j, k + 1), proj[k])
    if best is None:
        return None
    return best[1], (float(best[2][0]), float(best[2][1]))


# --------------------------------------------------------------------------- vertex edits
def move_vertex(parts: Parts, ref: VertexRef, xy: tuple[float, float]) -> tuple[float, float]:
    """Move one vertex in place; return its previous position (the undo diff)."""
    ring = parts[ref.part][ref.ring]
    old = (float(ring[ref.index, 0]), float(ring[ref.index, 1]))
    ring[ref.index] = xy
    return old


def insert_vertex(parts: Parts, ref: VertexRef, xy: tuple[float, float]) -> None:
    """Insert a vertex so that it ends up at ``ref.index`` of its ring."""
    ring = parts[ref.part][ref.ring]
    parts[ref.part][ref.ring] = np.insert(ring, ref.index, xy, axis=0)


def can_remove_vertex(parts: Parts, ref: VertexRef) -> bool:
    """A ring keeps at least 3 vertices (remove the shape or hole instead)."""
    return len(parts[ref.part][ref.ring]) > MIN_RING_VERTICES


def remove_vertex(parts: Parts, ref: VertexRef) -> tuple[float, float]:
    """Remove one vertex; return its position (the undo diff)."""
    ring = parts[ref.part][ref.ring]
    old = (float(ring[ref.index, 0]), float(ring[ref.index, 1]))
    parts[ref.part][ref.ring] = np.delete(ring, ref.index, axis=0)
    return old


def translate_parts(parts: Parts, dx: float, dy: float) -> None:
    """Move a whole shape in place by (dx, dy) pixels."""
    for part in parts:
        for ring in part:
            ring += (dx, dy)


# --------------------------------------------------------------------------- brush, eraser
def brush_footprint(points: Sequence[tuple[float, float]], radius: float) -> BaseGeometry:
    """The area a round brush of ``radius`` pixels covers along a stroke."""
    pts = [tuple(map(float, p)) for p in points]
    if not pts:
        return Polygon()
    if len(pts) == 1 or all(p == pts[0] for p in pts):
        return Point(pts[0]).buffer(radius, quad_segs=8)
    return LineString(pts).buffer(radius, quad_segs=8)


def add_area(geom: BaseGeometry | None, area: BaseGeometry) -> BaseGeometry:
    """Union (brush): the result is a valid Polygon/MultiPolygon."""
    if geom is None or geom.is_empty:
        return _area_only(area)
    return _area_only(shapely.union(geom, area))


def cut_area(geom: BaseGeometry, area: BaseGeometry) -> BaseGeometry:
    """Difference (eraser / cut hole): an area inside ``geom`` becomes a hole; the result
    may be empty (the shape was erased entirely) or split into several parts."""
    return _area_only(shapely.difference(geom, area))


def simplify_stroke(geom: BaseGeometry, tolerance: float = 0.25) -> BaseGeometry:
    """Brush buffers have many vertices on their arcs; drop those within ``tolerance`` px."""
    return _area_only(geom.simplify(tolerance, preserve_topology=True))


# --------------------------------------------------------------------------- snapping
class SnapIndex:
    """Vertices of other shapes, for snapping a new or dragged vertex onto a neighbour.

    Built from (key, parts) pairs; queries are vectorized numpy over the vertices of shapes
    whose bounding box is near the query point.
    """

    def __init__(self, shapes: Iterable[tuple[int, Parts]]):
        self._keys: list[int] = []
        self._boxes: list[tuple[float, float, float, float]] = []
        self._vertices: list[np.ndarray] = []
        for key, parts in shapes:
            rings = [r for part in parts for r in part if len(r)]
            if not rings:
                continue
            verts = np.concatenate(rings)
            self._keys.append(key)
            self._vertices.append(verts)
            lo, hi = verts.min(axis=0), verts.max(axis=0)
            self._boxes.append((lo[0], lo[1], hi[0], hi[1]))
        self._box_arr = np.asarray(self._boxes, dtype=np.float64).reshape(-1, 4)

    def snap(
        self, xy: tuple[float, float], tolerance: float, exclude: int | None = None
    ) -> tuple[float, float] | None:
        """The nearest vertex within ``tolerance`` px of ``xy`` (not of shape ``exclude``)."""
        if not len(self._box_arr):
            return None
        x, y = xy
        b = self._box_arr
        near = np.nonzero(
            (b[:, 0] - tolerance <= x)
            & (x <= b[:, 2] + tolerance)
            & (b[:, 1] - tolerance <= y)
            & (y <= b[:, 3] + tolerance)
        )[0]
        best: tuple[float, np.ndarray] | None = None
        for i in near:
            if self._keys[i] == exclude:
                continue
            v = self._vertices[i]
            d2 = (v[:, 0] - x) ** 2 + (v[:, 1] - y) ** 2
            k = int(np.argmin(d2))
            if d2[k] <= tolerance * tolerance and (best is None or d2[k] < best[0]):
                best = (float(d2[k]), v[k])
        return None if best is None else (float(best[1][0]), float(best[1][1]))
