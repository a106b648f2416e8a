"""The state one training run carries between its parts (:mod:`casdesk.ml.training.trainer`).

:class:`TrainerState` declares what the run knows: the configuration and processes, the
data, the model, and the progress a checkpoint saves (epoch, position in the epoch, the
epoch's running loss and confusion counts, the best epoch so far, the history). The parts
of the run build on it, each one responsibility:

* :class:`~casdesk.ml.training.checkpoint.Checkpoints`: save and restore that progress;
* :class:`~casdesk.ml.training.validation.Validation`: validate, close an epoch, early
  stopping;
* :class:`~casdesk.ml.training.batches.BatchLoop`: the batches of an epoch, gradient
  accumulation, cancelling and out-of-memory handling;
* ``casdesk.ml.training.trainer._Trainer``: setup and the epoch loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from casdesk.core.jobs import CancelToken, Progress
from casdesk.core.project.catalog import Catalog
from casdesk.ml.models.registry import ModelSpec
from casdesk.ml.training import distributed
from casdesk.ml.training.config import TrainConfig
from casdesk.ml.training.net import TrainNet
from casdesk.ml.training.run_data import TrainData
from casdesk.ml.training.runbook import RunBook


class TrainerState:
    """What one training run knows; the attributes are set by ``_Trainer`` (its
    ``__init__`` and ``_setup``) and by :meth:`Checkpoints._load_state`."""

    # the run: configuration, processes, catalog
    config: TrainConfig
    ctx: distributed.DistContext
    device: torch.device
    device_text: str
    cancel: CancelToken | None
    ckpt: dict[str, Any] | None
    catalog: Catalog
    book: RunBook
    split: str
    # what trains
    data: TrainData | None
    net: TrainNet
    spec: ModelSpec
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    batch_size: int
    grad_accum: int
    # progress, saved in checkpoints
    epoch: int
    sample_offset: int
    epoch_loss: torch.Tensor
    epoch_cm: torch.Tensor
    epoch_samples: int
    best_miou: float
    best_epoch: int | None
    best_metrics: dict[str, float]
    bad_epochs: int
    history: list[dict[str, Any]]
    elapsed_before: float
    t_start: float

    @property
    def run_dir(self) -> Path:
        return self.book.run_dir

    def _batches_per_epoch(self) -> int:
        assert self.data is not None
        return self.data.batches_per_epoch(self.batch_size)

    def _elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.t_start)

    def _note(self, message: str) -> Progress:
        return Progress(0, 0, message, {"event": "note"})
