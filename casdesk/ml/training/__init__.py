"""Training: settings, data, losses, the trainer, distributed helpers, evaluation."""
