"""The Browse tab's detail pane: open the current tile beside the grid (image, mask, scene
context, predictions, QC state), follow the current tile, close with Escape.

A part of :class:`~casdesk.gui.browser.panel.BrowserPanel` (a QWidget base without state of
its own: the panel's ``__init__`` sets the attributes declared here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, Qt, QTimer
from PySide6.QtWidgets import QSplitter, QWidget

from casdesk.core.dataset import tile_table as ti
from casdesk.core.errors import CasdeskError
from casdesk.gui.browser.detail import DetailRequest, TileDetail
from casdesk.gui.browser.filters import FilterPanel
from casdesk.gui.browser.grid import TileGridView
from casdesk.gui.browser.model import TileListModel
from casdesk.gui.browser.toolbar import FILTER_MIN_WIDTH
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.shell.context import ProjectContext


class DetailPane(QWidget):
    """The detail view beside the grid (part of BrowserPanel)."""

    # the panel's state this part uses (BrowserPanel.__init__ and _build set it)
    context: ProjectContext
    index: ti.TileIndex | None
    model: TileListModel
    grid: TileGridView
    filters: FilterPanel
    detail: TileDetail
    splitter: QSplitter
    _center: QWidget
    _detail_timer: QTimer

    if TYPE_CHECKING:  # the panel's other parts
        def apply_filter(self) -> None: ...
        def _select_id(self, tile_id: int) -> None: ...
        def _update_actions(self) -> None: ...

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
        lines = [f"QC: {index.state_text(row)}", *index.failed_rules(row)]
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
