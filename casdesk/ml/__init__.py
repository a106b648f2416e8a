"""Deep learning for casdesk: models, data, training, evaluation (torch; never Qt).

Importing this package is cheap; the heavy modules (torch, smp) load when a submodule is
imported: ``from casdesk.ml.training.trainer import train, TrainConfig``.
"""
