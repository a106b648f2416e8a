"""Errors a user can act on.

Every error names the file (when there is one), the reason, and what to do. The CLI prints
``str(error)`` and exits non-zero; the GUI shows it in a dialog and the log.
"""

from __future__ import annotations

from pathlib import Path


class CasdeskError(Exception):
    """Base class for errors reported to the user (never shown as a traceback)."""

    def __init__(self, reason: str, path: str | Path | None = None, hint: str | None = None):
        self.reason = reason
        self.path = None if path is None else Path(path)
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        text = f"{self.path}: {self.reason}" if self.path is not None else self.reason
        if self.hint:
            text += f" ({self.hint})"
        return text


class RasterError(CasdeskError):
    """A raster cannot be opened or read, or holds no usable pixels."""


class LabelError(CasdeskError):
    """A label file (vector, raster, LabelMe JSON) cannot be read or does not fit the scene."""


class CatalogError(CasdeskError):
    """The project file is missing, not a casdesk project, damaged, or newer than this casdesk."""


class SceneError(CasdeskError):
    """A scene cannot be added (the same file or name is already in the project, ...)."""


class TilingError(CasdeskError):
    """A scene cannot be cropped with the requested parameters."""


class ImportDatasetError(CasdeskError):
    """A dataset folder does not follow the expected layout."""


class OutputError(CasdeskError):
    """An output folder or file cannot be written."""


class Cancelled(CasdeskError):
    """A long job was cancelled by the user; partial output was removed or is consistent."""

    def __init__(self, reason: str = "cancelled by the user"):
        super().__init__(reason)
