"""What changed in a project, with ids: typed payloads of the project's change events.

Whoever writes to a project (a GUI panel after a job, an editor after a save) announces the
change with one of these payloads; views update only what it names instead of reloading the
whole project. The payloads are plain frozen dataclasses (no Qt), so core code, tests and the
CLI can build, compare and log them; the GUI carries them on the signals of
:class:`casdesk.gui.shell.context.ProjectEvents`.

Ids are tuples of ints, sorted and without duplicates (:func:`id_tuple`); an empty tuple
means "none", ``None`` (where allowed) means "every tile of the project".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def id_tuple(ids: Iterable[int] | int | None) -> tuple[int, ...]:
    """Sorted unique ints from an id, an iterable of ids (numpy arrays included) or None."""
    if ids is None:
        return ()
    if isinstance(ids, int):
        return (int(ids),)
    return tuple(sorted({int(i) for i in ids}))


@dataclass(frozen=True)
class ProjectChange:
    """Base of every change payload; ``kind`` names it in logs and in the generic signal."""

    kind = "change"

    def describe(self) -> str:
        return self.kind


@dataclass(frozen=True)
class TilesAdded(ProjectChange):
    """Tiles were created (import, crop); ``scene_ids``: scenes that got tiles (may be empty)."""

    tile_ids: tuple[int, ...]
    scene_ids: tuple[int, ...] = ()
    kind = "tiles_added"

    def describe(self) -> str:
        return f"{len(self.tile_ids)} tile(s) added"


@dataclass(frozen=True)
class TilesRemoved(ProjectChange):
    tile_ids: tuple[int, ...]
    scene_ids: tuple[int, ...] = ()
    kind = "tiles_removed"

    def describe(self) -> str:
        return f"{len(self.tile_ids)} tile(s) removed"


@dataclass(frozen=True)
class MasksChanged(ProjectChange):
    """The mask files (and label pixel counts) of these tiles were rewritten."""

    tile_ids: tuple[int, ...]
    kind = "masks_changed"

    def describe(self) -> str:
        return f"masks of {len(self.tile_ids)} tile(s) changed"


@dataclass(frozen=True)
class LabelsChanged(ProjectChange):
    """Label polygons changed on these scenes and/or tiles (tiles: those whose area they touch,
    when known)."""

    scene_ids: tuple[int, ...] = ()
    tile_ids: tuple[int, ...] = ()
    kind = "labels_changed"

    def describe(self) -> str:
        return f"labels of {len(self.scene_ids)} scene(s), {len(self.tile_ids)} tile(s) changed"


@dataclass(frozen=True)
class QCMetricsChanged(ProjectChange):
    """QC metrics were (re)computed; ``tile_ids`` None: for every tile."""

    tile_ids: tuple[int, ...] | None = None
    kind = "qc_metrics_changed"

    def describe(self) -> str:
        which = "every tile" if self.tile_ids is None else f"{len(self.tile_ids)} tile(s)"
        return f"QC metrics of {which} changed"


@dataclass(frozen=True)
class QCDecisionsChanged(ProjectChange):
    """Manual QC decisions (accept / reject / clear) of these tiles changed."""

    tile_ids: tuple[int, ...]
    kind = "qc_decisions_changed"

    def describe(self) -> str:
        return f"QC decisions of {len(self.tile_ids)} tile(s) changed"


@dataclass(frozen=True)
class QCRulesChanged(ProjectChange):
    """The QC rules changed: every tile's automatic state may differ."""

    kind = "qc_rules_changed"


@dataclass(frozen=True)
class SplitsChanged(ProjectChange):
    """Splits were created, changed or deleted; ``tile_ids``: tiles whose part changed (when
    known)."""

    names: tuple[str, ...] = ()
    tile_ids: tuple[int, ...] = ()
    kind = "splits_changed"

    def describe(self) -> str:
        return f"split(s) {', '.join(self.names) or '?'} changed"


@dataclass(frozen=True)
class RunsChanged(ProjectChange):
    """Training runs (or their epochs / predictions) were added, updated or deleted."""

    run_ids: tuple[int, ...] = ()
    kind = "runs_changed"


CHANGE_TYPES: tuple[type[ProjectChange], ...] = (
    TilesAdded, TilesRemoved, MasksChanged, LabelsChanged, QCMetricsChanged, QCDecisionsChanged,
    QCRulesChanged, SplitsChanged, RunsChanged,
)
"""Every payload type, in the order the GUI declares its signals."""
