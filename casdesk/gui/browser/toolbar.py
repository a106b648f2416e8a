"""The Browse tab's layout: the sort/size/split/overlay bar, the decision and split buttons,
the filter column, the grid and the detail pane in a splitter.

A part of :class:`~casdesk.gui.browser.panel.BrowserPanel` (a QWidget base: the panel's
``__init__`` makes the grid, delegate, filters and detail first, then calls :meth:`_build`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, Qt
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
from casdesk.gui.browser.delegate import TileDelegate
from casdesk.gui.browser.detail import TileDetail
from casdesk.gui.browser.filters import FilterPanel
from casdesk.gui.browser.grid import TileGridView

FILTER_MIN_WIDTH = 200
"""The filter column's minimum width (pixels)."""


class BrowserToolbar(QWidget):
    """Builds the Browse tab's bars and layout (part of BrowserPanel)."""

    # the panel's state the layout uses (BrowserPanel.__init__ sets it before _build)
    delegate: TileDelegate
    filters: FilterPanel
    grid: TileGridView
    detail: TileDetail

    if TYPE_CHECKING:  # the panel's other parts, called by the controls
        def _schedule_apply(self) -> None: ...
        def set_thumb_px(self, px: int) -> None: ...
        def _on_overlay(self, *_args: object) -> None: ...
        def _on_split_chosen(self, _i: int) -> None: ...
        def decide(self, decision: str) -> None: ...
        def assign_split_dialog(self) -> None: ...
        def train_dialog(self) -> None: ...
        def open_detail(self, index: QModelIndex) -> None: ...

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
