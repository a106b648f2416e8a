"""The shapes being edited, and autosave: every change is written to the catalog at once.

Shapes are keyed by a session-local integer that survives undo/redo (a deleted then
restored label gets a new catalog id, never a new key). Geometry lives as editable parts
(:mod:`casdesk.core.labels.geometry`) in view pixels. Live previews (a vertex being dragged)
change the parts without saving; the undo command that ends the gesture saves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import shapely
from PySide6.QtCore import QObject, Signal
from shapely.geometry.base import BaseGeometry

from casdesk.core.errors import CasdeskError
from casdesk.core.labels import geometry as ge
from casdesk.core.labels.store import LabelStore

log = logging.getLogger(__name__)


@dataclass
class ShapeRecord:
    key: int
    name: str
    parts: ge.Parts
    label_id: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    saved_bounds: tuple[float, float, float, float] | None = None

    def geometry(self) -> BaseGeometry:
        return ge.geometry_from_parts(self.parts)

    def copy_parts(self) -> ge.Parts:
        return [[r.copy() for r in part] for part in self.parts]


class EditorDocument(QObject):
    """Shapes of one edit target. Signals carry shape keys."""

    shape_added = Signal(int)
    shape_removed = Signal(int)
    geometry_changed = Signal(int)  # parts replaced or vertex added/removed: rebuild
    vertex_moved = Signal(int, object)  # key, VertexRef: cheap in-place update
    name_changed = Signal(int)
    saved = Signal(object)  # list[int]: tiles whose masks are now stale
    save_failed = Signal(str)

    def __init__(self, store: LabelStore | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.store = store
        self.shapes: dict[int, ShapeRecord] = {}
        self._next_key = 1

    # ---- loading
    def load(self) -> None:
        """Fill from the catalog (no signals per shape: the canvas rebuilds once)."""
        self.shapes.clear()
        if self.store is None:
            return
        for s in self.store.load():
            parts = ge.parts_from_geometry(s.geometry)
            if not parts:
                continue
            rec = ShapeRecord(self._new_key(), s.name, parts, s.label_id, dict(s.attributes))
            rec.saved_bounds = s.geometry.bounds
            self.shapes[rec.key] = rec

    def _new_key(self) -> int:
        key = self._next_key
        self._next_key += 1
        return key

    def reserve_key(self) -> int:
        return self._new_key()

    # ---- primitive edits (each autosaves)
    def add_shape(
        self, name: str, parts: ge.Parts, key: int | None = None, attributes: dict[str, Any] | None = None
    ) -> int:
        key = key if key is not None else self._new_key()
        rec = ShapeRecord(key, name, [[r.copy() for r in p] for p in parts], None, dict(attributes or {}))
        self.shapes[key] = rec
        self._save(rec, created=True)
        self.shape_added.emit(key)
        return key

    def remove_shape(self, key: int) -> ShapeRecord:
        rec = self.shapes.pop(key)
        self.shape_removed.emit(key)
        if self.store is not None and rec.label_id is not None:
            before = rec.saved_bounds
            self._guard(lambda: self.store.delete(rec.label_id))
            rec.label_id = None
            self._emit_tiles([before])
        return rec

    def set_parts(self, key: int, parts: ge.Parts) -> None:
        rec = self.shapes[key]
        rec.parts = [[r.copy() for r in p] for p in parts]
        self._save(rec)
        self.geometry_changed.emit(key)

    def move_vertex(self, key: int, ref: ge.VertexRef, xy: tuple[float, float]) -> None:
        ge.move_vertex(self.shapes[key].parts, ref, xy)
        self._save(self.shapes[key])
        self.vertex_moved.emit(key, ref)

    def preview_vertex(self, key: int, ref: ge.VertexRef, xy: tuple[float, float]) -> None:
        """Move a vertex on screen while dragging; nothing is saved."""
        ge.move_vertex(self.shapes[key].parts, ref, xy)
        self.vertex_moved.emit(key, ref)

    def insert_vertex(self, key: int, ref: ge.VertexRef, xy: tuple[float, float]) -> None:
        ge.insert_vertex(self.shapes[key].parts, ref, xy)
        self._save(self.shapes[key])
        self.geometry_changed.emit(key)

    def remove_vertex(self, key: int, ref: ge.VertexRef) -> tuple[float, float]:
        old = ge.remove_vertex(self.shapes[key].parts, ref)
        self._save(self.shapes[key])
        self.geometry_changed.emit(key)
        return old

    def translate(self, key: int, dx: float, dy: float) -> None:
        ge.translate_parts(self.shapes[key].parts, dx, dy)
        self._save(self.shapes[key])
        self.geometry_changed.emit(key)

    def rename(self, key: int, name: str) -> None:
        rec = self.shapes[key]
        rec.name = name
        if self.store is not None and rec.label_id is not None:
            self._guard(lambda: self.store.update(rec.label_id, name=name))
            self._emit_tiles([rec.saved_bounds])
        self.name_changed.emit(key)

    # ---- saving
    def _save(self, rec: ShapeRecord, created: bool = False) -> None:
        if self.store is None:
            return
        geom = rec.geometry()
        before = rec.saved_bounds
        if geom.is_empty:
            return
        if rec.label_id is None:
            rec.label_id = self._guard(
                lambda: self.store.create(geom, rec.name, rec.attributes)
            )
        else:
            self._guard(lambda: self.store.update(rec.label_id, geom, rec.name))
        rec.saved_bounds = geom.bounds
        self._emit_tiles([before, rec.saved_bounds])

    def _guard(self, fn: Any) -> Any:
        try:
            return fn()
        except CasdeskError as exc:
            log.error("label not saved: %s", exc)
            self.save_failed.emit(str(exc))
            return None

    def _emit_tiles(self, bounds: list[tuple[float, float, float, float] | None]) -> None:
        if self.store is None:
            return
        boxes = [shapely.box(*b) for b in bounds if b is not None]
        tiles = self.store.affected_tiles(boxes)
        if tiles:
            self.saved.emit(tiles)
