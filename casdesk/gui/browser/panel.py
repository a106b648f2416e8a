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

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QItemSelection, QItemSelectionModel, QPoint, QTimer
from PySide6.QtWidgets import QWidget

from casdesk.core.dataset import tile_table as ti
from casdesk.core.errors import CasdeskError
from casdesk.core.project import events as ev
from casdesk.core.project.catalog import Catalog, Tile
from casdesk.core.raster import thumbnails
from casdesk.core.raster.thumbnails import ThumbnailCache
from casdesk.gui.browser.actions import TileActions
from casdesk.gui.browser.delegate import TileDelegate
from casdesk.gui.browser.detail import DetailRequest, TileDetail
from casdesk.gui.browser.detail_pane import DetailPane
from casdesk.gui.browser.filters import FilterPanel
from casdesk.gui.browser.grid import TileGridView
from casdesk.gui.browser.loader import (
    LatestCall,
    ThumbnailLoader,
    load_first_screen,
    save_first_screen,
)
from casdesk.gui.browser.model import TileListModel
from casdesk.gui.browser.quick_train import TrainRequest
from casdesk.gui.browser.snapshot import forget_snapshot, load_snapshot, same_table, save_snapshot
from casdesk.gui.browser.toolbar import FILTER_MIN_WIDTH, BrowserToolbar
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.shell.context import ProjectContext

__all__ = [  # the parts' public names, importable from here as before the split
    "FILTER_MIN_WIDTH", "NO_SPLIT", "PATCH_ON_GUI_THREAD", "BrowserPanel", "DetailRequest",
    "TrainRequest", "load_index_for", "load_qc_for", "load_tiles_for", "patch_rows",
]
log = logging.getLogger(__name__)
NO_SPLIT = "(no split)"


def load_index_for(path: Path, split: str | None, snapshot_to: Path | None = None) -> ti.TileIndex:
    """Load the tile table without QC columns and split parts (the grid can show at once)
    with a connection of this (worker) thread; warm the name caches. The index names the
    split (``"latest"`` resolved) but its parts are all "none": :func:`load_late_for` reads
    them with the QC columns (a third of the load at 20k tiles)."""
    with Catalog.open(path, readonly=True) as catalog:
        index = ti.load_index(catalog, None, with_qc=False)
        index.split_name = ti.latest_split(catalog) if split == "latest" else split
    index.name_rank()
    index.names_lower()
    index.name_shared()
    if snapshot_to is not None:  # the next open starts from it (snapshot.py)
        save_snapshot(snapshot_to, index)
    return index


@dataclass(frozen=True)
class FirstIndex:
    """A project's first tile table: read from the catalog, or the snapshot of the last one
    (``from_snapshot``: the catalog is read after the first screen, :func:`load_late_for`)."""

    index: ti.TileIndex
    from_snapshot: bool


def load_first_index_for(path: Path, split: str | None, snapshots: Path | None) -> FirstIndex:
    """The tile table of a project just opened: its snapshot in ``snapshots`` if there is
    one (~25 ms instead of ~130 ms at 20k tiles), else from the catalog (worker thread)."""
    if snapshots is not None:
        with Catalog.open(path, readonly=True) as catalog:
            root = catalog.root
            name = ti.latest_split(catalog) if split == "latest" else split
        index = load_snapshot(snapshots, root)
        if index is not None:
            index.split_name = name
            index.name_rank()
            index.names_lower()
            index.name_shared()
            return FirstIndex(index, True)
    return FirstIndex(load_index_for(path, split, snapshots), False)


def load_split_for(path: Path, index: ti.TileIndex, split: str | None) -> tuple[str | None, np.ndarray]:
    """(split name, parts per index row) of ``split`` (worker thread; ``index`` is not changed)."""
    probe = copy.copy(index)  # set_split assigns new arrays: the shown index stays as it is
    with Catalog.open(path, readonly=True) as catalog:
        ti.set_split(catalog, probe, split)
    return probe.split_name, probe.split_part


@dataclass(frozen=True)
class LateColumns:
    """What follows the tile table: the split parts (``split_part`` None: not read), the QC
    columns, and the tile table read from the catalog when the one shown was a snapshot that
    differs from it (``table``; its ids are the columns')."""

    qc: ti.QCColumns
    split_name: str | None = None
    split_part: np.ndarray | None = None
    table: ti.TileIndex | None = None


def load_late_for(path: Path, index: ti.TileIndex, verify_to: Path | None = None) -> LateColumns:
    """The split parts of ``index.split_name`` and the QC columns (worker thread). With
    ``verify_to`` (``index`` came from the snapshot there), the tile table is read from the
    catalog first; if it differs, it is returned (and saved as the snapshot) and the columns
    are those of its tiles."""
    table = None
    if verify_to is not None:
        fresh = load_index_for(path, index.split_name)
        if not same_table(index, fresh):
            save_snapshot(verify_to, fresh)
            table = index = fresh
    name, parts = load_split_for(path, index, index.split_name)
    return LateColumns(load_qc_for(path, index.ids), name, parts, table)


