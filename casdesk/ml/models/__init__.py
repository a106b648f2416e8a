"""Segmentation models: the registry (:func:`create_model`, the one entry point), the
paper's networks that smp does not provide (the authors' FCN, MFFENet), and offline-safe
pretrained weights (:mod:`casdesk.ml.models.weights`)."""

from casdesk.ml.models.registry import (
    PAPER_MODELS,
    REGISTRY,
    ModelSpec,
    count_parameters,
    create_model,
    describe_models,
    encoder_of,
    list_models,
    model_summary,
    parameter_count,
    parameter_groups,
    resolve_spec,
    split_parameters,
)
from casdesk.ml.models.weights import WeightsUnavailable

__all__ = ["PAPER_MODELS", "REGISTRY", "ModelSpec", "WeightsUnavailable", "count_parameters",
           "create_model", "describe_models", "encoder_of", "list_models", "model_summary",
           "parameter_count", "parameter_groups", "resolve_spec", "split_parameters"]
