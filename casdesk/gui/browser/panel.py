"""The Browse panel: filters on the left, the thumbnail grid, the detail view on the right.

Wiring only: the tile table is loaded in a worker (:func:`load_index_for`), filtering and
sorting are the core's numpy functions, decisions go through the QC module and are
announced with ``context.events`` so the QC panel follows.

Change events update only what they name: a mask edit re-reads those tiles' rows and drops
their thumbnails, new QC metrics or rules re-read the QC columns in a worker, a new split
re-reads the split parts; only tiles added/removed (or the coarse ``tiles_changed``) reload
the tile table, in a worker. ``reloads`` counts those full reloads.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QItemSelection, QItemSelectionModel, QModelIndex, Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from casdesk.core.dataset import tile_table as ti
from casdesk.core.errors import CasdeskError
from casdesk.core.project import events as ev
from casdesk.core.project.catalog import Catalog, Tile
from casdesk.core.raster.thumbnails import ThumbnailCache
from casdesk.gui.browser.delegate import TileDelegate
from casdesk.gui.browser.detail import DetailRequest, TileDetail
from casdesk.gui.browser.filters import FilterPanel
from casdesk.gui.browser.grid import TileGridView
from casdesk.gui.browser.loader import LatestCall, ThumbnailLoader
from casdesk.gui.browser.model import TileListModel
from casdesk.gui.browser.quick_train import (
    MIN_TILES,
    TrainOnTilesDialog,
    TrainRequest,
    make_split,
    sample,
)
from casdesk.gui.browser.split_dialog import AssignSplitDialog
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.shell.context import ProjectContext

log = logging.getLogger(__name__)
NO_SPLIT = "(no split)"


def load_index_for(path: Path, split: str | None) -> ti.TileIndex:
    """Load the tile table without QC columns (the grid can show at once) with a connection
    of this (worker) thread; warm the name caches."""
    with Catalog.open(path, readonly=True) as catalog:
        index = ti.load_index(catalog, split, with_qc=False)
    index.name_rank()
    index.names_lower()
    index.name_shared()
    return index


def load_tiles_for(path: Path, tile_ids: list[int]) -> list[Tile]:
    """The catalog records of some tiles (worker thread): what a mask edit changed."""
    with Catalog.open(path, readonly=True) as catalog:
        return catalog.tiles(ids=tile_ids)


FILTER_MIN_WIDTH = 200
"""The filter column's minimum width (pixels)."""
PATCH_ON_GUI_THREAD = 64
"""Up to this many changed tiles are re-read on the GUI thread (a few ms); more in a worker."""


def patch_rows(index: ti.TileIndex, tiles: list[Tile]) -> np.ndarray:
    """Write the changed tiles' mask path, label pixels and modified time into ``index``;
    returns their rows."""
    rows = index.rows_of([t.id for t in tiles])
    by_id = {t.id: t for t in tiles}
    fraction = index.metrics.get(ti.LABEL_FRACTION)
    for r in rows.tolist():
        t = by_id[int(index.ids[r])]
        index.modified[r] = t.modified
        index.mask_path[r] = None if t.mask_path is None else str(t.mask_path)
        index.label_pixels[r] = -1 if t.label_pixels is None else t.label_pixels
        if fraction is not None:
            ok = t.label_pixels is not None and t.valid_pixels
            fraction[r] = t.label_pixels / t.valid_pixels if ok else np.nan  # type: ignore[operator]
    return rows


def load_qc_for(path: Path, ids: np.ndarray) -> ti.QCColumns:
    """Metrics and QC states for the tiles ``ids`` (worker thread)."""
    with Catalog.open(path, readonly=True) as catalog:
        return ti.load_qc(catalog, ids)


