"""Evaluation: the paper's metrics, training runs and comparison tables, experiments."""
