"""What the Browse tab does to the selected tiles: accept / reject / clear their QC decision,
put them in a split, train on them; and the selection those act on.

A part of :class:`~casdesk.gui.browser.panel.BrowserPanel` (a QWidget base without state of
its own: the panel's ``__init__`` sets the attributes declared here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QItemSelectionModel
from PySide6.QtWidgets import QLabel, QPushButton, QWidget

from casdesk.core.dataset import tile_table as ti
from casdesk.core.errors import CasdeskError
from casdesk.core.project import events as ev
from casdesk.gui.browser.filters import FilterPanel
from casdesk.gui.browser.grid import TileGridView
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


class TileActions(QWidget):
    """Selection, QC decisions, split assignment, a short training run (part of BrowserPanel)."""

    # the panel's state this part uses (BrowserPanel.__init__ and _build set it)
    context: ProjectContext
    index: ti.TileIndex | None
    model: TileListModel
    grid: TileGridView
    filters: FilterPanel
    qc_loaded: bool
    _split: str | None
    _follow: tuple[int, int] | None
    _decided_meanwhile: set[int]
    accept_button: QPushButton
    reject_button: QPushButton
    clear_button: QPushButton
    split_button: QPushButton
    train_button: QPushButton
    detail_button: QPushButton
    selection_label: QLabel

    if TYPE_CHECKING:  # the panel's other parts
        def apply_filter(self) -> None: ...

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
