"""The Label tab's two tool rows: drawing modes, undo/redo, label, brush and wand settings;
then the label prompt, LabelMe files, mask regeneration and the predict -> accept loop.

A part of :class:`~casdesk.gui.editor.panel.EditorPanel` (a QWidget base without state of
its own: the panel's ``__init__`` calls the builders; the actions call the panel's parts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QToolBar, QWidget

from casdesk.gui.editor.canvas import EditorCanvas
from casdesk.gui.editor.items import label_colour
from casdesk.gui.editor.label_dialog import DEFAULT_LABEL, colour_icon, label_history
from casdesk.gui.predict.models import ModelChooser
from casdesk.gui.predict.view import probability_legend

ASK_LABEL_KEY = "editor/ask_label"

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



class EditorToolbars(QWidget):
    """Builds the tool rows of the Label tab (part of EditorPanel)."""

    # the panel's state these builders use (EditorPanel.__init__ sets it first)
    canvas: EditorCanvas
    settings: QSettings

    if TYPE_CHECKING:  # the panel's other parts, called by the actions
        def import_labelme_dialog(self) -> None: ...
        def export_labelme_dialog(self) -> None: ...
        def regenerate_masks_now(self) -> None: ...
        def predict_tile(self) -> None: ...
        def accept_prediction(self) -> None: ...
        def train_on_these_tiles(self) -> str | None: ...
        def _update_loop_actions(self) -> None: ...

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
