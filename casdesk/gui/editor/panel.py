"""The Label tab: pick a scene or tile, edit its polygons on the canvas.

Every edit autosaves to the catalog (one transaction); masks of the tiles an edit touches
are regenerated in a worker shortly after (edits in quick succession are batched).

The panel's parts live beside it (tool rows: :mod:`.toolbar`; predict/accept/train loop:
:mod:`.loop`; autosave consequences and LabelMe files: :mod:`.autosave`; the scene/tile
list: :mod:`.targets`); their public names are importable from here as before.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import shapely
from PySide6.QtCore import (
    QModelIndex,
    QRectF,
    QSettings,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtWidgets import (
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from casdesk.core.errors import CasdeskError
from casdesk.core.jobs import CancelToken, Job
from casdesk.core.labels.store import (
    EditTarget,
    LabelStore,
    pending_tiles,
    scene_target,
    tile_target,
)
from casdesk.core.labels.tile_masks import adopt_base, base_layer
from casdesk.core.project.catalog import Catalog
from casdesk.gui.browser.loader import LatestCall
from casdesk.gui.editor.autosave import REGEN_DELAY_MS, MaskUpkeep
from casdesk.gui.editor.canvas import EditorCanvas
from casdesk.gui.editor.commands import Rename
from casdesk.gui.editor.document import EditorDocument
from casdesk.gui.editor.imagery import ImageLayer
from casdesk.gui.editor.items import label_colour
from casdesk.gui.editor.label_dialog import (
    LabelDialog,
    colour_icon,
)
from casdesk.gui.editor.loop import QUICK_MAX_TILES, PredictionLoop, TilePrediction
from casdesk.gui.editor.targets import (
    FitWidthDelegate,
    TargetModel,
    TargetRow,
    load_target_rows,
    target_rows,
)
from casdesk.gui.editor.toolbar import ASK_LABEL_KEY, MODE_ACTIONS, EditorToolbars
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.kit.workers import JobRunner
from casdesk.gui.shell.context import ProjectContext

__all__ = [  # the parts' public names, importable from here as before the split
    "ASK_LABEL_KEY", "MODE_ACTIONS", "QUICK_MAX_TILES", "REGEN_DELAY_MS", "EditorPanel",
    "FitWidthDelegate", "TargetModel", "TargetRow", "TilePrediction",
]
log = logging.getLogger(__name__)


def adopt_base_for(path: Path, tile_id: int) -> int:
    """:func:`~casdesk.core.labels.store.adopt_base` on this (worker) thread's own connection."""
    with Catalog.open(path) as cat:
        return adopt_base(cat, tile_id)
