"""Live training plots (pyqtgraph): loss per step and per epoch, validation metrics, LR.

Curves grow by appending to numpy buffers and calling ``setData`` (cheap; downsampled and
clipped to the view), so plotting never slows training down.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGraphicsItem,
    QGridLayout,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

# (key in the epoch record's "val", legend name, colour)
VAL_CURVES: tuple[tuple[str, str, str], ...] = (
    ("precision", "Precision", "#1f77b4"),
    ("recall", "Recall", "#ff7f0e"),
    ("iou", "IoU (landslide)", "#2ca02c"),
    ("f1_landslide", "F1 (landslide)", "#d62728"),
    ("f1_mean", "F1 (class mean, paper)", "#9467bd"),
    ("miou", "mIoU", "#8c564b"),
    ("accuracy", "OA", "#7f7f7f"),
)


EPOCH_AXIS = "epoch"
# a light box behind the legends: curves passing under them stay readable
LEGEND_STYLE = {"brush": pg.mkBrush(255, 255, 255, 210), "pen": pg.mkPen("#cccccc")}
STEP_AXIS = "epoch (fractional: each point is one batch)"
X_PADDING = 0.05
"""Room beside the run's first and last epoch on the x axes (share of the run): the points of
the last epoch are drawn whole, not cut by the frame (0.02 cut them in a 1-epoch run)."""
REVEAL_EVERY_MS = 40
"""At the first show, the plots are painted one per this long (not all in one frame)."""
DRAW_EVERY_MS = 100
"""New points are drawn one plot at a time, one plot every this long at most."""


def _style(colour: str, size: int) -> dict[str, Any]:
    """A line with round markers, both in one colour (pyqtgraph's default marker is blue)."""
    return {"pen": pg.mkPen(colour, width=2), "symbol": "o", "symbolSize": size,
            "symbolBrush": pg.mkBrush(colour), "symbolPen": pg.mkPen(colour)}


class Series:
    """A growing x/y buffer bound to one curve."""

    def __init__(self, curve: pg.PlotDataItem):
        self.curve = curve
        self.x: list[float] = []
        self.y: list[float] = []
        self.dirty = False

    def append(self, x: float, y: float, draw: bool = True) -> None:
        """Add a point; ``draw=False`` leaves the curve as it is until :meth:`draw`."""
        self.x.append(x)
        self.y.append(y)
        self.dirty = True
        if draw:
            self.draw()

    def draw(self) -> None:
        if self.dirty:
            self.dirty = False
            self.curve.setData(np.asarray(self.x), np.asarray(self.y))

    def set(self, x: list[float], y: list[float]) -> None:
        self.x, self.y = list(x), list(y)
        self.dirty = False
        self.curve.setData(np.asarray(self.x, dtype=float), np.asarray(self.y, dtype=float))

    def clear(self) -> None:
        self.set([], [])


class TrainingPlots(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        pg.setConfigOptions(antialias=True)
        self.loss_plot = pg.PlotWidget(title="Loss")
        self.loss_plot.setLabel("bottom", STEP_AXIS)
        self.loss_plot.setLabel("left", "loss")
        self.loss_plot.addLegend(offset=(-10, 10), **LEGEND_STYLE)
        self.metric_plot = pg.PlotWidget(title="Validation metrics (%)")
        self.metric_plot.setLabel("bottom", EPOCH_AXIS)
        self.metric_plot.setLabel("left", "%")
        self.metric_plot.setYRange(0, 100)
        self.metric_plot.addLegend(offset=(-10, 10), **LEGEND_STYLE)
        self.lr_plot = pg.PlotWidget(title="Learning rate")
        self.lr_plot.setLabel("bottom", STEP_AXIS)
        self.lr_plot.setLabel("left", "learning rate")
        for plot in (self.loss_plot, self.metric_plot, self.lr_plot):
            # no SI prefix on either axis: pyqtgraph turned epochs 0.15-0.40 into "epoch (x0.001)"
            # with ticks 150-400, and a 0.01 learning rate into "(x0.001) 10"
            for side in ("bottom", "left"):
                axis = plot.getAxis(side)
                axis.enableAutoSIPrefix(False)
                # each repaint replayed every axis's ticks and labels (~3 ms each, 8 per
                # batch: ~45 ms of the GUI thread per batch); cached, an axis is drawn again
                # only when its range changes, a repaint is ~5 ms
                axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setBackground("w")
            plot.getPlotItem().setClipToView(True)
            plot.getPlotItem().setDownsampling(auto=True, mode="peak")
        self.step_loss = Series(self.loss_plot.plot(name="train (per batch)", pen=pg.mkPen("#9ecae1", width=1)))
        self.train_loss = Series(self.loss_plot.plot(name="train (epoch)", **_style("#1f77b4", 5)))
        self.val_loss = Series(self.loss_plot.plot(name="validation", **_style("#d62728", 5)))
        self.metrics = {
            key: Series(self.metric_plot.plot(name=name, **_style(colour, 4))) for key, name, colour in VAL_CURVES
        }
        self.lr = Series(self.lr_plot.plot(pen=pg.mkPen("#333333", width=2)))
        self.compare_curves: list[pg.PlotDataItem] = []
        self._batch_timer = QTimer(self, singleShot=True, interval=DRAW_EVERY_MS)
        self._batch_timer.timeout.connect(self._draw_next)
        self._groups = [
            (self.loss_plot, [self.step_loss, self.train_loss, self.val_loss]),
            (self.lr_plot, [self.lr]),
            (self.metric_plot, list(self.metrics.values())),
        ]
        self._drawn = len(self._groups) - 1  # the group drawn last (the loss plot goes first)
        self._to_reveal: list[pg.PlotWidget] | None = None  # plots not painted yet (first show)
        self._reveal_timer = QTimer(self, singleShot=True, interval=REVEAL_EVERY_MS)
        self._reveal_timer.timeout.connect(self._reveal_next)
        self._x_end: float | None = None  # the run's epochs, once known (else x auto range)
        self._lr_top = 0.0
        self._loss_span: tuple[float, float] | None = None  # the loss axis during a run
        self._ranges: dict[pg.PlotWidget, dict[str, tuple[float, float, float]]] = {}
        """Axis ranges to set, per plot: applied on the plot's own drawing turn (setting all
        three plots' ranges at once re-laid out six axes in one frame, ~30 ms)."""
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.loss_plot, 0, 0)
        grid.addWidget(self.metric_plot, 0, 1)
        grid.addWidget(self.lr_plot, 1, 0, 1, 2)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 1)

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        """The first time: one plot in this frame, the others one per turn after it (the first
        paint of a plot, its axes and legend drawn, is ~20 ms of the GUI thread)."""
        super().showEvent(event)
        if self._to_reveal is None:
            self._to_reveal = [self.metric_plot, self.lr_plot]
            for plot in self._to_reveal:
                plot.setUpdatesEnabled(False)
            self._reveal_timer.start()

    def _reveal_next(self) -> None:
        if self._to_reveal:
            self._to_reveal.pop(0).setUpdatesEnabled(True)
        if self._to_reveal:
            self._reveal_timer.start()

    def clear(self) -> None:
        self._batch_timer.stop()
        for s in (self.step_loss, self.train_loss, self.val_loss, self.lr, *self.metrics.values()):
            s.clear()
        self._x_end, self._lr_top, self._loss_span = None, 0.0, None
        self._ranges.clear()
        for plot in (self.loss_plot, self.lr_plot):
            plot.getPlotItem().enableAutoRange()
        self.metric_plot.getPlotItem().enableAutoRange(axis="x")  # y stays 0-100

        for c in self.compare_curves:
            self.metric_plot.removeItem(c)
        self.compare_curves = []

    def add_batch(self, data: dict[str, Any]) -> None:
        x = (data["epoch"] - 1) + data["batch"] / max(data["batches"], 1)
        loss = float(data["loss"])
        if np.isfinite(loss):  # the engine reads the loss back every few batches only (NaN before the first)
            self.step_loss.append(x, loss, draw=False)
            self._fit_loss(loss)
        lr = float(data["lr"])
        self.lr.append(x, lr, draw=False)
        epochs = data.get("epochs")
        if epochs and epochs != self._x_end:  # the whole run: the x axes stay as they are
            self._x_end = epochs
            for plot in (self.loss_plot, self.lr_plot, self.metric_plot):  # the metrics' x: epochs 1..N
                self._want_range(plot, "x", 0.0, float(epochs), X_PADDING)
        if np.isfinite(lr) and lr > self._lr_top:  # the lr axis changes a few times a run
            self._lr_top = 1.25 * lr if lr > 0 else 1.0
            self._want_range(self.lr_plot, "y", 0.0, self._lr_top)
        self._schedule_draw()

    def _fit_loss(self, value: float) -> None:
        """During a run the loss axis spans 0 (or the lowest loss, if negative) to 1.25 x the
        highest loss, and changes only when a loss falls outside it: auto-range moved it at
        every new lowest loss, and an axis whose range moves is laid out and repainted again
        (10-30 ms of the GUI thread each time, the largest part of the stalls left while a
        run trains)."""
        span = self._loss_span
        if span is not None and span[0] <= value <= span[1]:
            return
        low = min(0.0, value if span is None else min(span[0], 1.25 * value))
        high = max(value, 1e-6) * 1.25 if span is None else max(span[1], 1.25 * value)
        self._loss_span = (low, high)
        self._want_range(self.loss_plot, "y", low, high)

    def _want_range(self, plot: pg.PlotWidget, axis: str, low: float, high: float, padding: float = 0.0) -> None:
        self._ranges.setdefault(plot, {})[axis] = (low, high, padding)
        self._schedule_draw()

    def _apply_ranges(self, plot: pg.PlotWidget) -> None:
        for axis, (low, high, padding) in self._ranges.pop(plot, {}).items():
            if axis == "x":
                plot.setXRange(low, high, padding=padding)
            else:
                plot.setYRange(low, high, padding=padding)

    def _schedule_draw(self) -> None:
        if not self._batch_timer.isActive():
            self._batch_timer.start()

    def _draw_next(self) -> None:
        """Draw the new points of one plot (the next one with any, in turn): a plot whose
        axes change costs the GUI thread 10-30 ms to repaint, so one plot per event-loop turn,
        a few times a second, however fast batches arrive."""
        groups = self._groups
        for step in range(1, len(groups) + 1):
            plot, series = groups[(self._drawn + step) % len(groups)]
            if plot in self._ranges or any(s.dirty for s in series):
                self._apply_ranges(plot)
                for s in series:
                    s.draw()
                self._drawn = (self._drawn + step) % len(groups)
                break
        if self._ranges or any(s.dirty for _p, series in groups for s in series):
            self._batch_timer.start()

    def draw_now(self) -> None:
        """Draw every pending point at once (tests, screenshots)."""
        self._batch_timer.stop()
        for plot, series in self._groups:
            self._apply_ranges(plot)
            for s in series:
                s.draw()

    def add_epoch(self, record: dict[str, Any]) -> None:
        epoch = float(record["epoch"])
        self.train_loss.append(epoch, float(record["train"]["loss"]), draw=False)
        val = record.get("val", {})
        if "loss" in val:
            self.val_loss.append(epoch, float(val["loss"]), draw=False)
        if self._loss_span is not None:  # a live run (a history keeps auto range)
            for value in (record["train"]["loss"], val.get("loss")):
                if value is not None and np.isfinite(float(value)):
                    self._fit_loss(float(value))
        for key, series in self.metrics.items():
            if key in val:
                series.append(epoch, 100 * float(val[key]), draw=False)
        self._schedule_draw()

    def show_history(self, history: list[dict[str, Any]]) -> None:
        self.clear()
        for record in history:
            self.add_epoch(record)

    def overlay(self, runs: list[tuple[str, list[dict[str, Any]]]], key: str = "miou") -> None:
        """Overlay one validation metric of several runs (run comparison)."""
        self.clear()
        colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]
        for i, (name, history) in enumerate(runs):
            xs = [float(r["epoch"]) for r in history if key in r.get("val", {})]
            ys = [100 * float(r["val"][key]) for r in history if key in r.get("val", {})]
            curve = self.metric_plot.plot(xs, ys, name=f"{name} {key}", **_style(colours[i % len(colours)], 4))
            self.compare_curves.append(curve)


