"""The thumbnail grid: a QListView laid out as a wrapping grid of uniform cells, with the
browser's keyboard commands."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QListView, QWidget

DECISION_KEYS: dict[int, str] = {Qt.Key.Key_A: "accept", Qt.Key.Key_R: "reject", Qt.Key.Key_C: "clear"}


class TileGridView(QListView):
    """Arrows move, Enter opens the detail view, Space toggles the mask overlay, A / R / C
    accept / reject / clear the QC decision of the selection, Ctrl+A selects all."""

    open_requested = Signal(QModelIndex)
    decide_requested = Signal(str)
    overlay_toggle_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(2000)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionRectVisible(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setDragEnabled(False)
        self.setSpacing(0)
        self.setMouseTracking(True)
        self.doubleClicked.connect(self.open_requested)

    def set_cell_size(self, size: QSize) -> None:
        self.setGridSize(size)
        self.verticalScrollBar().setSingleStep(max(8, size.height() // 4))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        key = event.key()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.open_requested.emit(self.currentIndex())
            return
        if mods == Qt.KeyboardModifier.NoModifier:
            if key == Qt.Key.Key_Space:
                self.overlay_toggle_requested.emit()
                return
            if key in DECISION_KEYS:
                self.decide_requested.emit(DECISION_KEYS[key])
                return
        super().keyPressEvent(event)

    def keyboardSearch(self, search: str) -> None:  # noqa: N802 - Qt override
        """Letters are commands here, not jumps to a name (the search box finds names)."""