class EditorPanel(EditorToolbars, PredictionLoop, MaskUpkeep, QWidget):
    """The Label tab. Its parts: the tool rows (:mod:`.toolbar`), the model loop
    (:mod:`.loop`), what follows an autosave (:mod:`.autosave`); the scene/tile list's model
    is in :mod:`.targets`."""

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
        # the list of 20,000 tiles is built in a worker when the tab is first shown, not
        # while the project opens behind another tab (~0.15 s of reading at 20k tiles)
        self._targets_stale = False
        self._targets_call = LatestCall(self)
        self._targets_call.finished.connect(self._on_target_rows)
        self._targets_call.failed.connect(lambda m: self.status.setText(f"The scenes and tiles could not be listed: {m}"))
        self._adopting: tuple[str, int] | None = None  # (kind, id) opening once its label is adopted
        self._adopt_call = LatestCall(self)
        self._adopt_call.finished.connect(self._on_adopted)
        self._adopt_call.failed.connect(self._on_adopt_failed)
        self._pending_runner: JobRunner | None = None
        context.project_opened.connect(lambda _p: self._on_project_opened())  # and the model box
        context.project_closed.connect(lambda: self.model_chooser.refresh(None))
        context.project_closed.connect(self._on_closed)
        context.tiles_changed.connect(self._refresh_if_needed)
        if context.catalog is not None:
            self.refresh()
            self.model_chooser.refresh(context.catalog)

    # ---- targets
    def _on_project_opened(self) -> None:
        """A project was opened: list its scenes and tiles (in a worker) now if the tab is
        on screen, else when it is first shown (masks an interrupted edit left stale are
        resumed now)."""
        self._targets_call.cancel()
        self._targets_stale = True
        self.targets.reset([])
        if self.isVisible():
            self._list_targets_in_background()
            return
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
        """Build the scene/tile list (and the model box) now if the project was opened while
        the tab was hidden (on the GUI thread: :meth:`showEvent` reads it in a worker)."""
        if self._targets_stale:
            self.refresh()
            self.model_chooser.refresh(self.context.catalog)

    def showEvent(self, event: Any) -> None:  # noqa: N802
        super().showEvent(event)
        if self._targets_stale and not self._targets_call.is_busy():
            self._list_targets_in_background()

    def _list_targets_in_background(self) -> None:
        cat = self.context.catalog
        if cat is None:
            return
        self.status.setText("Listing the scenes and tiles\u2026")
        path = cat.path
        self._targets_call.submit(lambda: load_target_rows(path))

    def _on_target_rows(self, rows: list[TargetRow]) -> None:
        if not self._targets_stale or self.context.catalog is None:
            return  # listed on the GUI thread meanwhile (open_target), or closed
        self._show_targets(rows)
        self.model_chooser.refresh(self.context.catalog)
        if self.target is None:
            self.status.setText("Pick a scene or tile.")

    def is_loading(self) -> bool:
        """The scene/tile list is being read in a worker."""
        return self._targets_call.is_busy()

    def refresh(self) -> None:
        """List the project's scenes and tiles (read on the GUI thread)."""
        self._targets_call.cancel()
        self._targets_stale = False
        cat = self.context.catalog
        if cat is None:
            self.targets.reset([])
            return
        self._show_targets(target_rows(cat))

    def _show_targets(self, rows: list[TargetRow]) -> None:
        self._targets_stale = False
        self.targets.reset(rows)
        self._resume_pending_masks()
        if self.target is None and rows:  # show something at once: the first scene or tile
            self.open_target(rows[0].kind, rows[0].id)
        elif (listed := self._listed_as(self.target)) is not None:  # opened before the list came
            self._select_in_list(*listed)

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
        self._targets_call.cancel()
        self._adopt_call.cancel()
        self._adopting = None
        self._targets_stale = False
        self.targets.reset([])

    def open_target(self, kind: str, target_id: int) -> None:
        """Show a scene or a tile (also selects it in the list). Before the list is built (a
        project opened behind another tab), the target opens at once and the list follows
        from a worker, then selects it."""
        if self._targets_stale:
            self._open(kind, target_id)
            if not self._targets_call.is_busy():
                self._list_targets_in_background()
            return
        if not self._select_in_list(kind, target_id):
            self._open(kind, target_id)

    def _select_in_list(self, kind: str, target_id: int | None) -> bool:
        """Make a listed scene or tile the list's current row (which opens it); False when
        the list (as filtered) does not show it."""
        row = None if target_id is None else self.targets.row_of(kind, target_id)
        if row is None:
            return False
        idx = self.proxy.mapFromSource(self.targets.index(row, 0))
        if not idx.isValid():
            return False
        self.target_view.setCurrentIndex(idx)
        return True

    def _open_index(self, index: QModelIndex) -> None:
        row = index.data(Qt.ItemDataRole.UserRole) if index.isValid() else None
        if row is not None and (row.kind, row.id) != self._listed_as(self.target):
            self._open(row.kind, row.id)

    @staticmethod
    def _listed_as(target: EditTarget | None) -> tuple[str, int | None] | None:
        """(kind, id) of the list row showing ``target`` (a scene's tile is listed as a tile)."""
        if target is None:
            return None
        return ("scene", target.scene_id) if target.tile_id is None else ("tile", target.tile_id)

    def _open(self, kind: str, target_id: int, adopt: bool = True) -> None:
        cat = self.context.catalog
        if cat is None:
            return
        self._adopting = None
        try:
            target = scene_target(cat, target_id) if kind == "scene" else tile_target(cat, target_id)
            if adopt and target.kind == "tile" and target.tile_id is not None and not cat.readonly:
                kept = base_layer(cat, target.tile_id)
                if kept is not None and kept[1]:  # an imported raster label: made editable shapes first
                    self._adopt_then_open(kind, target_id, target)
                    return
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

    def _adopt_then_open(self, kind: str, target_id: int, target: EditTarget) -> None:
        """Turn the tile's imported raster label into editable shapes (exactly; polygonising
        and storing them is ~50 ms) in a worker, then open the tile, unless another was asked
        for meanwhile."""
        cat = self.context.catalog
        assert cat is not None and target.tile_id is not None
        self._adopting = (kind, target_id)
        self.status.setText(f"{target.title}: turning the imported label into shapes\u2026")
        path, tile_id = cat.path, target.tile_id
        self._adopt_call.submit(lambda: (kind, target_id, adopt_base_for(path, tile_id)))

    def _on_adopted(self, result: tuple[str, int, int]) -> None:
        kind, target_id, _added = result
        if self._adopting == (kind, target_id) and self.context.catalog is not None:
            self._open(kind, target_id, adopt=False)  # adopted (a second try could not loop)

    def _on_adopt_failed(self, message: str) -> None:
        if self._adopting is not None:
            self._adopting = None
            show_error(self, "Cannot open for labelling", message)

    def is_opening(self) -> bool:
        """A tile waits for its imported label to become shapes (:meth:`_adopt_then_open`)."""
        return self._adopting is not None

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

    # ---- lifecycle
    def shutdown(self) -> None:
        self._targets_call.shutdown()
        self._adopt_call.shutdown()
        self._adopting = None
        if self._pending_runner is not None:
            self._pending_runner.shutdown()
        if self._predict_runner is not None:
            self._predict_runner.shutdown()
        self.canvas.shutdown()
        self.imagery.shutdown()
        if self._regen is not None:
            self._regen.shutdown()
        self._flush_regen()