class ConfusionTable(QTableWidget):
    """The last epoch's validation confusion counts as a 2x2 table (rows: truth, columns:
    prediction), each cell with its share of all valid pixels: shows *how* a model errs
    (missed scars vs false alarms), which the averaged metrics hide."""

    CELLS = (("TN", 0, 0), ("FP", 0, 1), ("FN", 1, 0), ("TP", 1, 1))

    def __init__(self, parent: QWidget | None = None):
        super().__init__(2, 2, parent)
        self.setHorizontalHeaderLabels(["pred. background", "pred. landslide"])
        self.setVerticalHeaderLabels(["true background", "true landslide"])
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.setToolTip("Validation pixels of the last epoch")
        self.setMaximumHeight(110)
        self.counts: list[list[int]] | None = None
        self.clear_counts()

    def clear_counts(self) -> None:
        self.counts = None
        for name, r, c in self.CELLS:
            self._set(r, c, f"{name} -")

    def set_counts(self, confusion: list[list[int]] | None) -> None:
        """``confusion`` is [[TN, FP], [FN, TP]] (pixels), as the training engine stores it."""
        if not confusion or len(confusion) < 2 or len(confusion[0]) < 2:
            self.clear_counts()
            return
        self.counts = [[int(confusion[r][c]) for c in range(2)] for r in range(2)]
        total = max(sum(map(sum, self.counts)), 1)
        for name, r, c in self.CELLS:
            n = self.counts[r][c]
            self._set(r, c, f"{name} {n:,} ({100 * n / total:.1f} %)")

    def _set(self, r: int, c: int, text: str) -> None:
        item = QTableWidgetItem(text)
        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
        if r == c:
            item.setForeground(QColor("#2ca02c") if r else QColor("#333333"))
        else:
            item.setForeground(QColor("#d62728"))
        self.setItem(r, c, item)
