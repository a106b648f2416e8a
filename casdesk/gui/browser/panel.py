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
from PySide6.QtCore import QItemSelection, QItemSelectionModel, QTimer
from PySide6.QtWidgets import QWidget

from casdesk.core.dataset import tile_table as ti
from casdesk.core.errors import CasdeskError
from casdesk.core.project import events as ev
from casdesk.core.project.catalog import Catalog, Tile
from casdesk.core.raster.thumbnails import ThumbnailCache
from casdesk.gui.browser.actions import TileActions
from casdesk.gui.browser.delegate import TileDelegate
from casdesk.gui.browser.detail import DetailRequest, TileDetail
from casdesk.gui.browser.detail_pane import DetailPane
from casdesk.gui.browser.filters import FilterPanel
from casdesk.gui.browser.grid import TileGridView
from casdesk.gui.browser.loader import LatestCall, ThumbnailLoader
from casdesk.gui.browser.model import TileListModel
from casdesk.gui.browser.quick_train import TrainRequest
from casdesk.gui.browser.toolbar import FILTER_MIN_WIDTH, BrowserToolbar
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.shell.context import ProjectContext

__all__ = [  # the parts' public names, importable from here as before the split
    "FILTER_MIN_WIDTH", "NO_SPLIT", "PATCH_ON_GUI_THREAD", "BrowserPanel", "DetailRequest",
    "TrainRequest", "load_index_for", "load_qc_for", "load_tiles_for", "patch_rows",
]
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


class BrowserPanel(BrowserToolbar, TileActions, DetailPane, QWidget):
    """The Browse tab. Its parts: the layout and bars (:mod:`.toolbar`), what it does to the
    selected tiles (:mod:`.actions`), the detail pane (:mod:`.detail_pane`); loading the
    tile table, filtering and display options are here."""

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
