"""One rule's controls: enable box, slider + spin box, and a histogram with a draggable
threshold line. Emits ``changed(Rule)``; knows nothing about counting."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QGridLayout, QLabel, QSlider, QWidget

from casdesk.core.qc.rules import METRICS, Rule

SLIDER_STEPS = 1000


class RuleEditor(QWidget):
    changed = Signal(object)  # the new Rule

    def __init__(self, rule: Rule, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rule = rule
        metric = METRICS.get(rule.metric)
        self.lo, self.hi = metric.range if metric else (0.0, 1.0)
        self.hi = max(self.hi, rule.threshold)
        title = metric.label if metric else rule.metric
        sign = "reject above" if rule.op == "max" else "reject below"
        sensors = f" ({'/'.join(rule.sensors)} only)" if rule.sensors else ""
        self.enabled_box = QCheckBox(f"{title}: {sign}{sensors}")
        self.enabled_box.setChecked(rule.enabled)
        self.enabled_box.setToolTip(metric.doc if metric else "")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.spin = QDoubleSpinBox()
        decimals = 4 if self.hi <= 1 else 1
        self.spin.setDecimals(decimals)
        self.spin.setRange(self.lo, self.hi)
        self.spin.setSingleStep((self.hi - self.lo) / 100)
        self.spin.setMinimumWidth(90)
        self.summary = QLabel("")
        self.summary.setStyleSheet("color: gray")

        self.plot = pg.PlotWidget(background=self.palette().base().color())
        self.plot.setFixedHeight(90)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setTextPen(self.palette().text().color())
            self.plot.getAxis(axis).setPen(self.palette().mid().color())
        self.plot.getAxis("left").setWidth(36)
        self.plot.setXRange(self.lo, self.hi, padding=0.02)
        self.bars = pg.BarGraphItem(x0=[], x1=[], height=[], brush=pg.mkBrush(70, 110, 190, 200), pen=None)
        self.plot.addItem(self.bars)
        self.line = pg.InfiniteLine(
            pos=rule.threshold, angle=90, movable=True, pen=pg.mkPen(220, 60, 60, width=2),
            hoverPen=pg.mkPen(255, 120, 0, width=3),
        )
        self.line.setBounds((self.lo, self.hi))
        self.plot.addItem(self.line)
        # values beyond the slider range are counted in the end bars: say so
        self.overflow = pg.TextItem("", anchor=(1, 0), color=self.palette().text().color())
        self.plot.addItem(self.overflow)

        grid = QGridLayout(self)
        grid.setContentsMargins(0, 4, 0, 4)
        grid.addWidget(self.enabled_box, 0, 0, 1, 2)
        grid.addWidget(self.summary, 0, 2, alignment=Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.slider, 1, 0, 1, 2)
        grid.addWidget(self.spin, 1, 2)
        grid.addWidget(self.plot, 2, 0, 1, 3)
        grid.setColumnStretch(0, 1)

        self._updating = False
        self._show(rule.threshold)
        self.slider.valueChanged.connect(lambda v: self.set_threshold(self._from_slider(v)))
        self.spin.valueChanged.connect(self.set_threshold)
        self.line.sigPositionChanged.connect(lambda line: self.set_threshold(float(line.value())))
        self.enabled_box.toggled.connect(self._on_enabled)

    # ---- value mapping
    def _to_slider(self, value: float) -> int:
        return int(round((value - self.lo) / (self.hi - self.lo) * SLIDER_STEPS))

    def _from_slider(self, pos: int) -> float:
        return self.lo + (self.hi - self.lo) * pos / SLIDER_STEPS

    def _show(self, value: float) -> None:
        self._updating = True
        try:
            self.slider.setValue(self._to_slider(value))
            self.spin.setValue(value)
            self.line.setValue(value)
        finally:
            self._updating = False

    # ---- changes
    def set_threshold(self, value: float) -> None:
        if self._updating:
            return
        value = float(min(max(value, self.lo), self.hi))
        if value == self.rule.threshold:
            return
        self.rule = replace(self.rule, threshold=value)
        self._show(value)
        self.changed.emit(self.rule)

    def set_rule(self, rule: Rule) -> None:
        """Show another rule for the same metric (preset change) without emitting."""
        self.rule = rule
        self._show(rule.threshold)
        self.enabled_box.blockSignals(True)
        self.enabled_box.setChecked(rule.enabled)
        self.enabled_box.blockSignals(False)

    def _on_enabled(self, on: bool) -> None:
        self.rule = replace(self.rule, enabled=on)
        self.changed.emit(self.rule)

    def set_values(self, values: np.ndarray) -> None:
        """Histogram of this metric over all tiles (NaN ignored)."""
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            self.bars.setOpts(x0=[], x1=[], height=[])
            self.plot.setYRange(0, 1, padding=0)  # not pyqtgraph's -0.5..0.5 of an empty plot
            self.overflow.setText("")
            self.overflow_count = 0
            return
        counts, edges = np.histogram(np.clip(finite, self.lo, self.hi), bins=50, range=(self.lo, self.hi))
        self.bars.setOpts(x0=edges[:-1], x1=edges[1:], height=counts)
        top = max(1, int(counts.max()))
        self.plot.setYRange(0, top * 1.05, padding=0)
        # the left axis as wide as its longest tick label (counts reach tens of thousands)
        width = QFontMetrics(self.plot.font()).horizontalAdvance(str(top))
        self.plot.getAxis("left").setWidth(max(36, int(width) + 16))
        over = int(np.count_nonzero(finite >= self.hi))
        if over:
            self.overflow.setText(f"last bar: \u2265 {self.hi:g} ({over})")
            self.overflow.setPos(self.hi, top * 1.05)
        else:
            self.overflow.setText("")
        self.overflow_count = over

    def set_summary(self, text: str) -> None:
        self.summary.setText(text)
