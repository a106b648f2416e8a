"""Evaluation: confusion counts over a whole tile set, then the paper's metrics.

:func:`iter_confusion` is shared by training (validation each epoch) and :func:`evaluate`
(a model file against a project's split), so both report exactly the same numbers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from casdesk.core.dataset.splits import list_splits, load_split, split_id
from casdesk.core.evaluation.metrics import segmentation_metrics
from casdesk.core.jobs import CancelToken, Progress
from casdesk.core.project.catalog import Catalog
from casdesk.ml.device import describe_device, device_precision, precision_dtype, resolve_device
from casdesk.ml.errors import DataError, TrainingError
from casdesk.ml.modelfile import load_model_file
from casdesk.ml.training.augment import DeviceTransform
from casdesk.ml.training.data import (
    IGNORE_INDEX,
    Normalization,
    TileDataset,
    make_loader,
    select_tiles,
    worker_errors,
)
from casdesk.ml.training.losses import LossFn, predict_classes

NUM_CLASSES = 2  # metrics are always background/landslide


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def confusion_torch(logits: torch.Tensor, target: torch.Tensor, threshold: float) -> torch.Tensor:
    """(2, 2) int64 confusion counts ``[[TN, FP], [FN, TP]]`` on the logits' device.

    Sums of elementwise products only: no boolean indexing and no bincount, which would
    wait for the device to learn an output size (a host sync every batch).
    """
    pred = predict_classes(logits.detach(), threshold)
    valid = target != IGNORE_INDEX
    truth = (target == 1) & valid
    guess = (pred == 1) & valid
    tp = (truth & guess).sum()
    fn = truth.sum() - tp
    fp = guess.sum() - tp
    tn = valid.sum() - tp - fn - fp
    return torch.stack([tn, fp, fn, tp]).reshape(NUM_CLASSES, NUM_CLASSES)


def _forward(model: nn.Module, x: torch.Tensor, amp_dtype: torch.dtype | None) -> torch.Tensor:
    """Logits of a batch; on out-of-memory the batch is split in halves (down to one tile)."""
    try:
        with autocast(x.device, amp_dtype):
            return model(x).float()
    except torch.OutOfMemoryError as exc:
        if x.device.type == "cuda":
            torch.cuda.empty_cache()
        if x.shape[0] <= 1:
            raise TrainingError(
                "CUDA out of memory in validation/evaluation even for one tile",
                hint="use smaller tiles or another device (--device cpu)",
            ) from exc
        half = x.shape[0] // 2
        return torch.cat([_forward(model, x[:half], amp_dtype), _forward(model, x[half:], amp_dtype)])


def iter_confusion(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    *,
    threshold: float = 0.5,
    loss_fn: LossFn | None = None,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    cancel: CancelToken | None = None,
    transform: DeviceTransform | None = None,
) -> Generator[Progress, None, tuple[torch.Tensor, float, int, bool]]:
    """Run ``model`` over ``loader``; return (confusion, loss sum, samples, cancelled).

    ``loader`` yields :class:`~casdesk.ml.training.data.TileDataset` samples (wire image,
    target, params), completed on the device by ``transform``; or ready (image, target)
    pairs when ``transform`` is None. The loss sum is per sample (mean loss of a batch
    times its size), 0 without ``loss_fn``. Yields one Progress per batch; the counts
    stay on the device until the end (no host sync per batch). An out-of-memory batch is
    split, not fatal.
    """
    model.eval()
    cm = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    samples = 0
    total = len(loader)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    with torch.inference_mode():
        for i, batch in enumerate(worker_errors(loader)):
            if cancel is not None and cancel.cancelled:
                return cm, float(loss_sum), samples, True
            if transform is not None:
                x, y = transform(batch[0], batch[1], None, memory)
            else:
                x = batch[0].to(device, non_blocking=True, memory_format=memory)
                y = batch[1].to(device, non_blocking=True).long()
            logits = _forward(model, x, amp_dtype)
            if loss_fn is not None:
                loss_sum += loss_fn(logits, y).double() * x.shape[0]
            cm += confusion_torch(logits, y, threshold)
            samples += x.shape[0]
            yield Progress(i + 1, total, f"evaluating {i + 1}/{total}", {"event": "eval_batch"})
    return cm, float(loss_sum), samples, False


@dataclass
class EvalResult:
    """Metrics of a model on a tile set (fractions in [0, 1]) and what was evaluated."""

    metrics: dict[str, float]
    confusion: list[list[int]]
    tiles: int
    split: str | None
    part: str | None
    device: str
    model: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    precision: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "confusion": self.confusion,
            "tiles": self.tiles,
            "split": self.split,
            "part": self.part,
            "device": self.device,
            "model": self.model,
            "run_id": self.run_id,
            "precision": self.precision,
        }


def evaluate(
    model_file: str | Path,
    project: str | Path | Catalog,
    split: str | None = None,
    part: str = "val",
    *,
    device: str = "auto",
    batch_size: int = 4,
    num_workers: int = 0,
    qc_accepted_only: bool = True,
    record: bool = True,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, EvalResult]:
    """Evaluate a model file (``model.pt``, or a run's ``best.ckpt``/``last.ckpt``) on the
    ``part`` tiles of ``split`` of a project.

    ``split`` None: the split the model was trained with when the project has it, else
    every (QC-accepted) tile. ``record``: store the result as an ``evaluate`` run in the
    catalog. Returns an :class:`EvalResult`; a cancelled evaluation raises
    :class:`~casdesk.core.errors.Cancelled`.
    """
    from casdesk.core.errors import Cancelled

    own = not isinstance(project, Catalog)
    catalog = project if isinstance(project, Catalog) else Catalog.open(project)
    try:
        dev = resolve_device(device)
        model, meta = load_model_file(model_file, dev)
        precision = device_precision(dev)
        if dev.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        known = {s["name"] for s in list_splits(catalog)}
        if split is None and meta.get("split") in known:
            split = meta["split"]
        parts = load_split(catalog, split) if split is not None else None
        use_part = part if parts is not None else None
        tiles = select_tiles(catalog, parts, use_part, qc_accepted_only)
        if not tiles:
            raise DataError(
                f"no tiles with masks to evaluate ({'split ' + split + ', ' + part if split else 'whole project'})",
                catalog.path,
                "check the split and the QC decisions",
            )
        norm = Normalization.from_dict(meta["normalization"])
        dataset = TileDataset(tiles, norm)
        loader = make_loader(dataset, batch_size, range(len(dataset)), num_workers=num_workers,
                             pin_memory=dev.type == "cuda", prefetch_factor=2)
        started = time.monotonic()
        cm, _, _, cancelled = yield from iter_confusion(
            model, loader, dev, threshold=float(meta.get("threshold", 0.5)),
            amp_dtype=precision_dtype(precision), cancel=cancel, transform=dataset.transform(dev),
            channels_last=dev.type == "cuda",
        )
        if cancelled:
            raise Cancelled()
        counts = cm.cpu().numpy().astype(np.int64)
        metrics = segmentation_metrics(counts)
        result = EvalResult(
            metrics=metrics,
            confusion=counts.tolist(),
            tiles=len(tiles),
            split=split,
            part=use_part,
            device=describe_device(dev),
            precision=precision,
            model={k: meta.get(k) for k in ("architecture", "encoder", "in_channels", "classes", "split", "run_id")},
        )
        if record and not catalog.readonly:
            result.run_id = _record(catalog, model_file, result, time.monotonic() - started)
        return result
    finally:
        if own:
            catalog.close()


def _record(catalog: Catalog, model_file: str | Path, result: EvalResult, duration: float) -> int:
    sid = split_id(catalog, result.split) if result.split else None
    config = {"model_file": str(Path(model_file).absolute()), "part": result.part, "tiles": result.tiles}
    return catalog.runs.add_evaluation(
        f"evaluate {Path(model_file).name}", config, sid, result.device, duration,
        str(Path(model_file).absolute()), result.metrics,
    )
