"""QC panel: compute metrics in a worker, move thresholds and watch the counts, manage
presets, open the review queue. All counting is :mod:`casdesk.core.qc.rules` on arrays already
in memory; this module only wires widgets to it."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from casdesk.core.errors import CasdeskError
from casdesk.core.project.catalog import Catalog
from casdesk.core.project.events import QCRulesChanged
from casdesk.core.qc import rules as qc
from casdesk.gui.browser.loader import LatestCall
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.kit.workers import JobRunner
from casdesk.gui.qc.counts_view import CountsView
from casdesk.gui.qc.review import ReviewDialog
from casdesk.gui.qc.rule_editor import RuleEditor
from casdesk.gui.qc.scanning import QCScanning
from casdesk.gui.shell.context import ProjectContext

log = logging.getLogger(__name__)

HISTOGRAM_EVERY_MS = 1000
"""While a scan runs, the histograms are redrawn at most this often (the counts follow every
batch of tiles)."""



def load_table_for(path: Any) -> tuple[qc.QCTable, list[qc.Rule]]:
    """Worker side: the QC table and the working rules, on the worker's own connection. The
    table is a copy of the process's shared one (the panel updates it in place during a
    scan; the browser and the map count with the same loaded table)."""
    catalog = Catalog.open(path, readonly=True)
    try:
        return qc.shared_table(catalog).copy(), qc.current_rules(catalog)
    finally:
        catalog.close()


class QCPanel(QCScanning, QWidget):
    loaded = Signal()
    """The QC table arrived (project opened, tiles or metrics changed)."""

    def __init__(self, context: ProjectContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.table: qc.QCTable | None = None
        self.rules: list[qc.Rule] = qc.paper_defaults()
        self.states = np.zeros(0, np.int8)
        self.failed = np.zeros(0, np.uint32)
        self.counts: dict[str, Any] = {}
        self.runner: JobRunner | None = None
        self.review: ReviewDialog | None = None
        self._own_decision = False
        self._loaded_path: Any = None
        self.stale_runner: JobRunner | None = None
        self._stale_pending: set[int] = set()
        # the working rules are the project's current rules: persisted (debounced) and
        # announced to every view (browser, map, export, training, CLI read them)
        self.persist_timer = QTimer(self)
        self.persist_timer.setSingleShot(True)
        self.persist_timer.setInterval(300)
        self.persist_timer.timeout.connect(self.persist_rules)
        self.stale_timer = QTimer(self)
        self.stale_timer.setSingleShot(True)
        self.stale_timer.setInterval(500)
        self.stale_timer.timeout.connect(self.recompute_stale)
        self._histogram_keys: dict[str, tuple[int, int, int, float]] = {}  # what each histogram shows
        self.histogram_timer = QTimer(self)  # histograms follow a scan at most once a second
        self.histogram_timer.setSingleShot(True)
        self.histogram_timer.setInterval(HISTOGRAM_EVERY_MS)
        self.histogram_timer.timeout.connect(self._update_histograms)
        self._rules_pending = False
        self._load_seq = self._loaded_seq = 0
        self._load_call = LatestCall(self)
        self._load_call.finished.connect(self._on_loaded)
        self._load_call.failed.connect(self._on_load_failed)

        self.heading = QLabel("No project open.")
        self.compute_button = QPushButton("Compute metrics")
        self.compute_button.clicked.connect(self.compute)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("%v / %m tiles")
        self.progress.hide()
        self.preset_box = QComboBox()
        self.preset_box.setMinimumWidth(160)
        self.preset_box.activated.connect(lambda i: self.apply_preset(self.preset_box.itemData(i) or ""))
        self.preset_box.setToolTip(
            "The rules every view uses (browser, export, training, CLI). '(modified)': the sliders"
            " differ from the saved preset; 'Save preset...' names them."
        )
        self.save_button = QPushButton("Save preset...")
        self.save_button.clicked.connect(lambda: self.save_preset())
        self.review_button = QPushButton("Review flagged...")
        self.review_button.setToolTip("Tiles within a rule's margin of its threshold: a person decides")
        self.review_button.clicked.connect(lambda: self.open_review("flagged"))
        self.review_rejected_button = QPushButton("Review rejected...")
        self.review_rejected_button.setToolTip("Tiles the rules reject, with the rule and by how much")
        self.review_rejected_button.clicked.connect(lambda: self.open_review("rejected"))
        self.suspects_button = QPushButton("Review suspect labels...")
        self.suspects_button.setToolTip(
            "Tiles where a confident model disagrees with the label (casdesk suspects), worst first"
        )
        self.suspects_button.clicked.connect(self.open_suspects)

        top = QHBoxLayout()
        top.addWidget(self.compute_button)
        top.addWidget(self.cancel_button)
        top.addWidget(self.progress, 1)
        top.addStretch(0)
        top.addWidget(QLabel("Preset:"))
        top.addWidget(self.preset_box)
        top.addWidget(self.save_button)

        self.editors: dict[str, RuleEditor] = {}
        self.rules_box = QWidget()
        self.rules_layout = QVBoxLayout(self.rules_box)
        self.rules_layout.setContentsMargins(6, 6, 6, 6)
        scroll = self.rules_scroll = QScrollArea()  # not self.scroll: QWidget.scroll() is a method
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.rules_box)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.counts_view = CountsView()
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(QLabel("<b>Tiles per state</b> (updates as you move a threshold)"))
        rl.addWidget(self.counts_view, 1)
        legend = QLabel(
            "Flagged: within a rule's margin of its threshold; review them. Kept = accepted + "
            "manual accept: with these thresholds, what the browser, export and training use."
        )
        legend.setWordWrap(True)
        legend.setStyleSheet("color: gray")
        rl.addWidget(legend)
        review_row = QHBoxLayout()
        review_row.addWidget(self.review_button)
        review_row.addWidget(self.review_rejected_button)
        review_row.addWidget(self.suspects_button)
        review_row.addStretch(1)
        rl.addLayout(review_row)

        split = QSplitter()
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)

        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addLayout(top)
        layout.addWidget(split, 1)

        context.project_opened.connect(lambda _p: self.reload())
        context.project_closed.connect(self.reload)
        context.tiles_changed.connect(self._on_tiles_changed)
        context.metrics_changed.connect(self._on_metrics_changed)
        context.decisions_changed.connect(self._on_decisions_changed)
        events = getattr(context, "events", None)
        if events is not None:
            events.masks_changed.connect(self.on_masks_changed)
            events.tiles_added.connect(lambda _c: self._on_tiles_changed())
            events.tiles_removed.connect(lambda _c: self._on_tiles_changed())
            events.qc_rules_changed.connect(self._on_rules_announced)
        self.reload()

    # ---- loading
    def reload(self) -> None:
        """Load the project's QC table and its working rules (project opened or closed), in
        a worker: the window stays responsive while 20,000 tiles' metrics are read."""
        if self.persist_timer.isActive() and self.context.catalog is not None:
            if self.context.catalog.path == self._loaded_path:
                self.persist_rules()
        self.persist_timer.stop()
        catalog = self.context.catalog
        self._set_enabled(catalog is not None)
        if catalog is None:
            self._load_call.cancel()
            self._end_loading()
            self._loaded_seq = self._load_seq
            self.table = None
            self._loaded_path = None
            self.heading.setText("No project open.")
            self._build_editors(qc.paper_defaults())
            self.counts_view.setRowCount(0)
            return
        self._loaded_path = catalog.path
        self.table = None
        self.heading.setText("Loading QC metrics...")
        self._rules_pending = True
        self._load()

    def _load(self) -> None:
        catalog = self.context.catalog
        if catalog is None:
            return
        path = catalog.path
        self._load_seq += 1
        self._load_call.submit(lambda: load_table_for(path))
        if not self._computing():  # a busy bar while the table is read (the compute bar wins)
            self.progress.setRange(0, 0)
            self.progress.setFormat("loading QC table...")
            self.progress.show()

    def _computing(self) -> bool:
        return self.runner is not None and self.runner.is_running()

    def _end_loading(self) -> None:
        if not self._computing():
            self.progress.hide()
            self.progress.setFormat("%v / %m tiles")

    def _on_load_failed(self, msg: str) -> None:
        self._end_loading()
        self.heading.setText(f"Cannot load QC metrics: {msg}")

    def _on_loaded(self, result: Any) -> None:
        self._loaded_seq = self._load_seq
        self._end_loading()
        table, rules = result
        catalog = self.context.catalog
        if catalog is None or catalog.path != self._loaded_path:
            return
        self.table = table
        if self._rules_pending:  # a project was opened: its working rules
            self._rules_pending = False
            self._build_editors(rules)
            self._refresh_presets()
        else:  # tiles or metrics changed: keep the user's rules, new histograms
            self._update_histograms()
        self.recount()
        self.loaded.emit()
        if self.table.stale.any():
            self.mark_stale([int(t) for t in self.table.tile_ids[self.table.stale]])

    def wait_loaded(self, timeout_ms: int = 30_000) -> bool:
        """Block (processing events) until the table is loaded (tests, scripts)."""
        from PySide6.QtCore import QDeadlineTimer, QEventLoop
        from PySide6.QtWidgets import QApplication

        deadline = QDeadlineTimer(timeout_ms)
        while self._loaded_seq != self._load_seq and not deadline.hasExpired():
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        return self.table is not None

    def _on_tiles_changed(self) -> None:
        """Tiles were added, removed or edited: reload the table, keep the rules (a label
        edit never resets the user's thresholds)."""
        catalog = self.context.catalog
        if catalog is None or catalog.path != self._loaded_path:
            self.reload()
            return
        self._load()

    def _refresh_presets(self) -> None:
        """The preset box: saved presets, the active one marked "(modified)" when the
        working rules differ from it."""
        catalog = self.context.catalog
        if catalog is None:
            return
        name, modified = qc.preset_state(catalog, self.rules)
        self._preset_rules = [r.to_dict() for r in qc.load_preset(catalog, name)]
        self.preset_box.blockSignals(True)
        self.preset_box.clear()
        for preset in qc.list_presets(catalog):
            label = f"{preset} (modified)" if preset == name and modified else preset
            self.preset_box.addItem(label, preset)
        self.preset_box.setCurrentIndex(max(0, self.preset_box.findData(name)))
        self.preset_box.blockSignals(False)
        self.modified = modified

    def _mark_modified(self) -> None:
        """Update the active preset's "(modified)" mark as a slider moves (no database)."""
        i = self.preset_box.currentIndex()
        name = self.preset_box.itemData(i)
        if i < 0 or not name:
            return
        self.modified = [r.to_dict() for r in self.rules] != getattr(self, "_preset_rules", None)
        self.preset_box.setItemText(i, f"{name} (modified)" if self.modified else name)

    def _set_enabled(self, on: bool) -> None:
        for w in (
            self.compute_button, self.preset_box, self.save_button, self.review_button,
            self.review_rejected_button,
        ):
            w.setEnabled(on)

    def _build_editors(self, rules: list[qc.Rule]) -> None:
        self.rules = list(rules)
        if [e.rule.metric for e in self.editors.values()] == [r.metric for r in rules]:
            for rule in rules:
                self.editors[rule.metric].set_rule(rule)
        else:
            for e in self.editors.values():
                e.setParent(None)
                e.deleteLater()
            self.editors = {}
            while self.rules_layout.count():
                self.rules_layout.takeAt(0)
            for rule in rules:
                ed = RuleEditor(rule)
                ed.changed.connect(self._on_rule_changed)
                self.editors[rule.metric] = ed
                self.rules_layout.addWidget(ed)
            self.rules_layout.addStretch(1)
            bar = self.rules_scroll.verticalScrollBar().sizeHint().width()
            self.rules_scroll.setMinimumWidth(self.rules_box.minimumSizeHint().width() + bar + 4)
        self._update_histograms()

    def _update_histograms(self) -> None:
        """Redraw the histograms whose values changed (during a scan's seam pass only the
        seam's; the check costs ~0.1 ms per 20,000 tiles, a redraw several)."""
        for metric, ed in self.editors.items():
            values = self.table.metrics.get(metric) if self.table is not None else None
            if values is None:
                values = np.zeros(0)
            finite = np.isfinite(values)
            key = (id(self.table), values.size, int(np.count_nonzero(finite)), float(values[finite].sum()))
            if self._histogram_keys.get(metric) != key:
                self._histogram_keys[metric] = key
                ed.set_values(values)

    # ---- counting
    def recount(self) -> None:
        """Evaluate the rules on the in-memory table and show the counts (about 1 ms)."""
        if self.table is None:
            return
        self.states, self.failed = qc.evaluate(self.table, self.rules)
        self.counts = qc.count_states(self.table, self.states)
        self.counts_view.set_counts(self.counts)
        total = self.counts["total"]
        stale = int(self.table.stale.sum())
        self.heading.setText(
            f"{total['tiles']} tiles: {total['kept']} kept, {total['rejected'] + total['manual_reject']} "
            f"rejected, {total['flagged']} flagged, {self._pending_text(total['pending'])}"
            + (f", {stale} with metrics stale (recomputing)" if stale else "")
        )
        for bit, rule in enumerate(self.rules):
            ed = self.editors.get(rule.metric)
            if ed is not None:
                n = int(np.count_nonzero(self.failed & np.uint32(1 << bit)))
                ed.set_summary(f"{n} beyond")

    def _pending_text(self, pending: int) -> str:
        """"N without metrics", or which metric the pending tiles wait for when they have
        the others (the seam pass of a scan, a detector's new version): "3200 pending:
        seam_score not measured yet"."""
        table = self.table
        if not pending or table is None or table.measured is None:
            return f"{pending} without metrics"
        waiting = (self.states == qc.PENDING) & table.computed
        missing = [
            r.metric for r in self.rules
            if r.enabled and r.metric in table.measured and (waiting & ~table.measured[r.metric]).any()
        ]
        if not waiting.any() or not missing:
            return f"{pending} without metrics"
        n_waiting = int(np.count_nonzero(waiting))
        text = f"{n_waiting} pending: {', '.join(dict.fromkeys(missing))} not measured yet"
        return text if n_waiting == pending else f"{pending - n_waiting} without metrics, {text}"

    def snapshot(self) -> tuple[qc.QCTable, np.ndarray, np.ndarray, list[qc.Rule]]:
        assert self.table is not None
        return self.table, self.states, self.failed, self.rules

    def state_of(self, tile_id: int) -> str:
        assert self.table is not None
        return qc.STATE_NAMES[int(self.states[self.table.rows([tile_id])[0]])]

    def _on_rule_changed(self, rule: qc.Rule) -> None:
        self.rules = [rule if r.metric == rule.metric else r for r in self.rules]
        self.recount()
        self._mark_modified()
        self.persist_timer.start()  # debounced: one write and one announcement per pause

    def persist_rules(self) -> None:
        """Store the working rules in the project and tell every view (the browser's badges
        and filters, the map, export and training read them)."""
        self.persist_timer.stop()
        catalog = self.context.catalog
        if catalog is None:
            return
        if not catalog.readonly:
            try:
                qc.set_current_rules(catalog, self.rules)
            except CasdeskError as exc:
                log.warning("QC rules not saved: %s", exc)
                return
        self._refresh_presets()
        events = getattr(self.context, "events", None)
        if events is not None:
            self._announcing = True
            try:
                events.announce(QCRulesChanged())
            finally:
                self._announcing = False

    def _on_rules_announced(self, _change: Any) -> None:
        """Another view (or another window's panel) changed the rules: follow them."""
        if getattr(self, "_announcing", False) or self.context.catalog is None:
            return
        rules = qc.current_rules(self.context.catalog)
        if [r.to_dict() for r in rules] != [r.to_dict() for r in self.rules]:
            self._build_editors(rules)
            self.recount()
        self._refresh_presets()

    def set_threshold(self, metric: str, value: float) -> None:
        """Move a rule's threshold as the slider would (also used by scripts and tests)."""
        self.editors[metric].set_threshold(value)

    # ---- presets
    def apply_preset(self, name: str) -> None:
        """Make a saved preset the working rules (persisted and announced at once)."""
        catalog = self.context.catalog
        if catalog is None or not name:
            return
        try:
            rules = qc.load_preset(catalog, name)
            if not catalog.readonly:
                qc.set_active_preset(catalog, name)
        except CasdeskError as exc:
            show_error(self, "Cannot load preset", str(exc))
            return
        self._build_editors(rules)
        self.recount()
        self.persist_rules()

    def save_preset(self, name: str | None = None) -> None:
        """Name the working rules: they become a saved preset (nothing else changes)."""
        catalog = self.context.catalog
        if catalog is None:
            return
        if name is None:
            name, ok = QInputDialog.getText(self, "Save preset", "Preset name:")
            if not ok or not name.strip():
                return
        self.persist_timer.stop()
        try:
            qc.save_preset(catalog, name, self.rules)
        except CasdeskError as exc:
            show_error(self, "Cannot save preset", str(exc))
            return
        self._refresh_presets()

    # ---- decisions
    def decide(self, tile_ids: list[int], decision: str, note: str | None = None) -> None:
        catalog = self.context.catalog
        if catalog is None or self.table is None:
            return
        try:
            qc.set_decision(catalog, tile_ids, decision, note=note)
        except CasdeskError as exc:
            show_error(self, "Cannot record the decision", str(exc))
            return
        qc.update_decisions(catalog, self.table, tile_ids)
        self.recount()
        self._own_decision = True
        try:
            self.context.decisions_changed.emit(list(tile_ids))
        finally:
            self._own_decision = False

    def _on_decisions_changed(self, tile_ids: Any) -> None:
        if self._own_decision or self.table is None or self.context.catalog is None:
            return
        qc.update_decisions(self.context.catalog, self.table, tile_ids or [])
        self.recount()

    def review_queue(self, which: str = "flagged") -> list[int]:
        """Tiles for the manual step: ``"flagged"`` (within a margin: the paper's manual
        inspection) or ``"rejected"`` (rule decisions only, manual decisions excluded)."""
        if self.table is None:
            return []
        state = {"flagged": qc.FLAGGED, "rejected": qc.REJECTED}[which]
        return [int(t) for t in self.table.tile_ids[self.states == state]]

    def open_review(self, which: str = "flagged") -> ReviewDialog | None:
        if self.table is None:
            return None
        if self.review is not None:
            self.review.close()
        self.review = ReviewDialog(self, self.review_queue(which), self.decide, self)
        self.review.setWindowTitle(f"Review {which} tiles")
        self.review.resize(900, 620)
        self.review.show()
        return self.review

    def open_suspects(self) -> ReviewDialog | None:
        """The label-error finder's ranking as a review queue, disagreement highlighted."""
        from casdesk.core.qc.suspects import stored_suspects, suspect_queue

        catalog = self.context.catalog
        if self.table is None or catalog is None:
            return None
        queue = suspect_queue(catalog)
        ranked: dict[int, Any] = {}
        for suspect in stored_suspects(catalog):
            ranked.setdefault(suspect.tile_id, suspect)
        if self.review is not None:
            self.review.close()
        self.review = ReviewDialog(self, queue, self.decide, self, suspects=ranked)
        self.review.setWindowTitle("Review suspect labels")
        self.review.resize(900, 620)
        self.review.show()
        return self.review

    def shutdown(self) -> None:
        if self.persist_timer.isActive():
            self.persist_rules()  # a slider moved just before closing: keep it
        self._load_call.shutdown()
        if self.stale_runner is not None:
            self.stale_runner.shutdown()
        if self.runner is not None:
            self.runner.shutdown()
        if self.review is not None:
            self.review.close()
            self.review.shutdown()