class BrowserPanel(QWidget):
    def __init__(self, context: ProjectContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.index: ti.TileIndex | None = None
        self._split: str | None = "latest"
        self._follow: tuple[int, int] | None = None  # (tile id to select, fallback row)

        self.loader = ThumbnailLoader(self)
        self.model = TileListModel(self)
        self.grid = TileGridView()
        self.grid.setModel(self.model)
        self.delegate = TileDelegate(self.loader, self.model, self.grid)
        self.grid.setItemDelegate(self.delegate)
        self.grid.set_cell_size(self.delegate.cell_size())
        self.loader.ready.connect(self._on_thumbnails)
        self._index_call = LatestCall(self)
        self._index_call.finished.connect(self._on_index)
        self._index_call.failed.connect(self._on_index_failed)
        self._qc_call = LatestCall(self)
        self._qc_call.finished.connect(self._on_qc)
        self._qc_call.failed.connect(self._on_index_failed)
        self.qc_loaded = False
        self._decided_meanwhile: set[int] = set()
        self.reloads = 0  # full tile-table reloads (the edit benchmark counts them)
        self._patch_call = LatestCall(self)
        self._patch_call.finished.connect(self._on_patched)
        self._patch_call.failed.connect(lambda msg: log.warning("tile rows not refreshed: %s", msg))
        self._patch_pending: set[int] = set()
        self.filters = FilterPanel()
        self.filters.changed.connect(self._schedule_apply)
        self.detail = TileDetail()
        self.detail.close_requested.connect(self.close_detail)
        self.detail.hide()

        self._apply_timer = QTimer(self, singleShot=True, interval=0)
        self._apply_timer.timeout.connect(self.apply_filter)
        self._detail_timer = QTimer(self, singleShot=True, interval=120)
        self._detail_timer.timeout.connect(self._detail_follow)

        self._build()
        self.grid.open_requested.connect(self.open_detail)
        self.grid.decide_requested.connect(self.decide)
        self.grid.overlay_toggle_requested.connect(lambda: self.overlay.toggle())
        self.grid.selectionModel().currentChanged.connect(self._on_current)
        self.grid.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        context.project_opened.connect(lambda _p: self.reload(new_project=True))
        context.project_closed.connect(self._on_closed)
        context.tiles_changed.connect(self._on_tiles_changed)
        context.metrics_changed.connect(self.reload_qc)
        context.decisions_changed.connect(self._on_decisions)
        events = context.events
        events.tiles_added.connect(lambda _c: self.reload())
        events.tiles_removed.connect(lambda _c: self.reload())
        events.masks_changed.connect(lambda c: self.refresh_tiles(c.tile_ids))
        events.qc_metrics_changed.connect(lambda _c: self.reload_qc())
        events.qc_rules_changed.connect(lambda _c: self.reload_qc())
        events.splits_changed.connect(self._on_splits_changed)
        self._update_actions()

    # ---- layout
    def _build(self) -> None:
        self.count_label = QLabel("No project")
        self.count_label.setObjectName("browserCount")
        self.count_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.sort_key = QComboBox()
        self.sort_key.setToolTip("Sort by")
        self.sort_key.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.sort_key.addItems(list(ti.SORT_KEYS))
        self.sort_key.activated.connect(lambda _i: self._schedule_apply())
        self.sort_desc = QToolButton()
        self.sort_desc.setText("\u2193")
        self.sort_desc.setCheckable(True)
        self.sort_desc.setToolTip("Descending order")
        self.sort_desc.toggled.connect(self._schedule_apply)
        self.size_slider = QSlider(Qt.Orientation.Horizontal)
        self.size_slider.setRange(64, 512)
        self.size_slider.setSingleStep(16)
        self.size_slider.setPageStep(64)
        self.size_slider.setValue(self.delegate.thumb_px)
        self.size_slider.setFixedWidth(90)
        self.size_slider.setToolTip("Thumbnail size (pixels)")
        self.size_slider.valueChanged.connect(self.set_thumb_px)
        self.size_label = QLabel(f"{self.delegate.thumb_px} px")
        self.overlay = QCheckBox("Mask")
        self.overlay.setToolTip("Show the landslide mask on the thumbnails (Space)")
        self.overlay.setChecked(True)
        self.overlay.toggled.connect(self._on_overlay)
        self.overlay_mode = QComboBox()
        self.overlay_mode.addItems(["fill", "outline"])
        self.overlay_mode.activated.connect(lambda _i: self._on_overlay())
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(100 * self.delegate.overlay.opacity))
        self.opacity.setFixedWidth(70)
        self.opacity.setToolTip("Mask opacity")
        self.opacity.valueChanged.connect(lambda _v: self._on_overlay())
        self.split_combo = QComboBox()
        self.split_combo.setToolTip("Split whose parts are shown as badges and filtered on")
        self.split_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.split_combo.setMinimumContentsLength(8)
        self.split_combo.activated.connect(self._on_split_chosen)

        self.accept_button = QPushButton("Accept")
        self.accept_button.setToolTip("Accept the selected tiles (A)")
        self.accept_button.clicked.connect(lambda: self.decide("accept"))
        self.reject_button = QPushButton("Reject")
        self.reject_button.setToolTip("Reject the selected tiles (R)")
        self.reject_button.clicked.connect(lambda: self.decide("reject"))
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Remove the manual QC decision: the rules decide again (C)")
        self.clear_button.clicked.connect(lambda: self.decide("clear"))
        self.split_button = QPushButton("Assign split\u2026")
        self.split_button.clicked.connect(self.assign_split_dialog)
        self.train_button = QPushButton("Train\u2026")
        self.train_button.setToolTip("A short training run on the selected tiles or a random sample of the shown ones")
        self.train_button.clicked.connect(self.train_dialog)
        self.detail_button = QPushButton("Open")
        self.detail_button.setToolTip("Open the current tile in the detail view (Enter)")
        self.detail_button.clicked.connect(lambda: self.open_detail(self.grid.currentIndex()))
        self.selection_label = QLabel("")
        for label in (self.count_label, self.selection_label):  # texts grow: never widen the window
            label.setMinimumWidth(40)  # an explicit minimum: the text's width is only a wish

        bar = QHBoxLayout()
        bar.addStretch(1)
        bar.addWidget(QLabel("Sort"))
        bar.addWidget(self.sort_key)
        bar.addWidget(self.sort_desc)
        bar.addSpacing(8)
        bar.addWidget(QLabel("Size"))
        bar.addWidget(self.size_slider)
        bar.addWidget(self.size_label)
        bar.addSpacing(8)
        bar.addWidget(QLabel("Split"))
        bar.addWidget(self.split_combo)
        bar.addSpacing(8)
        bar.addWidget(self.overlay)
        bar.addWidget(self.overlay_mode)
        bar.addWidget(self.opacity)
        actions = QHBoxLayout()
        for w in (self.accept_button, self.reject_button, self.clear_button, self.split_button,
                  self.train_button, self.detail_button):
            w.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)  # room for the counts
            actions.addWidget(w)
        actions.addWidget(self.selection_label, 1)
        actions.addWidget(self.count_label, 2)

        scroll = QScrollArea()
        scroll.setWidget(self.filters)
        scroll.setWidgetResizable(True)
        # the filter column may shrink below its wish (it scrolls): with the grid's bars and
        # the detail pane's fixed minimum, the panel then fits in a 1280 px window
        scroll.setMinimumWidth(FILTER_MIN_WIDTH)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        center = self._center = QWidget()
        v = QVBoxLayout(center)
        v.setContentsMargins(0, 0, 0, 0)
        v.addLayout(bar)
        v.addLayout(actions)
        v.addWidget(self.grid, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(center)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setStretchFactor(2, 2)
        self.splitter.setSizes([self.filters.sizeHint().width() + 24, 1000, 0])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.splitter)

    # ---- loading
    def reload(self, new_project: bool = False) -> None:
        """Re-read the tile table in a worker (after tiles, metrics or a project change)."""
        catalog = self.context.catalog
        if catalog is None:
            return
        if not new_project:
            self.reloads += 1
        if new_project:
            self._split = "latest"
            self.loader.restart()
            self.loader.set_disk_cache(
                None if catalog.readonly else ThumbnailCache.for_project(catalog.data_dir)
            )
            self.model.set_view(None, None)
            self.close_detail()
        self.count_label.setText("Loading tiles\u2026")
        path, split = catalog.path, self._split
        self._index_call.submit(lambda: load_index_for(path, split))

    def _on_tiles_changed(self) -> None:
        """Anything about the tiles may have changed (the coarse signal): re-read the table.
        Thumbnails in memory stay: their key holds the tile's modified time, so a changed
        tile asks for a new one."""
        self.reload()

    def reload_qc(self) -> None:
        """QC metrics or rules changed: re-read the QC columns only, in a worker."""
        catalog, index = self.context.catalog, self.index
        if catalog is None or index is None:
            return
        self.qc_loaded = False
        self._decided_meanwhile = set()
        path, ids = catalog.path, index.ids
        self._qc_call.submit(lambda: load_qc_for(path, ids))

    def refresh_tiles(self, tile_ids: tuple[int, ...] | list[int]) -> None:
        """The files of these tiles changed (mask regenerated): re-read their rows, drop their
        thumbnails, repaint their cells. Many tiles are read in a worker."""
        catalog = self.context.catalog
        if catalog is None or self.index is None or not tile_ids:
            return
        if len(tile_ids) <= PATCH_ON_GUI_THREAD and not self._patch_pending:
            try:
                tiles = catalog.tiles(ids=list(tile_ids))
            except CasdeskError as exc:
                log.warning("tile rows not refreshed: %s", exc)
                return
            self._apply_patch(tiles)
            return
        self._patch_pending.update(int(t) for t in tile_ids)
        path, ids = catalog.path, sorted(self._patch_pending)
        self._patch_call.submit(lambda: load_tiles_for(path, ids))

    def _on_patched(self, tiles: list[Tile]) -> None:
        self._patch_pending.difference_update(t.id for t in tiles)
        self._apply_patch(tiles)

    def _apply_patch(self, tiles: list[Tile]) -> None:
        index = self.index
        if index is None:
            return
        patch_rows(index, tiles)
        for t in tiles:
            self.loader.drop_tile(t.id)
        ids = [t.id for t in tiles]
        if self.filters.uses_labels() or self.sort_key.currentText() == ti.LABEL_FRACTION:
            self.apply_filter()
        else:
            self.model.refresh_rows(self.model.view_rows_of_ids(ids))
        shown = self.detail.request
        if self.detail.isVisible() and shown is not None and shown.tile_id in ids:
            request = self._detail_request(shown.tile_id)
            if request is not None:
                self.detail.show_tile(request)
                self._show_qc_in_detail(request.tile_id)

    def _on_splits_changed(self, change: ev.SplitsChanged) -> None:
        """A split was made or changed (here or elsewhere): show it, re-reading only the
        split parts."""
        catalog, index = self.context.catalog, self.index
        if catalog is None or index is None:
            return
        names = ti.split_names(catalog)
        wanted = change.names[-1] if change.names and change.names[-1] in names else self._split
        ti.set_split(catalog, index, wanted if wanted in names else None)
        self._split = index.split_name
        self._refresh_split_combo()
        self.filters.set_index(index)
        self.apply_filter()

    def is_loading(self) -> bool:
        return self._index_call.is_busy() or self._qc_call.is_busy() or self._patch_call.is_busy()

    def _on_index(self, index: ti.TileIndex) -> None:
        """The tiles arrived (QC columns follow): show them, keeping the known QC columns
        until the fresh ones come, so a reload does not blink every badge."""
        catalog = self.context.catalog
        if catalog is None:
            return
        old = self.index
        if old is not None and self.qc_loaded:
            ti.attach_qc(
                index,
                ti.QCColumns(old.ids, old.metrics, old.manual, old.auto_state, old.failed, old.rules, old.stale),
            )
        self.qc_loaded = False
        self._decided_meanwhile = set()
        path, ids = catalog.path, index.ids
        self._qc_call.submit(lambda: load_qc_for(path, ids))
        self._show_index(index)

    def _on_qc(self, columns: ti.QCColumns) -> None:
        catalog = self.context.catalog
        if catalog is None or self.index is None or not ti.attach_qc(self.index, columns):
            return
        if self._decided_meanwhile:  # decisions made while the columns were read
            ti.refresh_decisions(catalog, self.index, sorted(self._decided_meanwhile))
        self.qc_loaded = True
        self._show_index(self.index)

    def _show_index(self, index: ti.TileIndex) -> None:
        self.index = index
        self._split = index.split_name
        self._refresh_split_combo()
        key = self.sort_key.currentText()
        self.sort_key.clear()
        self.sort_key.addItems(ti.sort_keys(index))
        self.sort_key.setCurrentText(key if key in ti.sort_keys(index) else "name")
        self.filters.set_index(index)
        self.apply_filter()

    def _on_index_failed(self, message: str) -> None:
        self.count_label.setText("Tiles could not be loaded")
        show_error(self, "Cannot load the tiles", message)

    def _on_closed(self) -> None:
        self._index_call.cancel()
        self._qc_call.cancel()
        self._patch_call.cancel()
        self._patch_pending.clear()
        self.qc_loaded = False
        self.index = None
        self.loader.reset()
        self.model.set_view(None, None)
        self.filters.set_index(None)
        self.close_detail()
        self.count_label.setText("No project")
        self._update_actions()

    def _refresh_split_combo(self) -> None:
        catalog = self.context.catalog
        names = [] if catalog is None else ti.split_names(catalog)
        self.split_combo.clear()
        self.split_combo.addItems([NO_SPLIT, *names])
        self.split_combo.setCurrentText(self._split or NO_SPLIT)

    def _on_split_chosen(self, _i: int) -> None:
        text = self.split_combo.currentText()
        split = None if text == NO_SPLIT else text
        if self.index is None or self.context.catalog is None or split == self.index.split_name:
            return
        ti.set_split(self.context.catalog, self.index, split)
        self._split = split
        self.filters.set_index(self.index)
        self.apply_filter()

    # ---- filtering
    def _schedule_apply(self) -> None:
        self._apply_timer.start()

    def apply_filter(self) -> None:
        """Filter and sort in numpy, then swap the model's rows (keeps the selection)."""
        index = self.index
        if index is None:
            return
        selected = self.selected_ids()
        current = self.grid.currentIndex()
        current_id = self.model.tile_id(current.row()) if current.isValid() else None
        rows = ti.filter_rows(index, self.filters.current_filter())
        rows = ti.sort_rows(index, rows, self.sort_key.currentText() or "name", self.sort_desc.isChecked())
        self.model.set_view(index, rows)
        self._restore_selection(selected, current_id, current.row() if current.isValid() else 0)
        self._update_count()
        shown = self.detail.request
        if self.detail.isVisible() and shown is not None:
            self.detail.mark_hidden(self.model.view_rows_of_ids([shown.tile_id]).size == 0)

    def _restore_selection(self, selected: list[int], current_id: int | None, old_row: int) -> None:
        n = self.model.rowCount()
        if n == 0:
            self._update_actions()
            return
        follow, self._follow = self._follow, None
        if follow is not None:
            current_id, old_row = follow
            selected = [current_id]
        view_rows = np.sort(self.model.view_rows_of_ids(selected))
        selection = QItemSelection()
        if view_rows.size:
            breaks = np.flatnonzero(np.diff(view_rows) != 1)
            starts = np.r_[view_rows[0], view_rows[breaks + 1]]
            ends = np.r_[view_rows[breaks], view_rows[-1]]
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                selection.select(self.model.index(a), self.model.index(b))
        cur_rows = self.model.view_rows_of_ids([current_id]) if current_id is not None else np.zeros(0, np.int64)
        cur = int(cur_rows[0]) if len(cur_rows) else min(max(old_row, 0), n - 1)
        sm = self.grid.selectionModel()
        sm.setCurrentIndex(self.model.index(cur), QItemSelectionModel.SelectionFlag.NoUpdate)
        if view_rows.size == 0 and follow is not None:
            selection.select(self.model.index(cur), self.model.index(cur))
        sm.select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self._update_actions()

    def _update_count(self) -> None:
        shown, total = self.model.rowCount(), self.model.total
        self.count_label.setText(f"<b>{shown:,}</b> shown of {total:,}")

    # ---- display options
    def set_thumb_px(self, px: int) -> None:
        px = int(round(px / 16) * 16)
        self.delegate.set_thumb_px(px)
        self.size_label.setText(f"{px} px")
        self.grid.set_cell_size(self.delegate.cell_size())
        current = self.grid.currentIndex()
        if current.isValid():
            self.grid.scrollTo(current)

    def _on_overlay(self, *_args: object) -> None:
        style = self.delegate.overlay
        style.visible = self.overlay.isChecked()
        style.mode = self.overlay_mode.currentText()
        style.opacity = self.opacity.value() / 100.0
        self.detail.set_overlay_visible(style.visible)
        self.grid.viewport().update()

    def _on_thumbnails(self, tile_ids: list[int]) -> None:
        """Repaint only the cells whose thumbnails arrived (not the whole viewport)."""
        for row in self.model.view_rows_of_ids(tile_ids).tolist():
            self.grid.update(self.model.index(row))

    # ---- selection and decisions
    def _selected_rows(self) -> np.ndarray:
        """View rows of the selection, from its ranges (no object per selected cell)."""
        selection = self.grid.selectionModel().selection()
        ranges = [(r.top(), r.bottom()) for r in (selection.at(i) for i in range(selection.size()))]
        if not ranges:
            return np.zeros(0, np.int64)
        return np.unique(np.concatenate([np.arange(a, b + 1) for a, b in ranges]))

    def selected_ids(self) -> list[int]:
        return self.model.tile_ids(self._selected_rows().tolist())

    def _target_ids(self) -> list[int]:
        ids = self.selected_ids()
        if not ids and self.grid.currentIndex().isValid():
            ids = [self.model.tile_id(self.grid.currentIndex().row())]
        return ids

    def _update_actions(self) -> None:
        n = int(self._selected_rows().size) if self.model.rowCount() else 0
        has = n > 0 or self.grid.currentIndex().isValid()
        for b in (self.accept_button, self.reject_button, self.clear_button, self.split_button):
            b.setEnabled(has and self.context.catalog is not None)
        self.detail_button.setEnabled(self.grid.currentIndex().isValid())
        self.train_button.setEnabled(
            self.context.catalog is not None and not self.context.readonly and self.model.rowCount() >= MIN_TILES
        )
        self.selection_label.setText(f"{n:,} selected" if n else "")

    def decide(self, decision: str) -> None:
        """Accept / reject / clear the selected tiles (A / R / C); a single tile moves on to
        the next one, as in a review queue."""
        catalog = self.context.catalog
        ids = self._target_ids()
        if catalog is None or not ids:
            return
        try:
            ti.set_decision(catalog, ids, decision)
        except CasdeskError as exc:
            show_error(self, "Cannot record the decision", str(exc))
            return
        if len(ids) == 1:
            row = self.grid.currentIndex().row()
            nxt = row + 1 if row + 1 < self.model.rowCount() else row
            self._follow = (self.model.tile_id(nxt), row)
        self.context.events.announce(ev.QCDecisionsChanged(ev.id_tuple(ids)))
        if self._follow is not None and not self.filters.uses_qc_state():
            follow, self._follow = self._follow, None
            self._select_id(follow[0])

    def _select_id(self, tile_id: int) -> None:
        rows = self.model.view_rows_of_ids([tile_id])
        if rows.size:
            index = self.model.index(int(rows[0]))
            self.grid.selectionModel().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect
            )
            self.grid.scrollTo(index)

    def _on_decisions(self, tile_ids: list[int]) -> None:
        catalog, index = self.context.catalog, self.index
        if catalog is None or index is None:
            return
        ti.refresh_decisions(catalog, index, tile_ids)
        if not self.qc_loaded:
            self._decided_meanwhile.update(tile_ids)
        if self.filters.uses_qc_state():
            self.apply_filter()
        else:
            self.model.refresh_rows(self.model.view_rows_of_ids(tile_ids))
        self.grid.viewport().update()

    def assign_split_dialog(self) -> None:
        catalog = self.context.catalog
        ids = self._target_ids()
        if catalog is None or not ids:
            return
        dialog = AssignSplitDialog(ti.split_names(catalog), self._split, len(ids), self)
        if dialog.exec():
            self.assign_split(*dialog.choice(), ids)

    def assign_split(self, split: str, part: str, tile_ids: list[int] | None = None) -> None:
        catalog = self.context.catalog
        ids = self._target_ids() if tile_ids is None else tile_ids
        if catalog is None or not ids or self.index is None:
            return
        try:
            ti.assign_split(catalog, split, ids, part)
        except CasdeskError as exc:
            show_error(self, "Cannot assign the split", str(exc))
            return
        self.context.events.announce(ev.SplitsChanged((split,), ev.id_tuple(ids)))
        self.context.status_message.emit(f"{len(ids)} tile(s) put in {part} of split {split}")

    def train_dialog(self) -> None:
        catalog = self.context.catalog
        if catalog is None:
            return
        selected = self.selected_ids()
        dialog = TrainOnTilesDialog(len(selected), self.model.rowCount(), self)
        if not dialog.exec():
            return
        if dialog.use_selection.isChecked():
            ids = selected
        else:
            ids = sample(self.model.tile_ids(range(self.model.rowCount())), dialog.sample_size.value())
        self.train_on_tiles(ids, dialog.epochs.value(), dialog.val_fraction.value())

    def train_on_tiles(self, tile_ids: list[int], epochs: int = 3, val_fraction: float = 0.3) -> TrainRequest | None:
        """Put the tiles in a new split and ask the Train tab for a short run on it."""
        catalog = self.context.catalog
        if catalog is None:
            return None
        try:
            request = make_split(catalog, tile_ids, val_fraction, epochs)
        except CasdeskError as exc:
            show_error(self, "Cannot train on these tiles", str(exc))
            return None
        self.context.events.announce(ev.SplitsChanged((request.split,), ev.id_tuple(tile_ids)))
        self.context.train_requested.emit(request)
        return request

    # ---- detail
    def open_detail(self, index: QModelIndex) -> None:
        if not index.isValid() or self.context.catalog is None:
            return
        request = self._detail_request(self.model.tile_id(index.row()))
        if request is None:
            return
        if not self.detail.isVisible():
            # share the splitter's current width: the window never grows (the pane has a
            # fixed minimum width; the filter column gives way when the grid needs it), and
            # the chosen tile is scrolled back into view once the grid has re-flowed
            sizes = self.splitter.sizes()
            total = sum(sizes)
            center_wish = self._center.sizeHint().width()
            left = max(FILTER_MIN_WIDTH, min(sizes[0], total - center_wish - self.detail.minimumWidth()))
            half = max(self.detail.minimumWidth(), min((total - left) // 2, total - left - center_wish))
            self.detail.show()
            self.splitter.setSizes([left, max(0, total - left - half), half])
            QTimer.singleShot(0, self._scroll_to_current)
        self.detail.show_tile(request)
        self.detail.mark_hidden(False)
        self._show_qc_in_detail(request.tile_id)

    def _show_qc_in_detail(self, tile_id: int) -> None:
        """The detail title says the tile's QC state and which rule failed by how much."""
        index = self.index
        if index is None:
            return
        rows = index.rows_of([tile_id])
        if not rows.size:
            return
        row = int(rows[0])
        lines = [f"QC: {ti.state_name(int(index.qc_state[row]))}", *index.failed_rules(row)]
        if index.stale is not None and index.stale[row]:
            lines.append("metrics stale (recomputing)")
        self.detail.title.setText(self.detail.title.text() + "<br>" + "; ".join(lines))
        self.detail.title.setToolTip("\n".join(lines))

    def _scroll_to_current(self) -> None:
        current = self.grid.currentIndex()
        if current.isValid():
            self.grid.scrollTo(current)

    def show_tile_id(self, tile_id: int) -> bool:
        """Select a tile and open it in the detail view (the map asks); a filter hiding it is
        reset first. False when the tile is not (yet) in the table."""
        if self.index is None or self.index.rows_of([tile_id]).size == 0:
            return False
        if self.model.view_rows_of_ids([tile_id]).size == 0:
            self.filters.reset()
            self.apply_filter()
        self._select_id(tile_id)
        self.open_detail(self.grid.currentIndex())
        return True

    def close_detail(self) -> None:
        self.detail.hide()
        self.grid.setFocus()

    def _detail_request(self, tile_id: int) -> DetailRequest | None:
        catalog = self.context.catalog
        if catalog is None:
            return None
        try:
            tile = catalog.tile(tile_id)
            scene_path = catalog.scene(tile.scene_id).path if tile.scene_id is not None else None
        except CasdeskError as exc:
            show_error(self, "Cannot open the tile", str(exc))
            return None
        preds = [(p.model, p.mask_path, p.iou) for p in catalog.predictions.for_tile(tile_id)]
        offset = (tile.row_off, tile.col_off) if tile.row_off is not None and tile.col_off is not None else None
        return DetailRequest(
            tile.id, tile.name, tile.image_path, tile.mask_path, scene_path, offset, preds  # type: ignore[arg-type]
        )

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._update_actions()
        if self.detail.isVisible() and current.isValid():
            self._detail_timer.start()

    def _detail_follow(self) -> None:
        """The pane follows the current tile only when the user chose it (it is selected): a
        filter that hides the shown tile moves the current cell, not the pane."""
        current = self.grid.currentIndex()
        if self.detail.isVisible() and current.isValid() and self.grid.selectionModel().isSelected(current):
            self.open_detail(current)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.key() == Qt.Key.Key_Escape and self.detail.isVisible():
            self.close_detail()
            return
        super().keyPressEvent(event)

    # ---- lifetime
    def shutdown(self) -> None:
        """Stop every worker (thumbnail pool, index load, detail load)."""
        self._apply_timer.stop()
        self._detail_timer.stop()
        self.loader.shutdown()
        self._index_call.shutdown()
        self._qc_call.shutdown()
        self._patch_call.shutdown()
        self.detail.shutdown()
