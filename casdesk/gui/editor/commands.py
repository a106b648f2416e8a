"""Undoable edits. Each command stores the diff of one gesture (a vertex's old and new
position, the parts of the one shape a brush stroke changed), never a copy of the document.
"""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand

from casdesk.core.labels import geometry as ge
from casdesk.gui.editor.document import EditorDocument, ShapeRecord

NUDGE_ID = 1001  # consecutive arrow-key nudges merge into one undo step


class AddShape(QUndoCommand):
    def __init__(self, doc: EditorDocument, name: str, parts: ge.Parts, attributes: dict | None = None):
        super().__init__(f"add {name}")
        self.doc, self.name, self.parts, self.attributes = doc, name, parts, attributes or {}
        self.key = doc.reserve_key()

    def redo(self) -> None:
        self.doc.add_shape(self.name, self.parts, key=self.key, attributes=self.attributes)

    def undo(self) -> None:
        self.doc.remove_shape(self.key)


class RemoveShapes(QUndoCommand):
    def __init__(self, doc: EditorDocument, keys: list[int]):
        super().__init__(f"delete {len(keys)} shape(s)")
        self.doc, self.keys = doc, list(keys)
        self.removed: list[ShapeRecord] = []

    def redo(self) -> None:
        self.removed = [self.doc.remove_shape(k) for k in self.keys if k in self.doc.shapes]

    def undo(self) -> None:
        for rec in reversed(self.removed):
            self.doc.add_shape(rec.name, rec.parts, key=rec.key, attributes=rec.attributes)


class MoveVertex(QUndoCommand):
    """Created at the end of a drag: the document already shows ``new``."""

    def __init__(self, doc: EditorDocument, key: int, ref: ge.VertexRef, old: tuple, new: tuple):
        super().__init__("move vertex")
        self.doc, self.key, self.ref, self.old, self.new = doc, key, ref, old, new

    def redo(self) -> None:
        self.doc.move_vertex(self.key, self.ref, self.new)

    def undo(self) -> None:
        self.doc.move_vertex(self.key, self.ref, self.old)


class InsertVertex(QUndoCommand):
    def __init__(self, doc: EditorDocument, key: int, ref: ge.VertexRef, xy: tuple):
        super().__init__("insert vertex")
        self.doc, self.key, self.ref, self.xy = doc, key, ref, xy

    def redo(self) -> None:
        self.doc.insert_vertex(self.key, self.ref, self.xy)

    def undo(self) -> None:
        self.doc.remove_vertex(self.key, self.ref)


class RemoveVertex(QUndoCommand):
    def __init__(self, doc: EditorDocument, key: int, ref: ge.VertexRef):
        super().__init__("remove vertex")
        self.doc, self.key, self.ref = doc, key, ref
        self.xy: tuple = (0.0, 0.0)

    def redo(self) -> None:
        self.xy = self.doc.remove_vertex(self.key, self.ref)

    def undo(self) -> None:
        self.doc.insert_vertex(self.key, self.ref, self.xy)


class Translate(QUndoCommand):
    """Move whole shapes. ``applied`` is True when a drag already moved them on screen."""

    def __init__(self, doc: EditorDocument, keys: list[int], dx: float, dy: float, nudge: bool = False):
        super().__init__("move shape(s)")
        self.doc, self.keys, self.dx, self.dy, self.nudge = doc, list(keys), dx, dy, nudge

    def id(self) -> int:  # noqa: A003 - Qt API
        return NUDGE_ID if self.nudge else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt API
        if not isinstance(other, Translate) or other.keys != self.keys or not other.nudge:
            return False
        self.dx += other.dx
        self.dy += other.dy
        return True

    def redo(self) -> None:
        for k in self.keys:
            self.doc.translate(k, self.dx, self.dy)

    def undo(self) -> None:
        for k in self.keys:
            self.doc.translate(k, -self.dx, -self.dy)


class SetParts(QUndoCommand):
    """Replace one shape's geometry (brush, eraser, cut hole, assist refine)."""

    def __init__(self, doc: EditorDocument, key: int, before: ge.Parts, after: ge.Parts, text: str = "edit shape"):
        super().__init__(text)
        self.doc, self.key, self.before, self.after = doc, key, before, after

    def redo(self) -> None:
        self.doc.set_parts(self.key, self.after)

    def undo(self) -> None:
        self.doc.set_parts(self.key, self.before)


class Rename(QUndoCommand):
    def __init__(self, doc: EditorDocument, keys: list[int], name: str):
        super().__init__(f"label {name}")
        self.doc, self.keys, self.name = doc, list(keys), name
        self.old = {k: doc.shapes[k].name for k in keys}

    def redo(self) -> None:
        for k in self.keys:
            self.doc.rename(k, self.name)

    def undo(self) -> None:
        for k, n in self.old.items():
            self.doc.rename(k, n)
