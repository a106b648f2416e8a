"""What the Map tab shows, read and drawn in a worker: tiles, QC states, scenes, labels and
predictions of a project (:func:`load_map`), the block images (:func:`render_all`) and one
path with every label outline (:func:`labels_path`).

No widget here: :class:`~casdesk.gui.map.panel.MapPanel` runs these off the GUI thread and
shows the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from PySide6.QtCore import QPointF
from PySide6.QtGui import QPainterPath, QPolygonF

from casdesk.core.dataset import tile_table as ti
from casdesk.core.project.catalog import Catalog
from casdesk.gui.map import layout as lay

MAX_LABEL_RINGS = 50_000
"""Label outlines drawn at most (the rest are counted in the legend)."""


@dataclass
class MapData:
    """Everything the map shows, read and drawn in a worker."""

    index: ti.TileIndex
    layout: lay.MapLayout
    predicted: np.ndarray  # bool per index row
    images: list[lay.BlockImage]
    colour_by: str
    labels_path: QPainterPath
    label_rings: int


def _rings(wkt: str) -> list[np.ndarray]:
    try:
        geom = shapely.from_wkt(wkt)
    except Exception:  # noqa: BLE001 - a broken label must not break the map
        return []
    polys = getattr(geom, "geoms", [geom])
    return [np.asarray(p.exterior.coords, float) for p in polys if getattr(p, "exterior", None) is not None]


def load_map(path: Path, colour_by: str) -> MapData:
    """Read tiles, QC states, scenes, labels and predictions; lay out and draw (worker)."""
    with Catalog.open(path, readonly=True) as catalog:
        index = ti.load_index(catalog, "latest", with_qc=True)
        scenes = []
        tile_labels: list[tuple[int, np.ndarray]] = []
        for s in catalog.scenes():
            rings: list[np.ndarray] = []
            for label in catalog.labels(scene_id=s.id):
                if label.tile_id is None:
                    rings += _rings(label.geometry_px)
            scenes.append(lay.SceneInfo(s.id, s.name, s.crs, tuple(s.transform), s.width, s.height, rings))
        for label in catalog.labels():
            if label.tile_id is not None and label.scene_id is None:
                tile_labels += [(label.tile_id, r) for r in _rings(label.geometry_px)]
        predicted_ids = catalog.predictions.predicted_tile_ids()
    layout = lay.build_layout(index, scenes)
    predicted = np.zeros(len(index), bool)
    predicted[index.rows_of(predicted_ids)] = True
    images = render_all(index, layout, predicted, colour_by)
    path_, n = labels_path(index, layout, tile_labels)
    return MapData(index, layout, predicted, images, colour_by, path_, n)


def render_all(index: ti.TileIndex, layout: lay.MapLayout, predicted: np.ndarray, colour_by: str) -> list[lay.BlockImage]:
    colours = lay.tile_colours(index, colour_by)
    labelled = index.label_pixels > 0
    return [lay.render_block(b, colours, labelled, predicted) for b in layout.blocks]


def labels_path(
    index: ti.TileIndex, layout: lay.MapLayout, tile_labels: list[tuple[int, np.ndarray]]
) -> tuple[QPainterPath, int]:
    """One path with every label outline in map coordinates (scene labels are already
    placed by the layout; tile labels go into their tile's rectangle)."""
    path = QPainterPath()
    rings = [r for b in layout.blocks for r in b.labels]
    where: dict[int, tuple[float, float, float, float, int, int]] = {}
    for b in layout.blocks:
        for k, r in enumerate(b.rows.tolist()):
            where[int(index.ids[r])] = (b.x0[k], b.y0[k], b.x1[k], b.y1[k], int(index.width[r]), int(index.height[r]))
    for tile_id, ring in tile_labels:
        box = where.get(tile_id)
        if box is not None:
            x0, y0, x1, y1, w, h = box
            rings.append(np.column_stack([x0 + ring[:, 0] * (x1 - x0) / max(w, 1), y0 + ring[:, 1] * (y1 - y0) / max(h, 1)]))
    for ring in rings[:MAX_LABEL_RINGS]:
        path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in ring]))
        path.closeSubpath()
    return path, len(rings)


def short_crs(crs: str | None) -> str:
    """A CRS for a status line: its name from WKT ("WGS 84 / UTM zone 48N"), else as is."""
    if not crs:
        return "no CRS"
    if "[" in crs and '"' in crs:
        return crs.split('"')[1]
    return crs
