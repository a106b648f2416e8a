"""The Map tab: every scene's footprint with its tile grid coloured by QC state or split,
labelled areas, tiles with predictions, and a model's predicted probability or mask over the
scenes (:mod:`casdesk.gui.map.predictions`); tiles without a georeferenced scene (the released
CAS tiles) as a grid per subdataset. Zoom with the wheel, drag to pan; a click picks a tile (a
double click opens it in Browse's detail view); a scale bar and the coordinate under the
pointer, in the scene's CRS.

Everything is read and drawn in a worker (one raster image per block, see
:mod:`casdesk.gui.map.layout`, :mod:`casdesk.gui.map.loading`); change events repaint only
the tiles they name.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsSimpleTextItem,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from casdesk.core.dataset import tile_table as ti
from casdesk.core.errors import CasdeskError
from casdesk.core.project import events as ev
from casdesk.gui.browser.loader import LatestCall
from casdesk.gui.browser.panel import patch_rows
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.map import layout as lay
from casdesk.gui.map.loading import (
    MAX_LABEL_RINGS,
    MapData,
    labels_path,
    load_map,
    render_all,
    short_crs,
)
from casdesk.gui.map.predictions import PredictionOverlay
from casdesk.gui.map.view import MapView
from casdesk.gui.shell.context import ProjectContext

log = logging.getLogger(__name__)

__all__ = [
    "COLOUR_MODES",
    "MAX_LABEL_RINGS",
    "REPAINT_ON_GUI_THREAD",
    "MapData",
    "MapPanel",
    "labels_path",
    "load_map",
    "render_all",
    "short_crs",
]

COLOUR_MODES = {"QC state": "qc", "Split": "split"}
REPAINT_ON_GUI_THREAD = 200
"""Changed tiles redrawn on the GUI thread at most; more are redrawn in a worker. The cost is
per block touched (a 6,700-tile grid block: ~5 ms to draw, ~2.5 ms to upload), so a
decision on a few tiles is drawn at once; 500 decided tiles across three blocks took
~21 ms of the GUI thread (``benchmarks/bench_map.py``) and now go to the worker."""


def _qimage(image: lay.BlockImage) -> QImage:
    h, w = image.rgba.shape[:2]
    return QImage(image.rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


class MapPanel(QWidget):
    def __init__(self, context: ProjectContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.data: MapData | None = None
        self._dirty = False
        self._first = True  # fit the view to the next map loaded
        self.loads = 0  # full loads (tests)
        self.selected: int | None = None  # tile id

        self.view = MapView()
        self.view.units_at = self._units_at
        self.view.clicked.connect(self.pick)
        self.view.double_clicked.connect(self._open_at)
        self.view.moved.connect(self._on_moved)
        self.view.zoomed.connect(lambda _s: self._update_smoothing())
        self.colour_by = QComboBox()
        self.colour_by.addItems(list(COLOUR_MODES))
        self.colour_by.setToolTip("Colour the tiles by their QC state or by their part of the newest split")
        self.colour_by.activated.connect(lambda _i: self._recolour())
        self.show_labels = QCheckBox("Labels")
        self.show_labels.setChecked(True)
        self.show_labels.setToolTip("Label outlines; a yellow dot marks tiles with landslide pixels")
        self.show_labels.toggled.connect(lambda on: self._labels_item.setVisible(on))
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("Show the whole project")
        self.fit_button.clicked.connect(lambda: self.view.fit(self.extent()))
        self.legend = QLabel("")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.status = QLabel("No project")
        self.status.setObjectName("mapStatus")
        self.coords = QLabel("")
        self.coords.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tile_info = QLabel("Click a tile to pick it; double-click opens it in Browse")
        self.open_browse = QPushButton("Open in Browse")
        self.open_browse.clicked.connect(lambda: self._request("browse"))
        self.open_label = QPushButton("Open in Label")
        self.open_label.clicked.connect(lambda: self._request("label"))

        self.predictions = PredictionOverlay(self.view.scene(), self)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Colour by"))
        bar.addWidget(self.colour_by)
        bar.addWidget(self.show_labels)
        for w in (self.predictions.show, self.predictions.model, self.predictions.kind, self.predictions.legend):
            bar.addWidget(w)
        bar.addWidget(self.fit_button)
        bar.addWidget(self.legend, 1)
        bar.addWidget(self.status)
        pick = QHBoxLayout()
        pick.addWidget(self.tile_info, 1)
        pick.addWidget(self.open_browse)
        pick.addWidget(self.open_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)
        layout.addLayout(pick)
        layout.addWidget(self.coords)

        scene = self.view.scene()
        self._pixmaps: list[QGraphicsPixmapItem] = []
        self._titles: list[QGraphicsSimpleTextItem] = []
        self._labels_item: QGraphicsPathItem = QGraphicsPathItem()
        pen = QPen(QColor(255, 235, 60))
        pen.setCosmetic(True)
        pen.setWidthF(1.5)
        self._labels_item.setPen(pen)
        self._labels_item.setBrush(QBrush(QColor(255, 235, 60, 50)))
        self._labels_item.setZValue(5)
        scene.addItem(self._labels_item)
        self._pick_item = QGraphicsRectItem()
        pen = QPen(QColor(255, 255, 255))
        pen.setCosmetic(True)
        pen.setWidth(3)
        self._pick_item.setPen(pen)
        self._pick_item.setZValue(10)
        self._pick_item.hide()
        scene.addItem(self._pick_item)

        self._call = LatestCall(self)
        self._call.finished.connect(self._on_loaded)
        self._call.failed.connect(self._on_failed)
        self._recolour_call = LatestCall(self)
        self._recolour_call.finished.connect(self._on_recoloured)
        self._update_pick()

        context.project_opened.connect(lambda _p: self._on_opened())
        context.project_closed.connect(self._on_closed)
        context.tiles_changed.connect(self._mark_dirty)
        context.metrics_changed.connect(self._mark_dirty)
        context.decisions_changed.connect(self._on_decisions)
        events = context.events
        for signal in (events.tiles_added, events.tiles_removed, events.labels_changed,
                       events.qc_metrics_changed, events.qc_rules_changed, events.runs_changed):
            signal.connect(lambda _c: self._mark_dirty())
        events.splits_changed.connect(self._on_splits)
        events.masks_changed.connect(self._on_masks)

    # ---- loading
    def reload(self) -> None:
        catalog = self.context.catalog
        if catalog is None:
            return
        self._dirty = False
        self.loads += 1
        self.status.setText("Loading the map\u2026")
        path, colour_by = catalog.path, COLOUR_MODES[self.colour_by.currentText()]
        self._call.submit(lambda: load_map(path, colour_by))

    def _on_opened(self) -> None:
        """A project opened: a fresh map (read when the tab is shown: the open's other
        workers get the CPU first)."""
        self._on_closed()
        self._first = True
        self.status.setText("The map is drawn when this tab is shown")
        self._mark_dirty()

    def is_loading(self) -> bool:
        return self._call.is_busy() or self._recolour_call.is_busy()

    def _mark_dirty(self) -> None:
        """Something the map shows changed wholesale: reload now if the map is visible,
        else when it is shown."""
        if self.isVisible():
            self.reload()
        else:
            self._dirty = True

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._dirty:
            self.reload()

    def _on_failed(self, message: str) -> None:
        self.status.setText("The map could not be loaded")
        show_error(self, "Cannot draw the map", message)

    def _on_loaded(self, data: MapData) -> None:
        if self.context.catalog is None:
            return
        first = self.data is None or self._first
        self._first = False
        self.data = data
        scene = self.view.scene()
        for item in [*self._pixmaps, *self._titles]:
            scene.removeItem(item)
        self._pixmaps, self._titles = [], []
        for block, image in zip(data.layout.blocks, data.images, strict=True):
            item = QGraphicsPixmapItem()
            item.setTransformationMode(Qt.TransformationMode.FastTransformation)
            scene.addItem(item)
            self._pixmaps.append(item)
            self._set_image(item, image)
            title = QGraphicsSimpleTextItem(f"{block.title} ({block.rows.size:,} tiles)")
            title.setBrush(QColor(230, 230, 230))
            title.setFlag(QGraphicsSimpleTextItem.GraphicsItemFlag.ItemIgnoresTransformations)
            title.setPos(block.bounds[0], block.bounds[1])
            title.setY(block.bounds[1])
            title.setZValue(20)
            scene.addItem(title)
            self._titles.append(title)
            # the title sits above the block: move it up by its own height (screen pixels)
            title.setTransform(title.transform().translate(0, -title.boundingRect().height() - 2))
        self._labels_item.setPath(data.labels_path)
        self._labels_item.setVisible(self.show_labels.isChecked())
        rect = self.extent()
        scene.setSceneRect(rect.adjusted(-rect.width(), -rect.height(), rect.width(), rect.height()))
        if first:
            self.view.fit(rect)
        self._update_smoothing()
        self._update_legend()
        self._update_pick()
        self.status.setText(f"{data.layout.n_tiles:,} tiles, {len(data.layout.blocks)} block(s)")
        self.predictions.set_map(self.context.catalog.path, data.index, data.layout, bool(data.predicted.any()))

    def extent(self) -> QRectF:
        """The map rectangle holding every block."""
        blocks = [] if self.data is None else self.data.layout.blocks
        if not blocks:
            return QRectF()
        x0 = min(b.bounds[0] for b in blocks)
        y0 = min(b.bounds[1] for b in blocks)
        x1 = max(b.bounds[2] for b in blocks)
        y1 = max(b.bounds[3] for b in blocks)
        return QRectF(x0, y0, x1 - x0, y1 - y0)

    def _update_smoothing(self) -> None:
        """Smooth when a raster pixel is smaller than a screen pixel (no moire when zoomed
        out), sharp cell edges when zoomed in."""
        scale = abs(self.view.transform().m11())
        for item in self._pixmaps:
            sharp = scale * item.transform().m11() >= 1.0
            item.setTransformationMode(
                Qt.TransformationMode.FastTransformation if sharp else Qt.TransformationMode.SmoothTransformation
            )

    @staticmethod
    def _set_image(item: QGraphicsPixmapItem, image: lay.BlockImage) -> None:
        x0, y0, x1, y1 = image.rect
        h, w = image.rgba.shape[:2]
        item.setPixmap(QPixmap.fromImage(_qimage(image)))
        item.setPos(x0, y0)
        item.setTransform(item.transform().fromScale((x1 - x0) / w, (y1 - y0) / h))

    def _on_closed(self) -> None:
        self._call.cancel()
        self._recolour_call.cancel()
        self.data = None
        scene = self.view.scene()
        for item in [*self._pixmaps, *self._titles]:
            scene.removeItem(item)
        self._pixmaps, self._titles = [], []
        self._labels_item.setPath(QPainterPath())
        self.predictions.clear()
        self.selected = None
        self._update_pick()
        self.legend.setText("")
        self.status.setText("No project")

    # ---- colours
    def _recolour(self) -> None:
        data = self.data
        if data is None:
            return
        colour_by = COLOUR_MODES[self.colour_by.currentText()]
        index, layout, predicted = data.index, data.layout, data.predicted
        self._recolour_call.submit(lambda: (colour_by, render_all(index, layout, predicted, colour_by)))

    def _on_recoloured(self, result: tuple[str, list[lay.BlockImage]]) -> None:
        data = self.data
        if data is None or len(result[1]) != len(self._pixmaps):
            return
        data.colour_by, data.images = result
        for item, image in zip(self._pixmaps, data.images, strict=True):
            self._set_image(item, image)
        self._update_legend()

    def _repaint_rows(self, rows: np.ndarray) -> None:
        """Redraw the blocks holding these index rows (few tiles changed)."""
        data = self.data
        if data is None or rows.size == 0:
            return
        if rows.size > REPAINT_ON_GUI_THREAD:
            self._recolour()  # many tiles: redraw in a worker
            self._update_legend()
            return
        colours = lay.tile_colours(data.index, data.colour_by)
        labelled = data.index.label_pixels > 0
        wanted = set(rows.tolist())
        for b, block in enumerate(data.layout.blocks):
            if wanted.intersection(block.rows.tolist()):
                data.images[b] = lay.render_block(block, colours, labelled, data.predicted)
                self._set_image(self._pixmaps[b], data.images[b])
        self._update_legend()

    def _on_decisions(self, tile_ids: list[int]) -> None:
        data, catalog = self.data, self.context.catalog
        if data is None or catalog is None:
            return
        rows = ti.refresh_decisions(catalog, data.index, tile_ids)
        if data.colour_by == "qc":
            self._repaint_rows(rows)
        else:
            self._update_legend()
        self._update_pick()

    def _on_masks(self, change: ev.MasksChanged) -> None:
        data, catalog = self.data, self.context.catalog
        if data is None or catalog is None:
            return
        try:
            tiles = catalog.tiles(ids=list(change.tile_ids)) if len(change.tile_ids) <= 900 else None
        except CasdeskError:
            tiles = None
        if tiles is None:
            self._mark_dirty()
            return
        self._repaint_rows(patch_rows(data.index, tiles))

    def _on_splits(self, _change: ev.SplitsChanged) -> None:
        data, catalog = self.data, self.context.catalog
        if data is None or catalog is None:
            return
        ti.set_split(catalog, data.index, ti.latest_split(catalog))
        if data.colour_by == "split":
            self._recolour()

    # ---- legend, picking, coordinates
    def state_counts(self) -> dict[str, int]:
        """Tiles drawn per QC state name (the legend's numbers)."""
        if self.data is None:
            return {}
        return {ti.state_name(c): n for c, n in lay.state_counts(self.data.index, self.data.layout).items()}

    def _update_legend(self) -> None:
        data = self.data
        if data is None:
            self.legend.setText("")
            return
        def swatch(rgb: tuple[int, int, int]) -> str:
            return f"<span style='color:rgb{rgb}'>\u25a0</span>"

        if data.colour_by == "split":
            parts = data.index.split_part if data.index.split_part.size else np.zeros(len(data.index), np.int8)
            codes, counts = np.unique(parts, return_counts=True)
            name = data.index.split_name or "no split"
            items = [f"{swatch(lay.PART_COLOURS[int(c)])} {ti.PART_NAMES[int(c)] or 'not in ' + name} {n:,}"
                     for c, n in zip(codes.tolist(), counts.tolist(), strict=True)]
        else:
            counts_by = lay.state_counts(data.index, data.layout)
            items = [f"{swatch(lay.STATE_COLOURS.get(c, (120, 120, 120)))} {ti.state_name(c)} {n:,}"
                     for c, n in sorted(counts_by.items())]
        items.append(f"{swatch(lay.LABEL_DOT)} labelled")
        if data.predicted.any():
            items.append(f"{swatch(lay.PREDICTION_MARK)} predicted")
        self.legend.setText(" &nbsp; ".join(items))

    def pick(self, x: float, y: float) -> int | None:
        """Pick the tile at map point (x, y); returns its id."""
        data = self.data
        hit = None if data is None else data.layout.tile_at(x, y)
        if data is None or hit is None:
            self.selected = None
        else:
            self.selected = int(data.index.ids[hit[1]])
        self._update_pick()
        return self.selected

    def _open_at(self, x: float, y: float) -> None:
        if self.pick(x, y) is not None:
            self._request("browse")

    def _request(self, where: str) -> None:
        if self.selected is not None:
            self.context.tile_requested.emit(self.selected, where)

    def _update_pick(self) -> None:
        data, tid = self.data, self.selected
        rows = None if data is None or tid is None else data.index.rows_of([tid])
        for b in (self.open_browse, self.open_label):
            b.setEnabled(rows is not None and rows.size > 0)
        if data is None or rows is None or rows.size == 0:
            self._pick_item.hide()
            self.tile_info.setText("Click a tile to pick it; double-click opens it in Browse")
            return
        r = int(rows[0])
        for block in data.layout.blocks:
            k = np.flatnonzero(block.rows == r)
            if k.size:
                i = int(k[0])
                self._pick_item.setRect(QRectF(block.x0[i], block.y0[i], block.x1[i] - block.x0[i], block.y1[i] - block.y0[i]))
                self._pick_item.show()
                break
        index = data.index
        sub = index.subdataset_names[index.subdataset_code[r]]
        part = ti.PART_NAMES[index.split_part[r]] if index.split_part.size and index.split_part[r] else ""
        self.tile_info.setText(
            f"<b>{sub} / {index.names[r]}</b> (tile {tid}) \u2022 QC {index.state_text(r)}"
            + (f" \u2022 {index.split_name}: {part}" if part else "")
            + (" \u2022 labelled" if index.label_pixels[r] > 0 else "")
        )

    def _units_at(self, x: float, y: float) -> str:
        block = None if self.data is None else self.data.layout.block_at(x, y)
        if block is None and self.data is not None and self.data.layout.blocks:
            block = self.data.layout.blocks[0]
        if block is None or not block.georeferenced:
            return "px"
        crs = (block.crs or "").upper()
        geographic = crs.startswith("GEOGCS") or crs.startswith("GEOGCRS") or crs in ("EPSG:4326", "OGC:CRS84")
        return "\u00b0" if geographic else "m"

    def _on_moved(self, x: float, y: float) -> None:
        data = self.data
        block = None if data is None else data.layout.block_at(x, y)
        if data is None or block is None:
            self.coords.setText("")
            return
        if block.georeferenced:
            text = f"{block.title}: x {x:.1f}, y {-y:.1f} ({short_crs(block.crs)})"
        else:
            text = f"{block.title}: {x - block.bounds[0]:.0f}, {y - block.bounds[1]:.0f} px (no georeference)"
        hit = data.layout.tile_at(x, y)
        if hit is not None:
            text += f" \u2022 tile {data.index.names[hit[1]]}"
        self.coords.setText(text)

    def tile_scene_point(self, tile_id: int) -> QPointF | None:
        """The map point at the centre of a tile (tests click there)."""
        if self.data is None:
            return None
        rows = self.data.index.rows_of([tile_id])
        for block in self.data.layout.blocks:
            k = np.flatnonzero(block.rows == (int(rows[0]) if rows.size else -1))
            if k.size:
                i = int(k[0])
                return QPointF((block.x0[i] + block.x1[i]) / 2, (block.y0[i] + block.y1[i]) / 2)
        return None

    def shutdown(self) -> None:
        self._call.shutdown()
        self._recolour_call.shutdown()
        self.predictions.shutdown()