def load_tiles_for(path: Path, tile_ids: list[int]) -> list[Tile]:
    """The catalog records of some tiles (worker thread): what a mask edit changed."""
    with Catalog.open(path, readonly=True) as catalog:
        return catalog.tiles(ids=tile_ids)


PATCH_ON_GUI_THREAD = 64
"""Up to this many changed tiles are re-read on the GUI thread (a few ms); more in a worker."""
SPLIT_ON_GUI_THREAD = 2_000
"""Up to this many tiles, another split's parts are read on the GUI thread (~10 ms); more in
a worker (~90 ms at 20k tiles)."""
LATE_START_MAX_S = 0.4
"""The QC columns and split parts are read once the first screen's thumbnails are in (they
compete for the interpreter with the thumbnail decoders), or after this long at most."""


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
        self._index_call.finished.connect(self._on_index_result)
        self._verify_table = False  # the index shown is a snapshot: the late job reads the catalog
        self._verifying_to: Path | None = None  # ... and saves it here if it differs (until it came)
        self._index_call.failed.connect(self._on_index_failed)
        self._qc_call = LatestCall(self)
        self._qc_call.finished.connect(self._on_qc)
        self._qc_call.failed.connect(self._on_index_failed)
        self._late_job: Callable[[], LateColumns] | None = None  # waits for the first screen
        self._remember_first_screen = False  # a project was opened: save its first screen
        self._late_since = 0.0
        self._late_paints = 0
        self._late_timer = QTimer(self, interval=15)
        self._late_timer.timeout.connect(self._maybe_start_late)
        self._split_serial = 0  # counts split changes: late split parts of an older one are moot
        self._late_serial = 0
        self._split_call = LatestCall(self)
        self._split_call.finished.connect(self._on_split_parts)
        self._split_call.failed.connect(lambda msg: log.warning("split parts not read: %s", msg))
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
            cache = self.loader.disk_cache
            if cache is not None:  # the last first screen, read while the tile table loads
                self.loader.prefetch(load_first_screen(cache, catalog.root))
            self._remember_first_screen = True
            self.model.set_view(None, None)
            self.close_detail()
        self.count_label.setText("Loading tiles\u2026")
        path, split = catalog.path, self._split
        cache = self.loader.disk_cache
        snapshots = None if cache is None else cache.folder
        if new_project:
            self._index_call.submit(lambda: load_first_index_for(path, split, snapshots))
        else:
            self._index_call.submit(lambda: load_index_for(path, split, snapshots))

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
        if self._late_job is not None:  # the columns are not read yet: they will be fresh
            return
        self._decided_meanwhile = set()
        path, ids = catalog.path, index.ids
        if self._verifying_to is not None:  # the snapshot shown is not checked yet: this call does it
            probe, verify_to = copy.copy(index), self._verifying_to
            self._late_serial = self._split_serial
            self._qc_call.submit(lambda: load_late_for(path, probe, verify_to))
            return
        self._qc_call.submit(lambda: LateColumns(load_qc_for(path, ids)))

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
        cache = self.loader.disk_cache
        if cache is not None:  # the snapshot no longer holds the table
            forget_snapshot(cache.folder)
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
        self._set_split(wanted if wanted in names else None)

    def _set_split(self, split: str | None) -> None:
        """Show the parts of ``split``: read at once for a small project, else in a worker
        (the split chooser names it meanwhile)."""
        catalog, index = self.context.catalog, self.index
        if catalog is None or index is None:
            return
        self._split = split
        self._split_serial += 1
        if len(index) <= SPLIT_ON_GUI_THREAD:
            self._split_call.cancel()
            ti.set_split(catalog, index, split)
            self._show_split()
            return
        self._refresh_split_combo()
        path, probe, serial = catalog.path, copy.copy(index), self._split_serial
        self._split_call.submit(lambda: (serial, probe.ids, *load_split_for(path, probe, split)))

    def _on_split_parts(self, result: tuple[int, np.ndarray, str | None, np.ndarray]) -> None:
        serial, ids, name, parts = result
        index = self.index
        if index is None or serial != self._split_serial or ids is not index.ids:
            return  # another split was chosen, or the tile table was reloaded, meanwhile
        index.split_name, index.split_part = name, parts
        self._show_split()

    def _show_split(self) -> None:
        assert self.index is not None
        self._refresh_split_combo()
        self.filters.set_index(self.index)
        self.apply_filter()

    def is_loading(self) -> bool:
        return (
            self._index_call.is_busy() or self._qc_call.is_busy() or self._patch_call.is_busy()
            or self._split_call.is_busy() or self._late_job is not None
        )

    def _on_index_result(self, result: ti.TileIndex | FirstIndex) -> None:
        if isinstance(result, FirstIndex):
            self._verify_table = result.from_snapshot
            self._on_index(result.index)
        else:
            self._verify_table = False
            self._on_index(result)

    def _on_index(self, index: ti.TileIndex) -> None:
        """The tiles arrived (QC columns follow): show them, keeping the known QC columns
        until the fresh ones come, so a reload does not blink every badge."""
        catalog = self.context.catalog
        if catalog is None:
            return
        old = self.index
        if old is not None and self.qc_loaded:
            same = ti.attach_qc(
                index,
                ti.QCColumns(old.ids, old.metrics, old.manual, old.auto_state, old.failed, old.rules, old.stale,
                             old.unmeasured),
            )
            if same and old.split_name == index.split_name and old.split_part.shape == index.ids.shape:
                index.split_part = old.split_part.copy()
        if self._split != "latest":  # the split chosen while the table was read
            index.split_name = self._split
        self._split = index.split_name
        self.qc_loaded = False
        self._decided_meanwhile = set()
        path, probe = catalog.path, copy.copy(index)
        cache = self.loader.disk_cache
        verify_to = cache.folder if self._verify_table and cache is not None else None
        self._verify_table = False
        self._verifying_to = verify_to
        self._late_serial = self._split_serial
        self._defer_late(lambda: load_late_for(path, probe, verify_to))
        self._show_index(index)

    def _defer_late(self, job: Callable[[], LateColumns]) -> None:
        """Run ``job`` (QC columns, split parts) once the first screen's thumbnails are in."""
        self._late_job = job
        self._late_since = time.perf_counter()
        self._late_paints = self.delegate.paints
        self._late_timer.start()

    def _maybe_start_late(self) -> None:
        job = self._late_job
        if job is not None:
            waited = time.perf_counter() - self._late_since
            painted = self.delegate.paints > self._late_paints and self.loader.pending() == 0
            nothing_to_paint = self.model.rowCount() == 0 or not self.grid.isVisible()
            if waited < LATE_START_MAX_S and not painted and not nothing_to_paint:
                return
            self._qc_call.submit(self._with_first_screen_saved(job))
        self._late_job = None
        self._late_timer.stop()

    def _with_first_screen_saved(self, job: Callable[[], LateColumns]) -> Callable[[], LateColumns]:
        """``job``, first saving which tiles the project's first screen shows (once per open):
        the next open reads their thumbnails while the tile table loads."""
        cache, index = self.loader.disk_cache, self.index
        rows = self._rows_in_view() if self.grid.isVisible() else np.zeros(0, np.int64)
        if not self._remember_first_screen or cache is None or index is None or rows.size == 0:
            return job
        self._remember_first_screen = False
        tiles = [
            (int(index.ids[r]), str(index.modified[r]), str(index.image_path[r]),
             None if index.mask_path[r] is None else str(index.mask_path[r]))
            for r in rows.tolist()
        ]
        size = thumbnails.size_bucket(self.delegate.thumb_px)

        def run() -> LateColumns:
            save_first_screen(cache, size, tiles)
            return job()

        return run

    def _rows_in_view(self) -> np.ndarray:
        """Index rows of the grid's cells in view."""
        n = self.model.rowCount()
        cell = self.grid.gridSize()
        first = self.grid.indexAt(QPoint(cell.width() // 2, cell.height() // 2)).row() if n else -1
        if first < 0 or cell.width() <= 0 or cell.height() <= 0:
            return np.zeros(0, np.int64)
        vp = self.grid.viewport().rect()
        count = max(1, vp.width() // cell.width()) * (vp.height() // cell.height() + 1)
        return self.model.rows[first : min(n, first + count)]

    def _on_qc(self, late: LateColumns) -> None:
        catalog, index = self.context.catalog, self.index
        if late.table is not None and index is not None:  # the snapshot shown was out of date
            log.info("the tile table changed since its snapshot: shown as read from the catalog")
            index = late.table
        if catalog is None or index is None or not ti.attach_qc(index, late.qc):
            return
        self._verifying_to = None
        parts = late.split_part
        if parts is not None and parts.shape == index.ids.shape and self._late_serial == self._split_serial:
            index.split_name, index.split_part = late.split_name, parts
        if self._decided_meanwhile:  # decisions made while the columns were read
            ti.refresh_decisions(catalog, index, sorted(self._decided_meanwhile))
        self.qc_loaded = True
        self._show_index(index)
        if late.table is not None and self._late_serial != self._split_serial:
            self._set_split(self._split)  # chosen meanwhile, for the tiles shown before

    def _show_index(self, index: ti.TileIndex) -> None:
        self.index = index
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
        self._split_call.cancel()
        self._late_job = None
        self._verifying_to = None
        self._late_timer.stop()
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
        if self.index is None or self.context.catalog is None or split == self._split:
            return
        self._set_split(split)

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
        self._late_timer.stop()
        self._late_job = None
        self.loader.shutdown()
        self._index_call.shutdown()
        self._qc_call.shutdown()
        self._split_call.shutdown()
        self._patch_call.shutdown()
        self.detail.shutdown()
