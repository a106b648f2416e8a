"""The editor canvas's input and view: LabelMe's shortcuts (:data:`KEYMAP`), the keyboard,
wheel and mouse events (tools get the gestures, space / middle button pans), and zoom, fit
and pan of the view.

A part of :class:`~casdesk.gui.editor.canvas.EditorCanvas` (a QGraphicsView base without
state of its own: the canvas's ``__init__`` sets the attributes declared here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QKeyEvent, QKeySequence, QMouseEvent, QUndoStack, QWheelEvent
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsView

from casdesk.gui.editor.items import ShapeItem
from casdesk.gui.editor.tools import Tool

if TYPE_CHECKING:
    from PySide6.QtCore import Signal

# key sequence (portable text) -> canvas action; the canvas claims these while focused
KEYMAP: dict[str, str] = {
    "Ctrl+N": "mode:polygon",
    "Ctrl+R": "mode:rectangle",
    "Ctrl+J": "mode:edit",
    "B": "mode:brush",
    "X": "mode:eraser",
    "H": "mode:cut",
    "G": "mode:grabcut",
    "M": "mode:wand",
    "Ctrl+C": "copy",
    "Ctrl+V": "paste",
    "Ctrl+D": "duplicate",
    "Del": "delete",
    "Ctrl+0": "fit",
    "Ctrl+=": "zoom_in",
    "Ctrl++": "zoom_in",
    "Ctrl+-": "zoom_out",
    "D": "next",
    "A": "previous",
    "T": "toggle_shapes",
    "Ctrl+E": "edit_label",
    "Ctrl+Z": "undo",
    "Ctrl+Shift+Z": "redo",
    "Ctrl+Y": "redo",
    "Esc": "escape",
    "Ctrl+A": "select_all",
}
TOOL_KEYS = {"Return", "Enter", "Backspace", "Esc", "Del", "Left", "Right", "Up", "Down", "Shift+Left", "Shift+Right", "Shift+Up", "Shift+Down"}


def key_text(event: QKeyEvent) -> str:
    mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    return QKeySequence(event.key() | mods.value).toString(QKeySequence.SequenceFormat.PortableText)


class CanvasInput(QGraphicsView):
    """Shortcuts, mouse and wheel events, zoom / fit / pan (part of EditorCanvas)."""

    # the canvas's state this part uses (EditorCanvas.__init__ sets it)
    tool: Tool
    undo_stack: QUndoStack
    image_rect: QRectF
    shape_items: dict[int, ShapeItem]
    context_items: list[QGraphicsPathItem]
    shapes_visible: bool
    _auto_fit: bool
    _view_timer: QTimer
    _pan: tuple[QPointF, int, int] | None
    _space: bool
    _pressed: bool

    if TYPE_CHECKING:  # the canvas's own
        step_requested = Signal(int)
        edit_label_requested = Signal()

        def set_mode(self, mode: str) -> None: ...
        def select(self, keys: list[int]) -> None: ...
        def copy(self) -> None: ...
        def paste(self, offset: float = 0.0) -> None: ...
        def duplicate(self) -> None: ...
        def delete_selected(self) -> None: ...

    # ---- view
    def zoom(self) -> float:
        """Screen pixels per image pixel."""
        return float(self.transform().m11())

    def zoom_by(self, factor: float) -> None:
        new = self.zoom() * factor
        self._set_fitted(False)
        if 1e-4 < new < 64:
            self.scale(factor, factor)
            self._view_timer.start()

    def fit(self) -> None:
        """Fit the whole image into the window (as LabelMe's "Fit window"): no scroll bars,
        and the fit follows the window size until the user zooms."""
        if not self.image_rect.isEmpty():
            self._set_fitted(True)
            self.fitInView(self.image_rect, Qt.AspectRatioMode.KeepAspectRatio)
            self._view_timer.start()

    def _set_fitted(self, fitted: bool) -> None:
        """Fitted: no scroll bars (panning still works); zoomed: scroll bars as needed."""
        self._auto_fit = fitted
        policy = Qt.ScrollBarPolicy.ScrollBarAlwaysOff if fitted else Qt.ScrollBarPolicy.ScrollBarAsNeeded
        if self.horizontalScrollBarPolicy() != policy:
            self.setHorizontalScrollBarPolicy(policy)
            self.setVerticalScrollBarPolicy(policy)

    def is_fitted(self) -> bool:
        return self._auto_fit

    def visible_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()

    def set_shapes_visible(self, visible: bool) -> None:
        self.shapes_visible = visible
        for item in [*self.shape_items.values(), *self.context_items]:
            item.setVisible(visible)

    # ---- Qt events
    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride:
            text = key_text(event)  # type: ignore[arg-type]
            if text in KEYMAP or text in TOOL_KEYS:
                event.accept()
                return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        if self.tool.key(event):
            return
        action = KEYMAP.get(key_text(event))
        if action is None:
            super().keyPressEvent(event)
            return
        self.run_action(action)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().setCursor(self.tool.cursor)
            return
        super().keyReleaseEvent(event)

    def run_action(self, action: str) -> None:
        if action.startswith("mode:"):
            self.set_mode(action[5:])
            return
        simple: dict[str, Callable[[], Any]] = {
            "copy": self.copy,
            "paste": self.paste,
            "duplicate": self.duplicate,
            "delete": self.delete_selected,
            "fit": self.fit,
            "zoom_in": lambda: self.zoom_by(1.25),
            "zoom_out": lambda: self.zoom_by(0.8),
            "next": lambda: self.step_requested.emit(1),
            "previous": lambda: self.step_requested.emit(-1),
            "toggle_shapes": lambda: self.set_shapes_visible(not self.shapes_visible),
            "edit_label": self.edit_label_requested.emit,
            "undo": self.undo_stack.undo,
            "redo": self.undo_stack.redo,
            "escape": lambda: self.select([]),
            "select_all": lambda: self.select(list(self.shape_items)),
        }
        self.tool.cancel()
        simple[action]()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt API
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            steps = event.angleDelta().y() / 120.0
            if steps:
                self.zoom_by(1.2**steps)
            event.accept()
            return
        super().wheelEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        self.setFocus()
        if event.button() == Qt.MouseButton.MiddleButton or (
            self._space and event.button() == Qt.MouseButton.LeftButton
        ):
            self._auto_fit = False
            self._pan = (event.position(), self.horizontalScrollBar().value(), self.verticalScrollBar().value())
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        self._pressed = True
        self.tool.press(self.mapToScene(event.position().toPoint()), event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._pan is not None:
            start, h, v = self._pan
            d = event.position() - start
            self.horizontalScrollBar().setValue(int(h - d.x()))
            self.verticalScrollBar().setValue(int(v - d.y()))
            return
        self.tool.move(self.mapToScene(event.position().toPoint()), event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._pan is not None:
            self._pan = None
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor if self._space else self.tool.cursor)
            return
        if self._pressed:
            self._pressed = False
            self.tool.release(self.mapToScene(event.position().toPoint()), event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self.tool.double_click(self.mapToScene(event.position().toPoint()), event)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self._auto_fit:
            self.fit()
        self._view_timer.start()
