"""Review queue: flagged and rejected tiles one at a time, image with the landslide mask
overlaid, metric values and failing rules; where the seam rule fails or is near, the line
the seam detector found is drawn (computed in a worker: ~35 ms a tile). Keys: A accept, R reject, Left/Right previous/
next, N note, Ctrl+Z undo the last decision. Decisions go through the panel, which writes
them to the catalog and tells the other panels."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QImage, QKeySequence, QPainter, QPen, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from casdesk.core.errors import CasdeskError
from casdesk.core.qc.detectors import TileData, load_tile
from casdesk.core.qc.rules import METRICS, STATE_NAMES, Rule, failure_details
from casdesk.core.qc.seam import SeamFinding, seam_finding
from casdesk.core.qc.stretch import limits_for
from casdesk.gui.browser.loader import LatestCall

SEAM_COLOUR = QColor(255, 0, 255)
"""The found seam line (magenta: apart from the red label and blue fill)."""


def overlay(
    rgb: np.ndarray, mask: np.ndarray | None, fill: np.ndarray | None, region: np.ndarray | None = None
) -> np.ndarray:
    """RGB with landslide pixels tinted red, fill blue and a suspect region yellow."""
    out = rgb.astype(np.float32)
    if mask is not None:
        m = mask.astype(bool)
        out[m] = out[m] * 0.55 + np.array([255, 0, 0]) * 0.45
    if fill is not None and fill.any():
        out[fill] = out[fill] * 0.5 + np.array([0, 90, 255]) * 0.5
    if region is not None and region.shape == out.shape[:2] and region.any():
        r = region.astype(bool)
        out[r] = out[r] * 0.4 + np.array([255, 230, 0]) * 0.6
    return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))


def _read_region(catalog: Any, suspect: Any) -> np.ndarray | None:
    """The disagreement mask the label-error finder stored for a tile, if any."""
    path = catalog.resolve(suspect.attributes.get("region_path")) if suspect is not None else None
    if path is None or not path.exists():
        return None
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read(1) > 0


class ReviewDialog(QDialog):
    """Non-modal; ``decide(tile_ids, decision, note)`` is the panel's callback."""

    def __init__(
        self,
        panel: Any,
        tile_ids: Sequence[int],
        decide: Callable[[list[int], str, str | None], None],
        parent: QWidget | None = None,
        suspects: dict[int, Any] | None = None,
    ) -> None:
        super().__init__(parent)
        self.suspects = suspects or {}
        self.setWindowTitle("Review flagged tiles")
        self.panel = panel
        self.queue = [int(t) for t in tile_ids]
        self.index = 0
        self._decide = decide
        self.undo_stack: list[tuple[int, str, str | None]] = []
        self._limits: dict[int, np.ndarray | None] = {}
        """Scene id -> the display stretch QC measured its tiles with (None: 8-bit or unreadable)."""
        self.seam: tuple[int, SeamFinding] | None = None
        """The seam finding shown (tile id, finding); None while none is (being) found."""
        self._seam_call = LatestCall(self)
        self._seam_call.finished.connect(self._on_seam)
        self._shown: tuple[int, QPixmap, tuple[int, int], list[str]] | None = None
        self.image = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(512, 512)
        self.info = QLabel()
        self.info.setTextFormat(Qt.TextFormat.RichText)
        self.info.setWordWrap(True)
        self.info.setMinimumWidth(280)
        self.info.setAlignment(Qt.AlignmentFlag.AlignTop)
        buttons = QHBoxLayout()
        for text, slot in (
            ("< Previous", self.previous),
            ("Accept (A)", self.accept_tile),
            ("Reject (R)", self.reject_tile),
            ("Note (N)", self.note),
            ("Undo (Ctrl+Z)", self.undo),
            ("Next >", self.next),
        ):
            b = QPushButton(text)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        side = QVBoxLayout()
        side.addWidget(self.info, 1)
        top = QHBoxLayout()
        top.addWidget(self.image, 1)
        top.addLayout(side)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(buttons)
        for key, slot in (
            ("A", self.accept_tile),
            ("R", self.reject_tile),
            ("N", self.note),
            (QKeySequence.StandardKey.Undo, self.undo),
            ("Right", self.next),
            ("Left", self.previous),
        ):
            QShortcut(QKeySequence(key), self).activated.connect(slot)
        self.show_current()

    @property
    def current(self) -> int | None:
        return self.queue[self.index] if 0 <= self.index < len(self.queue) else None

    def show_current(self) -> None:
        tid = self.current
        self.seam = None
        self._shown = None
        self._seam_call.cancel()
        if tid is None:
            self.image.setPixmap(QPixmap())
            self.info.setText(
                "No suspect labels: predict the project's tiles and run `casdesk suspects` first."
                if self.suspects or self.windowTitle().startswith("Review suspect")
                else "Nothing to review: no flagged or rejected tiles."
            )
            return
        table, states, failed, rules = self.panel.snapshot()
        row = int(table.rows([tid])[0])
        catalog = self.panel.context.catalog
        tile = catalog.tile(tid)
        data: TileData | None = None
        pix: QPixmap | None = None
        try:
            limits = None
            if tile.scene_id is not None:
                if tile.scene_id not in self._limits:  # sampled once per scene (16-bit scenes only)
                    self._limits[tile.scene_id] = limits_for(catalog, [tile]).get(tile.scene_id)
                limits = self._limits[tile.scene_id]
            data = load_tile(tile.image_path, tile.mask_path, tile.sensor, display_limits=limits)
            rgb = overlay(data.rgb, data.mask, data.fill, _read_region(catalog, self.suspects.get(tid)))
            h, w, _ = rgb.shape
            qimg = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            pix = QPixmap.fromImage(qimg).scaled(
                512, 512, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
            self.image.setPixmap(pix)
        except CasdeskError as exc:
            self.image.setText(str(exc))
        lines = [
            f"<b>{tile.subdataset} / {tile.name}</b> ({self.index + 1} of {len(self.queue)})",
            f"State: <b>{STATE_NAMES[int(states[row])]}</b>",
        ]
        suspect = self.suspects.get(tid)
        if suspect is not None:
            lines.append(
                f"Suspect label: <b>{suspect.kind.replace('_', ' ')}</b>, score {suspect.score:.2f} "
                f"(model {suspect.model}); yellow: where model and label disagree"
            )
        fails = failure_details(table, failed, rules, row)
        lines.append("Failing rules: " + (", ".join(fails) if fails else "none"))
        if table.stale[row]:
            lines.append("Metrics stale: the tile changed after they were computed (recomputing)")
        near = near_rules(table, row, rules)
        if near:
            lines.append("Near a threshold: " + ", ".join(near))
        lines.append("<br>".join(f"{METRICS[m].label}: {_fmt(v[row])}" for m, v in table.metrics.items() if m in METRICS))
        note = table.notes.get(tid)
        if note:
            lines.append(f"Note: <i>{note}</i>")
        lines.append("<span style='color:gray'>red: landslide label, blue: fill</span>")
        self.info.setText("<br><br>".join(lines))
        if data is not None and pix is not None and self._seam_in_question(table, rules, row):
            self._shown = (tid, pix, data.shape, lines)
            found = data
            self._seam_call.submit(lambda: (tid, seam_finding(found)))

    @staticmethod
    def _seam_in_question(table: Any, rules: Sequence[Rule], row: int) -> bool:
        """Whether the tile's seam score fails the seam rule or lies within its margin."""
        values = table.metrics.get("seam_score")
        rule = next((r for r in rules if r.metric == "seam_score" and r.enabled), None)
        if values is None or rule is None or not math.isfinite(values[row]):
            return False
        thr = rule.threshold_for(table.subdataset_names[int(table.subdataset_codes[row])])
        return thr is not None and values[row] >= thr - rule.margin

    def _on_seam(self, result: tuple[int, SeamFinding]) -> None:
        """Draw the seam line the detector found (a step) or name the repeat it saw."""
        tid, found = result
        if self._shown is None or self._shown[0] != tid or tid != self.current:
            return
        self.seam = result
        _, base, (rows, cols), lines = self._shown
        if found.kind == "step":
            pix = base.copy()
            draw_seam_line(pix, found, rows, cols)
            self.image.setPixmap(pix)
            text = (f"<span style='color:#c000c0'>magenta: the seam line found, a step of "
                    f"{found.score:.1f} DN along it</span>")
        elif found.kind == "repeat":
            text = (f"Seam: a band repeats the content {found.lag:.0f} px away "
                    f"(direction {found.angle:.0f}\u00b0): a displaced scene of a mosaic")
        else:
            return
        self.info.setText("<br><br>".join([*lines, text]))

    def shutdown(self) -> None:
        """Wait for the seam worker (the panel calls it when it shuts down)."""
        self._seam_call.shutdown()

    def done(self, result: int) -> None:  # closing: no worker result arrives afterwards
        self._seam_call.cancel()
        super().done(result)

    # ---- navigation
    def next(self) -> None:
        if self.index < len(self.queue) - 1:
            self.index += 1
            self.show_current()

    def previous(self) -> None:
        if self.index > 0:
            self.index -= 1
            self.show_current()

    # ---- decisions
    def _previous_decision(self, tid: int) -> tuple[str, str | None]:
        table = self.panel.table
        manual = int(table.manual[table.rows([tid])[0]])
        return {1: "accept", -1: "reject"}.get(manual, "clear"), table.notes.get(tid)

    def _record(self, decision: str, note: str | None = None, advance: bool = True) -> None:
        tid = self.current
        if tid is None:
            return
        before, before_note = self._previous_decision(tid)
        self.undo_stack.append((tid, before, before_note))
        self._decide([tid], decision, note)
        if advance and self.index < len(self.queue) - 1:
            self.index += 1
        self.show_current()

    def accept_tile(self) -> None:
        self._record("accept")

    def reject_tile(self) -> None:
        self._record("reject")

    def note(self, text: str | None = None) -> None:
        """Attach a note to the current tile's decision (asks for one without a decision)."""
        tid = self.current
        if tid is None:
            return
        decision, _ = self._previous_decision(tid)
        if text is None:
            text, ok = QInputDialog.getText(self, "Note", "Note for this tile:")
            if not ok:
                return
        if decision == "clear":
            decision = "reject" if self.panel.state_of(tid) in ("rejected",) else "accept"
        self._record(decision, text, advance=False)

    def undo(self) -> None:
        if not self.undo_stack:
            return
        tid, decision, note = self.undo_stack.pop()
        self._decide([tid], decision, note)
        if tid in self.queue:
            self.index = self.queue.index(tid)
        self.show_current()


def draw_seam_line(pix: QPixmap, found: SeamFinding, rows: int, cols: int) -> None:
    """Paint the found seam line (dashed magenta) on ``pix``, a scaled copy of a rows x cols
    tile: the line whose normal points at ``found.angle`` (x right, y down), ``found.offset``
    x the shorter side from the tile's centre."""
    scale = pix.width() / max(cols, 1)
    theta = math.radians(found.angle)
    nx, ny = math.cos(theta), math.sin(theta)
    side = min(rows, cols)
    cx = (cols - 1) / 2 + found.offset * side * nx
    cy = (rows - 1) / 2 + found.offset * side * ny
    reach = 2.0 * max(rows, cols)
    a = QPointF((cx - ny * reach) * scale, (cy + nx * reach) * scale)
    b = QPointF((cx + ny * reach) * scale, (cy - nx * reach) * scale)
    painter = QPainter(pix)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(SEAM_COLOUR, 2.0, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawLine(a, b)
    finally:
        painter.end()


def near_rules(table: Any, row: int, rules: Sequence[Rule]) -> list[str]:
    """Rules whose threshold this tile's value lies within the margin of (why it is flagged)."""
    sub = table.subdataset_names[int(table.subdataset_codes[row])]
    out = []
    for rule in rules:
        values = table.metrics.get(rule.metric)
        thr = rule.threshold_for(sub)
        if values is None or thr is None or rule.margin <= 0:
            continue
        if abs(values[row] - thr) <= rule.margin:
            out.append(f"{rule.describe(sub)} (value {values[row]:.4g}, margin {rule.margin:g})")
    return out


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.4g}"
