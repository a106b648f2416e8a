"""Segmentation models: the registry (:func:`create_model`, the one entry point) and the
paper's networks that smp does not provide (the authors' FCN, MFFENet)."""

from casdesk.ml.models.registry import (
    REGISTRY,
    ModelSpec,
    count_parameters,
    create_model,
    list_models,
    model_summary,
    resolve_spec,
)

__all__ = ["REGISTRY", "ModelSpec", "count_parameters", "create_model", "list_models",
           "model_summary", "resolve_spec"]
