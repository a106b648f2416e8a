"""The browser's filter form: widgets in, a :class:`~casdesk.core.dataset.tile_table.TileFilter` out.

No filtering happens here; the panel hands the filter to the core's numpy functions.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleRangeSlider

from casdesk.core.dataset.tile_table import (
    LABEL_FRACTION,
    PART_NAMES,
    TileFilter,
    TileIndex,
    metric_bounds,
    qc_code,
    state_name,
)

RANGE_METRICS = (LABEL_FRACTION, "fill_fraction", "cloud_fraction", "seam_score")
"""Metrics offered as range filters (when the project has values for them)."""
QC_STATES = ("PENDING", "ACCEPTED", "REJECTED", "FLAGGED", "MANUAL_ACCEPT", "MANUAL_REJECT")
METRIC_LABELS = {
    LABEL_FRACTION: "Labelled fraction",
    "fill_fraction": "Fill fraction",
    "cloud_fraction": "Cloud fraction",
    "seam_score": "Seam score (DN)",
}


def _checks(names: list[tuple[str, str]], layout: QGridLayout, columns: int = 2) -> dict[str, QCheckBox]:
    boxes = {}
    for i, (key, text) in enumerate(names):
        box = QCheckBox(text)
        box.setChecked(True)
        layout.addWidget(box, i // columns, i % columns)
        boxes[key] = box
    return boxes


class FilterPanel(QWidget):
    """Emits :attr:`changed` whenever the user changes a filter."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._updating = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)

        self.search = QLineEdit(placeholderText="Search tile names")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._emit)
        layout.addWidget(self.search)

        box = QGroupBox("Subdataset")
        self.subdatasets = QListWidget()
        self.subdatasets.setMaximumHeight(110)
        self.subdatasets.itemChanged.connect(self._emit)
        QVBoxLayout(box).addWidget(self.subdatasets)
        layout.addWidget(box)

        box = QGroupBox("Sensor")
        grid = QGridLayout(box)
        self.sensors = _checks([("UAV", "UAV"), ("SAT", "SAT"), ("", "unknown")], grid, 3)
        layout.addWidget(box)

        box = QGroupBox("QC state")
        grid = QGridLayout(box)
        self.states = _checks([(s, state_name(qc_code(s))) for s in QC_STATES], grid)
        layout.addWidget(box)

        box = QGroupBox("Split")
        grid = QGridLayout(box)
        self.split_name = QLabel("no split")
        self.split_name.setWordWrap(True)
        grid.addWidget(self.split_name, 0, 0, 1, 4)
        self.parts: dict[str, QCheckBox] = {}
        for i, (key, text) in enumerate([*((p, p) for p in PART_NAMES[1:]), ("", "none")]):
            check = QCheckBox(text)
            check.setChecked(True)
            grid.addWidget(check, 1, i)
            self.parts[key] = check
        layout.addWidget(box)

        box = QGroupBox("Landslide pixels")
        v = QVBoxLayout(box)
        self.has_label = QComboBox()
        self.has_label.addItems(["Any tile", "With landslide pixels", "Without landslide pixels"])
        self.has_label.currentIndexChanged.connect(self._emit)
        v.addWidget(self.has_label)
        layout.addWidget(box)

        self.ranges_box = QGroupBox("Metric ranges")
        self.ranges_layout = QVBoxLayout(self.ranges_box)
        self.ranges: dict[str, QLabeledDoubleRangeSlider] = {}  # the sliders shown
        self._bounds: dict[str, tuple[float, float]] = {}
        # one slider per metric, built here, hidden: built while a project opened (one per
        # event-loop turn), each took 5-30 ms of the GUI thread and relaid the window out
        self._sliders = {name: self._new_slider(name) for name in RANGE_METRICS}
        self.ranges_box.setVisible(False)
        layout.addWidget(self.ranges_box)

        reset = QPushButton("Reset filters")
        reset.clicked.connect(self.reset)
        layout.addWidget(reset)
        layout.addStretch(1)
        for b in [*self.sensors.values(), *self.states.values(), *self.parts.values()]:
            b.toggled.connect(self._emit)

    # ---- content
    def set_index(self, index: TileIndex | None) -> None:
        """Offer the subdatasets and metrics of ``index``, keeping the user's choices."""
        self._updating = True
        try:
            unchecked = {
                self.subdatasets.item(i).text()
                for i in range(self.subdatasets.count())
                if self.subdatasets.item(i).checkState() != Qt.CheckState.Checked
            }
            self.subdatasets.clear()
            names = [] if index is None else index.subdataset_names
            for name in names:
                item = QListWidgetItem(name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked if name in unchecked else Qt.CheckState.Checked)
                self.subdatasets.addItem(item)
            self.split_name.setText(
                f"parts of split <b>{index.split_name}</b>" if index is not None and index.split_name else "no split"
            )
            self._update_ranges(index)
        finally:
            self._updating = False

    def _new_slider(self, name: str) -> QLabeledDoubleRangeSlider:
        holder = QWidget()
        v = QVBoxLayout(holder)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(QLabel(METRIC_LABELS.get(name, name)))
        slider = QLabeledDoubleRangeSlider(Qt.Orientation.Horizontal)
        slider.setDecimals(3)
        slider.setHandleLabelPosition(QLabeledDoubleRangeSlider.LabelPosition.NoLabel)
        slider.setEdgeLabelMode(QLabeledDoubleRangeSlider.EdgeLabelMode.LabelIsValue)
        _remember_label_sizes(slider)
        v.addWidget(slider)
        holder.hide()
        self.ranges_layout.addWidget(holder)
        slider.valueChanged.connect(self._emit)
        return slider

    def ranges_ready(self) -> bool:
        """Every metric slider exists (they are built with the panel)."""
        return True

    def _update_ranges(self, index: TileIndex | None) -> None:
        wanted = [] if index is None else [
            m for m in RANGE_METRICS
            if m in index.metrics and bool(np.isfinite(index.metrics[m]).any())
        ]
        for name in list(self.ranges):
            if name not in wanted:
                holder = self.ranges.pop(name).parentWidget()
                if holder is not None:
                    holder.hide()
        for name in wanted:
            slider = self.ranges.get(name)
            lo, hi = metric_bounds(index, name)  # type: ignore[arg-type]
            hi = hi if hi > lo else lo + 1e-6
            if slider is None:  # shown again: the full range
                slider = self.ranges[name] = self._sliders[name]
                slider.setRange(lo, hi)  # type: ignore[arg-type]  # superqt types it int; floats work
                slider.setValue((lo, hi))
                holder = slider.parentWidget()
                if holder is not None:
                    holder.show()
            else:
                old_lo, old_hi = self._bounds.get(name, (lo, hi))
                cur_lo, cur_hi = slider.value()
                slider.setRange(lo, hi)  # type: ignore[arg-type]  # superqt types it int; floats work
                full = math.isclose(cur_lo, old_lo) and math.isclose(cur_hi, old_hi)
                slider.setValue((lo, hi) if full else (max(lo, cur_lo), min(hi, cur_hi)))
            self._bounds[name] = (lo, hi)
        self.ranges_box.setVisible(bool(self.ranges))

    def reset(self) -> None:
        self._updating = True
        try:
            self.search.clear()
            for i in range(self.subdatasets.count()):
                self.subdatasets.item(i).setCheckState(Qt.CheckState.Checked)
            for b in [*self.sensors.values(), *self.states.values(), *self.parts.values()]:
                b.setChecked(True)
            self.has_label.setCurrentIndex(0)
            for name, slider in self.ranges.items():
                slider.setValue(self._bounds[name])
        finally:
            self._updating = False
        self.changed.emit()

    def _emit(self, *_args: object) -> None:
        if not self._updating:
            self.changed.emit()

    # ---- the filter
    def current_filter(self) -> TileFilter:
        subs = [self.subdatasets.item(i) for i in range(self.subdatasets.count())]
        checked = frozenset(i.text() for i in subs if i.checkState() == Qt.CheckState.Checked)
        ranges = {}
        for name, slider in self.ranges.items():
            lo, hi = slider.value()
            b_lo, b_hi = self._bounds[name]
            if lo > b_lo + 1e-9 or hi < b_hi - 1e-9:
                ranges[name] = (float(lo), float(hi))
        has_label = {0: None, 1: True, 2: False}[self.has_label.currentIndex()]
        return TileFilter(
            subdatasets=None if len(checked) == len(subs) else checked,
            sensors=_chosen(self.sensors),
            qc_states=None if (c := _chosen(self.states)) is None else frozenset(qc_code(s) for s in c),
            split_parts=_chosen(self.parts),
            ranges=ranges,
            has_label=has_label,
            text=self.search.text(),
        )

    def uses_qc_state(self) -> bool:
        return _chosen(self.states) is not None

    def uses_labels(self) -> bool:
        """True when the filter depends on the masks (has-label choice or label fraction range)."""
        return self.has_label.currentIndex() != 0 or LABEL_FRACTION in self.current_filter().ranges


