"""The Label tab: pick a scene or tile, edit its polygons on the canvas.

Every edit autosaves to the catalog (one transaction); masks of the tiles an edit touches
are regenerated in a worker shortly after (edits in quick succession are batched).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRectF,
    QSettings,
    QSize,
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
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from casdesk.core.errors import CasdeskError
from casdesk.core.jobs import CancelToken, Job, Progress
from casdesk.core.labels.store import (
    EditTarget,
    LabelStore,
    adopt_base,
    pending_tiles,
    regenerate_masks,
    scene_target,
    tile_target,
)
from casdesk.core.project.catalog import Catalog
from casdesk.core.project.events import LabelsChanged, MasksChanged, id_tuple
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
from casdesk.gui.predict.models import ModelChooser
from casdesk.gui.predict.view import probability_legend, probability_rgba
from casdesk.gui.shell.context import ProjectContext

log = logging.getLogger(__name__)
REGEN_DELAY_MS = 300
ASK_LABEL_KEY = "editor/ask_label"
QUICK_MAX_TILES = 400  # "Train on these tiles": at most this many tiles

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
class TilePrediction:
    """The open tile's prediction: probability (rows, cols) float32 in view pixels."""

    target: EditTarget
    model: Path
    prob: np.ndarray
    valid: np.ndarray
    threshold: float


@dataclass(frozen=True)
class TargetRow:
    kind: str  # "scene" | "tile"
    id: int
    text: str
    tooltip: str = ""


