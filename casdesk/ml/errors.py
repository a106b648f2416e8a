"""Errors of the training and evaluation engine, all actionable :class:`CasdeskError`."""

from __future__ import annotations

from casdesk.core.errors import CasdeskError


class ModelError(CasdeskError):
    """A model cannot be built, or a model file cannot be read."""


class DeviceError(CasdeskError):
    """The requested compute device is not available."""


class TrainingError(CasdeskError):
    """Training cannot start or continue with the requested settings and data."""


class DataError(CasdeskError):
    """Tiles cannot be used for training or evaluation (missing masks, band mismatch...)."""