def _chosen(boxes: dict[str, QCheckBox]) -> frozenset[str] | None:
    """The checked keys, or None when all are checked (no restriction)."""
    keys = frozenset(k for k, b in boxes.items() if b.isChecked())
    return None if len(keys) == len(boxes) else keys


def _remember_label_sizes(slider: QLabeledDoubleRangeSlider) -> None:
    """superqt re-measures each edge label (a style-sheeted line edit) at every show: about
    2 ms each, so showing the Browse tab cost 17 ms of a 42 ms stall. Measure again only when
    something the size depends on changed (font, range, decimals, affixes, mode); a change of
    range or decimals still re-measures through superqt's own connections."""
    for label in (getattr(slider, "_min_label", None), getattr(slider, "_max_label", None)):
        measure = getattr(label, "_update_size", None)
        if label is None or measure is None:
            continue  # another superqt: keep its behaviour
        last: list[object] = [None]

        def update(*_args: object, label: QLineEdit = label, measure=measure, last=last) -> None:
            key = (
                label.font().key(),
                getattr(label, "_min", None),
                getattr(label, "_max", None),
                getattr(label, "_decimals", None),
                getattr(label, "_prefix", None),
                getattr(label, "_suffix", None),
                int(getattr(label, "_mode", 0)),
            )
            if key != last[0]:
                measure()
                last[0] = key

        label._update_size = update  # showEvent looks it up on the instance first