class FitWidthDelegate(QStyledItemDelegate):
    """Rows no wider than the list's viewport, so the view elides their text."""

    def __init__(self, view: QListView):
        super().__init__(view)
        self.view = view

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802
        hint = super().sizeHint(option, index)
        return QSize(min(hint.width(), max(self.view.viewport().width(), 20)), hint.height())


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
        self.canvas.shapes_created.connect(self._on_shapes_created)

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
        # rows as wide as the list, long names elided on the left: the distinguishing end
        # (row/column, subdataset) stays visible instead of a horizontal scroll bar
        self.target_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.target_view.setResizeMode(QListView.ResizeMode.Adjust)
        self.target_view.setItemDelegate(FitWidthDelegate(self.target_view))
        self.target_view.selectionModel().currentChanged.connect(lambda cur, _prev: self._open_index(cur))

        self.shape_list = QListWidget()
        self.shape_list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.shape_list.itemSelectionChanged.connect(self._on_shape_list_selection)
        self.status: QLabel = QLabel("Open a project, then pick a scene or tile.")
        self.status.setWordWrap(True)

        self.toolbar = self._build_toolbar()
        self._prediction: TilePrediction | None = None
        self._predict_runner: JobRunner | None = None
        self._predictor_cache: tuple[Any, Any] | None = None  # (model key, Predictor)
        self.loop_bar = self._build_loop_bar()
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
        layout.addWidget(self.loop_bar)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)

        self._regen_pending: set[int] = set()
        self._regen: JobRunner | None = None
        self._regen_timer = QTimer(self, singleShot=True, interval=REGEN_DELAY_MS)
        self._regen_timer.timeout.connect(self._start_regen)
        # the list of 20,000 tiles is built when the tab is first shown, not while the
        # project opens behind another tab (about 0.2-0.5 s of GUI thread at 20k tiles)
        self._targets_stale = False
        self._pending_runner: JobRunner | None = None
        context.project_opened.connect(lambda _p: self._on_project_opened())  # and the model box
        context.project_closed.connect(lambda: self.model_chooser.refresh(None))
        context.project_closed.connect(self._on_closed)
        context.tiles_changed.connect(self._refresh_if_needed)
        if context.catalog is not None:
            self.refresh()
            self.model_chooser.refresh(context.catalog)

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
        # fixed texts (the stack's own actions say "Undo add landslide": the toolbar's width
        # would change with every edit and push actions into the "››" overflow)
        stack = self.canvas.undo_stack
        undo = QAction("Undo", self, enabled=False)
        undo.triggered.connect(stack.undo)
        stack.canUndoChanged.connect(undo.setEnabled)
        stack.undoTextChanged.connect(lambda t: undo.setToolTip(f"Undo {t} (Ctrl+Z)" if t else "Undo (Ctrl+Z)"))
        redo = QAction("Redo", self, enabled=False)
        redo.triggered.connect(stack.redo)
        stack.canRedoChanged.connect(redo.setEnabled)
        stack.redoTextChanged.connect(
            lambda t: redo.setToolTip(f"Redo {t} (Ctrl+Shift+Z, Ctrl+Y)" if t else "Redo (Ctrl+Shift+Z, Ctrl+Y)"))
        self.undo_action, self.redo_action = undo, redo
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
        self.snap_box = QCheckBox("snap")
        self.snap_box.setChecked(True)
        self.snap_box.setToolTip("Snap new vertices to nearby vertices of other shapes")
        self.snap_box.toggled.connect(lambda on: setattr(self.canvas, "snapping", on))
        bar.addWidget(self.snap_box)
        return bar

    def _build_loop_bar(self) -> QToolBar:
        """Second row: label prompt, LabelMe files, and the predict -> accept loop."""
        bar = QToolBar()
        self.ask_label_action = QAction("Ask label", self, checkable=True)
        self.ask_label_action.setToolTip("Ask for a label name each time a shape is closed (as LabelMe)")
        self.ask_label_action.setChecked(bool(self.settings.value(ASK_LABEL_KEY, False, type=bool)))
        self.ask_label_action.toggled.connect(lambda on: self.settings.setValue(ASK_LABEL_KEY, on))
        bar.addAction(self.ask_label_action)
        bar.addSeparator()
        imp = QAction("Import LabelMe...", self)
        imp.triggered.connect(self.import_labelme_dialog)
        exp = QAction("Export LabelMe...", self)
        exp.triggered.connect(self.export_labelme_dialog)
        self.import_action, self.export_action = imp, exp
        self.regen_action = QAction("Regenerate masks", self)
        self.regen_action.setToolTip("Rebuild the masks of the open scene or tile from its labels (`casdesk labels regenerate`)")
        self.regen_action.triggered.connect(self.regenerate_masks_now)
        bar.addActions([imp, exp, self.regen_action])
        bar.addSeparator()
        bar.addWidget(QLabel(" model "))
        self.model_chooser = ModelChooser()
        self.model_chooser.setToolTip("A trained run of this project, or a model file")
        self.model_chooser.model_chosen.connect(lambda _p: self._update_loop_actions())
        bar.addWidget(self.model_chooser)
        self.predict_action = QAction("Predict this tile", self)
        self.predict_action.setToolTip("Predict the open tile with the chosen model; the probability is shown over it")
        self.predict_action.triggered.connect(self.predict_tile)
        self.show_prob_action = QAction("Probability", self, checkable=True, checked=True)
        self.show_prob_action.setToolTip("Show or hide the predicted probability")
        self.show_prob_action.toggled.connect(self.canvas.overlay.setVisible)
        self.accept_action = QAction("Accept as polygons", self)
        self.accept_action.setToolTip("Turn the prediction (probability > the model's threshold) into editable "
                                      "labels; earlier predicted labels of this tile are replaced")
        self.accept_action.triggered.connect(self.accept_prediction)
        bar.addAction(self.predict_action)
        bar.addAction(self.show_prob_action)
        self.legend = QLabel()
        self.legend.setPixmap(probability_legend())
        self.legend.setToolTip("Predicted probability of landslide: transparent at 0, yellow to red towards 1")
        bar.addWidget(self.legend)
        bar.addAction(self.accept_action)
        self.train_action = QAction("Train on these tiles", self)
        self.train_action.setToolTip("A short run (Train tab) on the labelled tiles of this scene or subdataset, "
                                     "plus as many unlabelled ones drawn at random")
        self.train_action.triggered.connect(self.train_on_these_tiles)
        bar.addAction(self.train_action)
        return bar

    def _on_mode(self, mode: str) -> None:
        act = self.mode_actions.get(mode)
        if act is not None:
            act.setChecked(True)

    def _on_label_text(self, text: str) -> None:
        if text.strip():
            self.canvas.current_label = text.strip()

    # ---- targets
    def _on_project_opened(self) -> None:
        """A project was opened: list its scenes and tiles now if the tab is on screen,
        else when it is first shown (masks an interrupted edit left stale are resumed now)."""
        if self.isVisible():
            self.refresh()
            self.model_chooser.refresh(self.context.catalog)
            return
        self._targets_stale = True
        self.targets.reset([])
        cat = self.context.catalog
        if cat is None or cat.readonly:
            return
        path = cat.path

        def find_pending(_token: CancelToken) -> Job:  # on the worker's own connection
            with Catalog.open(path, readonly=True) as own:
                return pending_tiles(own)
            yield  # a job is a generator

        self._pending_runner = JobRunner(find_pending, self, name="editor-pending")
        self._pending_runner.finished.connect(lambda ids: self._resume_pending_masks(path, ids))
        self._pending_runner.start()

    def ensure_targets(self) -> None:
        """Build the scene/tile list (and the model box) if the project was opened while
        the tab was hidden."""
        if self._targets_stale:
            self.refresh()
            self.model_chooser.refresh(self.context.catalog)

    def showEvent(self, event: Any) -> None:  # noqa: N802
        super().showEvent(event)
        if self._targets_stale:
            QTimer.singleShot(0, self.ensure_targets)  # after the tab is painted

    def _resume_pending_masks(self, path: Any = None, found: list[int] | None = None) -> None:
        cat = self.context.catalog
        if cat is None or (path is not None and cat.path != path):
            return
        # masks an interrupted edit or import left stale: finish them
        stale = pending_tiles(cat) if found is None else found
        if stale and not cat.readonly:
            self._regen_pending.update(stale)
            self._regen_timer.start(0)

    def refresh(self) -> None:
        self._targets_stale = False
        cat = self.context.catalog
        if cat is None:
            self.targets.reset([])
            return
        rows = [TargetRow("scene", s.id, f"scene  {s.name}  ({s.width}x{s.height})") for s in cat.scenes()]
        tiles = cat.tile_rows.names()
        seen: dict[str, int] = {}
        for r in tiles:
            seen[r.name] = seen.get(r.name, 0) + 1
        # a name used in two subdatasets (CAS tiles are numbered per subdataset) shows its subdataset
        rows += [
            TargetRow("tile", r.id,
                      f"tile  {r.name}  [{r.subdataset}]" if seen[r.name] > 1 else f"tile  {r.name}",
                      f"{r.subdataset} / {r.name}")
            for r in tiles
        ]
        self.targets.reset(rows)
        self._resume_pending_masks()
        if self.target is None and rows:  # show something at once: the first scene or tile
            self.open_target(rows[0].kind, rows[0].id)

    def _refresh_if_needed(self) -> None:
        if self._targets_stale:
            return  # built when the tab is shown
        if self.context.catalog is not None and len(self.targets.rows) != len(self.context.catalog.scenes()) + self.context.catalog.tile_count():
            self.refresh()

    def _on_closed(self) -> None:
        self._flush_regen()
        self.imagery.clear()
        self.canvas.set_document(EditorDocument(None, self), QRectF())
        self.target = None
        self._prediction = None
        self._update_loop_actions()
        self._targets_stale = False
        self.targets.reset([])

    def open_target(self, kind: str, target_id: int) -> None:
        """Show a scene or a tile (also selects it in the list)."""
        self.ensure_targets()
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
            if target.kind == "tile" and target.tile_id is not None and not cat.readonly:
                adopt_base(cat, target.tile_id)  # an imported raster label becomes editable shapes (exactly)
        except CasdeskError as exc:
            show_error(self, "Cannot open for labelling", str(exc))
            return
        self.target = target
        doc = EditorDocument(LabelStore(cat, target), self)
        doc.load()
        doc.saved.connect(self._on_saved)
        doc.save_failed.connect(lambda m: show_error(self, "Label not saved", m))
        doc.shape_added.connect(lambda _k: self._shapes_changed())
        doc.shape_removed.connect(lambda _k: self._shapes_changed())
        doc.name_changed.connect(lambda _k: self._rebuild_shape_list())
        rect = QRectF(0, 0, target.width, target.height)
        self.canvas.set_document(doc, rect)
        self.canvas.set_context(self._context_shapes(cat, target, doc))
        self._prediction = None
        self._update_loop_actions()
        self.imagery.open(target.image_path, target.width, target.height)
        self._rebuild_shape_list()
        self._update_status()
        self.canvas.setFocus()

    def _update_status(self, note: str = "") -> None:
        if self.target is None:
            return
        n = len(self.canvas.doc.shapes)
        text = f"{self.target.title}: {n} shape{'' if n == 1 else 's'}"
        if self.canvas.context_items:
            text += f" ({len(self.canvas.context_items)} more of the scene around it, dimmed)"
        self.status.setText(f"{text}. {note or 'Ctrl+N polygon, Ctrl+J edit, Ctrl+Z undo.'}")

    def _shapes_changed(self) -> None:
        self._rebuild_shape_list()
        self._update_status()

    @staticmethod
    def _context_shapes(cat: Any, target: EditTarget, doc: EditorDocument) -> list[Any]:
        """The scene's shapes around a tile of it (not edited there): drawn dimmed."""
        if target.kind != "scene" or target.tile_id is None:
            return []
        import shapely

        edited = {rec.label_id for rec in doc.shapes.values()}
        m = 0.25 * max(target.width, target.height)  # the canvas shows this margin around the tile
        around = shapely.box(-m, -m, target.width + m, target.height + m)
        out = []
        for lab in cat.labels(scene_id=target.scene_id):
            if lab.id in edited:
                continue
            try:
                geom = target.to_view(shapely.from_wkt(lab.geometry_px))
            except shapely.errors.GEOSException:
                continue
            if geom.intersects(around):
                out.append(geom)
        return out

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

    def _on_shapes_created(self, keys: list[int]) -> None:
        """A drawing tool closed a shape: ask for its label when the toggle is on (LabelMe)."""
        if not keys or not self.ask_label_action.isChecked() or self.canvas.mode in ("brush", "eraser"):
            return
        names = sorted({r.name for r in self.canvas.doc.shapes.values()})
        dlg = LabelDialog(self.settings, self.canvas.current_label, names, self)
        dlg.setObjectName("labelPrompt")
        undo_index = self.canvas.undo_stack.index()

        def accepted() -> None:
            name = dlg.name()
            live = [k for k in keys if k in self.canvas.doc.shapes]
            if live and any(self.canvas.doc.shapes[k].name != name for k in live):
                self.canvas.push(Rename(self.canvas.doc, live, name))
            self.label_combo.setCurrentText(name)
            if self.label_combo.findText(name) < 0:
                self.label_combo.addItem(colour_icon(label_colour(name)), name)

        def rejected() -> None:  # as LabelMe: cancelling the prompt discards the new shape
            if self.canvas.undo_stack.index() == undo_index:
                self.canvas.undo_stack.undo()

        dlg.accepted.connect(accepted)
        dlg.rejected.connect(rejected)
        dlg.open()
        self._label_dialog = dlg

    # ---- predict this tile -> accept as polygons
    def _update_loop_actions(self) -> None:
        tile_open = self.target is not None and self.target.tile_id is not None
        busy = self._predict_runner is not None and self._predict_runner.is_running()
        self.predict_action.setEnabled(tile_open and self.model_chooser.current_path() is not None and not busy)
        self.accept_action.setEnabled(self._prediction is not None and not busy)
        self.train_action.setEnabled(self.target is not None)
        self.show_prob_action.setEnabled(self._prediction is not None)

    def predict_busy(self) -> bool:
        return self._predict_runner is not None and self._predict_runner.is_running()

    def predict_tile(self) -> None:
        """Predict the open tile with the chosen model in a worker (casdesk.ml.inference.tiles,
        the code `casdesk predict-tiles` runs); the probability is shown over the tile."""
        target, path = self.target, self.model_chooser.current_path()
        if target is None or target.tile_id is None:
            self.status.setText("Open a tile to predict it (whole scenes are predicted in the Predict tab).")
            return
        if path is None or self.predict_busy():
            return
        try:
            key = (str(path), path.stat().st_mtime_ns)
        except OSError:
            show_error(self, "Cannot predict this tile", f"model file not found: {path}")
            return
        cached = self._predictor_cache[1] if self._predictor_cache and self._predictor_cache[0] == key else None
        image_path = target.image_path

        def job(_token: CancelToken) -> Job:
            yield Progress(0, 1, "predicting the tile")
            from casdesk.ml.inference.scene import load_predictor
            from casdesk.ml.inference.tiles import predict_tile
            from casdesk.ml.training.data import read_tile

            predictor = cached if cached is not None else load_predictor(path, "auto")
            image, valid, _ = read_tile(image_path, None)
            return predictor, predict_tile(predictor, image, valid), valid

        runner = JobRunner(job, self, name="predict-tile")
        runner.finished.connect(lambda result: self._on_tile_predicted(target, path, key, result))
        runner.failed.connect(lambda m, d: show_error(self, "Cannot predict this tile", m, d))
        runner.done.connect(self._update_loop_actions)
        self._predict_runner = runner
        self.status.setText(f"Predicting {target.title} with {path.name}...")
        runner.start()
        self._update_loop_actions()

    def _on_tile_predicted(self, target: EditTarget, path: Path, key: Any, result: Any) -> None:
        predictor, prob, valid = result
        self._predictor_cache = (key, predictor)
        if self.target != target:
            return  # the user moved on to another tile
        self._prediction = TilePrediction(target, path, prob, valid, float(predictor.threshold))
        stored = np.where(valid, np.rint(np.clip(prob, 0, 1) * 254), 255).astype(np.uint8)
        self.canvas.set_overlay(probability_rgba(stored))
        self.canvas.overlay.setVisible(self.show_prob_action.isChecked())
        share = float((prob[valid] > predictor.threshold).mean()) if valid.any() else 0.0
        self._update_loop_actions()
        self._update_status(f"Predicted with {predictor.name}: {100 * share:.1f} % of the tile above "
                            f"{predictor.threshold:g}. 'Accept as polygons' makes them labels.")

    def accept_prediction(self) -> None:
        """The shown prediction -> editable labels (casdesk.core.labels.from_prediction, as
        `casdesk labels from-prediction`), in a worker (polygonising and storing a tile takes
        tens of milliseconds); the tile is then reloaded with them."""
        pred, cat = self._prediction, self.context.catalog
        if pred is None or cat is None or self.target != pred.target or self.predict_busy():
            return
        project, target, name = cat.path, pred.target, self.canvas.current_label

        def job(_token: CancelToken) -> Job:
            yield Progress(0, 1, "accepting the prediction")
            from casdesk.core.labels.from_prediction import accept_probability
            from casdesk.core.project.catalog import Catalog

            with Catalog.open(project) as own:
                return accept_probability(own, target, pred.prob, pred.threshold, pred.valid, name=name)

        runner = JobRunner(job, self, name="accept-prediction")
        runner.finished.connect(lambda report: self._on_accepted(target, report))
        runner.failed.connect(lambda m, d: show_error(self, "Prediction not accepted", m, d))
        runner.done.connect(self._update_loop_actions)
        self._predict_runner = runner
        self.status.setText("Accepting the prediction...")
        runner.start()
        self._update_loop_actions()

    def _on_accepted(self, target: EditTarget, report: Any) -> None:
        if self.target == target:
            self._open(target.kind if target.tile_id is None else "tile", target.tile_id or 0)
        self._on_saved(report.tiles)
        replaced = f", replacing {report.removed} earlier predicted" if report.removed else ""
        self._update_status(f"Accepted {report.added} predicted polygon(s){replaced}: edit them like any shape.")

    # ---- train on these tiles
    def training_sample(self, limit: int = QUICK_MAX_TILES, seed: int = 0) -> tuple[list[int], str]:
        """The open scene's (or the open tile's subdataset's) labelled tiles and as many
        unlabelled ones at random (a model also learns what is not a landslide); at most ``limit``."""
        cat, t = self.context.catalog, self.target
        if cat is None or t is None:
            return [], ""
        if t.scene_id is not None:
            rows = cat.tile_rows.labelled_of_scene(t.scene_id)
            title = f"scene {cat.scene(t.scene_id).name}"
        elif t.tile_id is not None:
            title, rows = cat.tile_rows.labelled_of_subdataset_of(t.tile_id)
        else:
            return [], ""
        labelled = [r.id for r in rows if (r.label_pixels or 0) > 0][:limit]
        others = [r.id for r in rows if not (r.label_pixels or 0) > 0]
        n = min(len(others), max(len(labelled), 1), limit - len(labelled))
        picked = np.random.default_rng(seed).choice(others, size=n, replace=False).tolist() if n > 0 else []
        return sorted(labelled + [int(i) for i in picked]), title

    def train_on_these_tiles(self) -> str | None:
        """Start a short run in the Train tab on :meth:`training_sample` and show that tab."""
        window = self.window()
        trainer = getattr(window, "panels", {}).get("Train")
        if trainer is None:
            return None
        ids, title = self.training_sample()
        name = trainer.train_on_tiles(ids, title)
        if name is not None:
            tabs = getattr(window, "tabs", None)  # the main window's tab widget
            if tabs is not None:
                tabs.setCurrentWidget(trainer)
            self.context.status_message.emit(f"training on {len(ids)} tiles of {title} (split {name})")
        return name

    # ---- autosave consequences
    def _on_saved(self, tile_ids: list[int]) -> None:
        if self.target is not None:
            self.context.labels_changed.emit(self.target.scene_id if self.target.kind == "scene" else self.target.tile_id)
            scene = (self.target.scene_id,) if self.target.kind == "scene" and self.target.scene_id is not None else ()
            self.context.events.announce(LabelsChanged(scene, id_tuple(tile_ids)))
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
        # precise: only these tiles' masks changed (views update those rows, no reload)
        runner.finished.connect(lambda r: self.context.events.announce(MasksChanged(id_tuple(r or ids))))
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
    def regenerate_masks_now(self) -> None:
        """Rebuild the open target's tile masks from its labels (core: regenerate_masks)."""
        if self.target is None or self.context.catalog is None:
            return
        t = self.target
        if t.kind == "scene" and t.tile_id is None:
            ids = [tile.id for tile in self.context.catalog.tiles(scene_id=t.scene_id)]
        else:
            ids = LabelStore(self.context.catalog, t).affected_tiles([shapely.box(0, 0, t.width, t.height)]) or ([t.tile_id] if t.tile_id else [])
        self._regen_pending.update(ids)
        self._regen_timer.start(0)

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
        if self._pending_runner is not None:
            self._pending_runner.shutdown()
        if self._predict_runner is not None:
            self._predict_runner.shutdown()
        self.canvas.shutdown()
        self.imagery.shutdown()
        if self._regen is not None:
            self._regen.shutdown()
        self._flush_regen()
