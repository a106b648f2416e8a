"""The Label tab: pick a scene or tile, edit its polygons on the canvas.

Every edit autosaves to the catalog (one transaction); masks of the tiles an edit touches
are regenerated in a worker shortly after (edits in quick succession are batched).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRectF,
    QSettings,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from casdesk.core.errors import CasdeskError
from casdesk.core.labels.store import (
    EditTarget,
    LabelStore,
    regenerate_masks,
    scene_target,
    tile_target,
)
from casdesk.gui.editor.canvas import EditorCanvas
from casdesk.gui.editor.commands import Rename
from casdesk.gui.editor.document import EditorDocument
from casdesk.gui.editor.imagery import ImageLayer
from casdesk.gui.editor.items import label_colour
from casdesk.gui.editor.label_dialog import (
    DEFAULT_LABEL,
    LabelDialog,
    colour_icon,
    label_history,
    remember_label,
)
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.kit.workers import JobRunner
from casdesk.gui.shell.context import ProjectContext

log = logging.getLogger(__name__)
REGEN_DELAY_MS = 300

MODE_ACTIONS = [
    ("polygon", "Polygon", "Ctrl+N"),
    ("rectangle", "Rectangle", "Ctrl+R"),
    ("edit", "Edit", "Ctrl+J"),
    ("brush", "Brush", "B"),
    ("eraser", "Eraser", "X"),
    ("cut", "Cut hole", "H"),
    ("grabcut", "GrabCut box", "G"),
    ("wand", "Magic wand", "M"),
]


@dataclass(frozen=True)
class TargetRow:
    kind: str  # "scene" | "tile"
    id: int
    text: str
    tooltip: str = ""


class TargetModel(QAbstractListModel):
    """Scenes then tiles of the project (thin adapter; thousands of rows are fine)."""

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.rows: list[TargetRow] = []

    def reset(self, rows: list[TargetRow]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return row.text
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.tooltip or row.text
        if role == Qt.ItemDataRole.UserRole:
            return row
        return None


class EditorPanel(QWidget):
    def __init__(self, context: ProjectContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.settings = QSettings("casdesk", "casdesk")
        self.target: EditTarget | None = None
        self.canvas = EditorCanvas(self)
        self.imagery = ImageLayer(self.canvas.scene(), self)
        self.canvas.pixel_reader = self.imagery.read_rgb
        self.canvas.view_changed.connect(self._update_imagery)
        self.imagery.overview_ready.connect(self._update_imagery)
        self.imagery.failed.connect(lambda m: self.status.setText(f"image: {m}"))
        self.canvas.status.connect(lambda m: self.status.setText(m))
        self.canvas.step_requested.connect(self.step)
        self.canvas.edit_label_requested.connect(self.edit_label)
        self.canvas.selection_changed.connect(self._sync_shape_list)
        self.canvas.mode_changed.connect(self._on_mode)

        self.targets = TargetModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.targets)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filter = QLineEdit(placeholderText="filter scenes and tiles")
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.target_view = QListView()
        self.target_view.setModel(self.proxy)
        self.target_view.setUniformItemSizes(True)
        self.target_view.setTextElideMode(Qt.TextElideMode.ElideLeft)
        self.target_view.selectionModel().currentChanged.connect(lambda cur, _prev: self._open_index(cur))

        self.shape_list = QListWidget()
        self.shape_list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.shape_list.itemSelectionChanged.connect(self._on_shape_list_selection)
        self.status = QLabel("Open a project, then pick a scene or tile.")
        self.status.setWordWrap(True)

        self.toolbar = self._build_toolbar()
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(QLabel("Scenes and tiles"))
        lv.addWidget(self.filter)
        lv.addWidget(self.target_view)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(QLabel("Shapes"))
        rv.addWidget(self.shape_list)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(self.canvas)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([220, 900, 200])
        layout = QVBoxLayout(self)
        layout.addWidget(self.toolbar)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)

        self._regen_pending: set[int] = set()
        self._regen: JobRunner | None = None
        self._regen_timer = QTimer(self, singleShot=True, interval=REGEN_DELAY_MS)
        self._regen_timer.timeout.connect(self._start_regen)
        context.project_opened.connect(lambda _p: self.refresh())
        context.project_closed.connect(self._on_closed)
        context.tiles_changed.connect(self._refresh_if_needed)
        if context.catalog is not None:
            self.refresh()

    # ---- toolbar
    def _build_toolbar(self) -> QToolBar:
        bar = QToolBar()
        group = QActionGroup(self)
        self.mode_actions: dict[str, QAction] = {}
        for mode, text, keys in MODE_ACTIONS:
            act = QAction(text, self, checkable=True)
            act.setToolTip(f"{text} ({keys})")
            act.triggered.connect(lambda _c=False, m=mode: self.canvas.set_mode(m))
            group.addAction(act)
            bar.addAction(act)
            self.mode_actions[mode] = act
        self.mode_actions["edit"].setChecked(True)
        bar.addSeparator()
        undo = self.canvas.undo_stack.createUndoAction(self, "Undo")
        undo.setToolTip("Undo (Ctrl+Z)")
        redo = self.canvas.undo_stack.createRedoAction(self, "Redo")
        redo.setToolTip("Redo (Ctrl+Shift+Z, Ctrl+Y)")
        bar.addActions([undo, redo])
        bar.addSeparator()
        self.label_combo = QComboBox(editable=True)
        self.label_combo.setMinimumWidth(120)
        for n in label_history(self.settings):
            self.label_combo.addItem(colour_icon(label_colour(n)), n)
        self.label_combo.setCurrentText(DEFAULT_LABEL)
        self.label_combo.currentTextChanged.connect(self._on_label_text)
        bar.addWidget(QLabel(" label "))
        bar.addWidget(self.label_combo)
        self.brush_spin = QDoubleSpinBox(minimum=1, maximum=500, value=self.canvas.brush_radius, suffix=" px")
        self.brush_spin.setToolTip("Brush / eraser radius in image pixels")
        self.brush_spin.valueChanged.connect(lambda v: setattr(self.canvas, "brush_radius", float(v)))
        bar.addWidget(QLabel(" brush "))
        bar.addWidget(self.brush_spin)
        self.wand_spin = QDoubleSpinBox(minimum=1, maximum=255, value=self.canvas.wand_tolerance)
        self.wand_spin.setToolTip("Magic wand colour tolerance (0-255 per channel)")
        self.wand_spin.valueChanged.connect(lambda v: setattr(self.canvas, "wand_tolerance", float(v)))
        bar.addWidget(QLabel(" tolerance "))
        bar.addWidget(self.wand_spin)
        self.snap_box = QCheckBox("snap", checked=True)
        self.snap_box.setToolTip("Snap new vertices to nearby vertices of other shapes")
        self.snap_box.toggled.connect(lambda on: setattr(self.canvas, "snapping", on))
        bar.addWidget(self.snap_box)
        bar.addSeparator()
        imp = QAction("Import LabelMe...", self)
        imp.triggered.connect(self.import_labelme_dialog)
        exp = QAction("Export LabelMe...", self)
        exp.triggered.connect(self.export_labelme_dialog)
        bar.addActions([imp, exp])
        return bar

    def _on_mode(self, mode: str) -> None:
        act = self.mode_actions.get(mode)
        if act is not None:
            act.setChecked(True)

    def _on_label_text(self, text: str) -> None:
        if text.strip():
            self.canvas.current_label = text.strip()

    # ---- targets
    def refresh(self) -> None:
        cat = self.context.catalog
        if cat is None:
            self.targets.reset([])
            return
        rows = [TargetRow("scene", s.id, f"scene  {s.name}  ({s.width}x{s.height})") for s in cat.scenes()]
        rows += [
            TargetRow("tile", int(r["id"]), f"tile  {r['name']}", f"{r['sub']} / {r['name']}")
            for r in cat.query(
                "SELECT t.id, t.name, d.name AS sub FROM tiles t JOIN subdatasets d ON d.id = t.subdataset_id ORDER BY t.id"
            )
        ]
        self.targets.reset(rows)
        if self.target is None and rows:  # show something at once: the first scene or tile
            self.open_target(rows[0].kind, rows[0].id)

    def _refresh_if_needed(self) -> None:
        if self.context.catalog is not None and len(self.targets.rows) != len(self.context.catalog.scenes()) + self.context.catalog.tile_count():
            self.refresh()

    def _on_closed(self) -> None:
        self._flush_regen()
        self.imagery.clear()
        self.canvas.set_document(EditorDocument(None, self), QRectF())
        self.target = None
        self.targets.reset([])

    def open_target(self, kind: str, target_id: int) -> None:
        """Show a scene or a tile (also selects it in the list)."""
        for row in range(self.proxy.rowCount()):
            idx = self.proxy.index(row, 0)
            r = idx.data(Qt.ItemDataRole.UserRole)
            if r.kind == kind and r.id == target_id:
                self.target_view.setCurrentIndex(idx)
                return
        self._open(kind, target_id)

    def _open_index(self, index: QModelIndex) -> None:
        row = index.data(Qt.ItemDataRole.UserRole) if index.isValid() else None
        if row is not None:
            self._open(row.kind, row.id)

    def _open(self, kind: str, target_id: int) -> None:
        cat = self.context.catalog
        if cat is None:
            return
        try:
            target = scene_target(cat, target_id) if kind == "scene" else tile_target(cat, target_id)
        except CasdeskError as exc:
            show_error(self, "Cannot open for labelling", str(exc))
            return
        self.target = target
        doc = EditorDocument(LabelStore(cat, target), self)
        doc.load()
        doc.saved.connect(self._on_saved)
        doc.save_failed.connect(lambda m: show_error(self, "Label not saved", m))
        doc.shape_added.connect(lambda _k: self._rebuild_shape_list())
        doc.shape_removed.connect(lambda _k: self._rebuild_shape_list())
        doc.name_changed.connect(lambda _k: self._rebuild_shape_list())
        rect = QRectF(0, 0, target.width, target.height)
        self.canvas.set_document(doc, rect)
        self.imagery.open(target.image_path, target.width, target.height)
        self._rebuild_shape_list()
        self.status.setText(f"{target.title}: {len(doc.shapes)} shapes. Ctrl+N polygon, Ctrl+J edit, Ctrl+Z undo.")
        self.canvas.setFocus()

    def step(self, delta: int) -> None:
        """Next/previous entry in the list (D / A)."""
        cur = self.target_view.currentIndex()
        row = (cur.row() if cur.isValid() else -1) + delta
        if 0 <= row < self.proxy.rowCount():
            self.target_view.setCurrentIndex(self.proxy.index(row, 0))

    def _update_imagery(self) -> None:
        self.imagery.update_view(self.canvas.visible_rect(), self.canvas.zoom())

    # ---- shapes list
    def _rebuild_shape_list(self) -> None:
        self.shape_list.blockSignals(True)
        self.shape_list.clear()
        for key, rec in self.canvas.doc.shapes.items():
            item = QListWidgetItem(colour_icon(label_colour(rec.name)), f"{rec.name}  #{rec.label_id or '-'}")
            item.setData(Qt.ItemDataRole.UserRole, key)
            self.shape_list.addItem(item)
        self.shape_list.blockSignals(False)
        self._sync_shape_list(self.canvas.selected_keys())

    def _sync_shape_list(self, keys: list[int]) -> None:
        self.shape_list.blockSignals(True)
        wanted = set(keys)
        for i in range(self.shape_list.count()):
            it = self.shape_list.item(i)
            it.setSelected(it.data(Qt.ItemDataRole.UserRole) in wanted)
        self.shape_list.blockSignals(False)

    def _on_shape_list_selection(self) -> None:
        keys = [it.data(Qt.ItemDataRole.UserRole) for it in self.shape_list.selectedItems()]
        self.canvas.select(keys)

    def edit_label(self) -> None:
        keys = self.canvas.selected_keys()
        current = self.canvas.doc.shapes[keys[0]].name if keys else self.canvas.current_label
        names = sorted({r.name for r in self.canvas.doc.shapes.values()})
        dlg = LabelDialog(self.settings, current, names, self)
        dlg.setObjectName("labelDialog")

        def accepted() -> None:
            name = dlg.name()
            if keys:
                self.canvas.push(Rename(self.canvas.doc, keys, name))
            else:
                self.label_combo.setCurrentText(name)
            if self.label_combo.findText(name) < 0:
                self.label_combo.addItem(colour_icon(label_colour(name)), name)

        dlg.accepted.connect(accepted)
        dlg.open()
        self._label_dialog = dlg

    # ---- autosave consequences
    def _on_saved(self, tile_ids: list[int]) -> None:
        if self.target is not None:
            self.context.labels_changed.emit(self.target.scene_id if self.target.kind == "scene" else self.target.tile_id)
        remember_label(self.settings, self.canvas.current_label)
        self._regen_pending.update(tile_ids)
        self._regen_timer.start()

    def _start_regen(self) -> None:
        if not self._regen_pending or self.context.catalog is None:
            return
        if self._regen is not None and self._regen.is_running():
            return  # restarted when the running batch ends
        ids = sorted(self._regen_pending)
        self._regen_pending.clear()
        project = self.context.catalog.path
        runner = JobRunner(lambda token: regenerate_masks(project, ids, token), self, name="masks")
        runner.failed.connect(lambda msg, details: show_error(self, "Masks not regenerated", msg, details))
        runner.finished.connect(lambda _r: self.context.tiles_changed.emit())
        runner.done.connect(self._regen_done)
        self._regen = runner
        runner.start()

    def _regen_done(self) -> None:
        if self._regen_pending:
            self._regen_timer.start(0)

    def regen_idle(self) -> bool:
        """No mask regeneration running or waiting (tests wait on this)."""
        return not self._regen_pending and not self._regen_timer.isActive() and (
            self._regen is None or not self._regen.is_running()
        )

    def _flush_regen(self) -> None:
        if self._regen is not None:
            self._regen.wait()
        if self._regen_pending and self.context.catalog is not None:
            from casdesk.core.jobs import run_job

            ids = sorted(self._regen_pending)
            self._regen_pending.clear()
            self._regen_timer.stop()
            run_job(regenerate_masks(self.context.catalog, ids))

    # ---- LabelMe interop for the shown image
    def export_labelme_dialog(self) -> None:
        if self.target is None or self.context.catalog is None:
            return
        start = str(Path(self.target.image_path).with_suffix(".json"))
        path, _ = QFileDialog.getSaveFileName(self, "Export LabelMe JSON", start, "LabelMe JSON (*.json)")
        if path:
            from casdesk.core.labels.exchange import export_labelme

            try:
                export_labelme(self.context.catalog, self.target, Path(path))
            except CasdeskError as exc:
                show_error(self, "Export failed", str(exc))

    def import_labelme_dialog(self) -> None:
        if self.target is None or self.context.catalog is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Import LabelMe JSON", str(self.target.image_path.parent), "LabelMe JSON (*.json)")
        if path:
            from casdesk.core.labels.exchange import import_labelme_file

            try:
                ids = import_labelme_file(self.context.catalog, self.target, Path(path))
            except CasdeskError as exc:
                show_error(self, "Import failed", str(exc))
                return
            target = self.target
            self._open(target.kind if target.tile_id is None else "tile", target.tile_id or target.scene_id or 0)
            self._on_saved(LabelStore(self.context.catalog, target).affected_tiles([]) or ([target.tile_id] if target.tile_id else []))
            self.status.setText(f"imported {len(ids)} shapes from {Path(path).name}")

    # ---- lifecycle
    def shutdown(self) -> None:
        self.canvas.shutdown()
        self.imagery.shutdown()
        if self._regen is not None:
            self._regen.shutdown()
        self._flush_regen()
