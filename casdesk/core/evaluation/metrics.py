"""Segmentation metrics as pure functions over a confusion matrix (numpy only).

The confusion matrix is accumulated over the *whole* evaluation set (not averaged per
tile), as in the CAS Landslide Dataset paper: rows are the true class, columns the
predicted class; class 0 is background, class 1 is landslide. Pixels outside the image
footprint (nodata) or outside the tile (padding) are excluded with a validity mask.

Zero division: a ratio whose denominator is zero is defined as **1.0 when the class is
absent from both the reference and the prediction** (nothing to find and nothing wrongly
found, e.g. the landslide IoU of a tile set without landslides that the model leaves
empty) and **0.0 otherwise**. The results are therefore always finite, so means and
tables never show NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BACKGROUND = 0
LANDSLIDE = 1
CLASS_NAMES = ("background", "landslide")


def confusion_matrix(
    target: np.ndarray,
    pred: np.ndarray,
    num_classes: int = 2,
    valid: np.ndarray | None = None,
    ignore_index: int | None = 255,
) -> np.ndarray:
    """(K, K) int64 counts of pixels, rows = true class, columns = predicted class.

    ``target`` and ``pred`` are integer label arrays of the same shape. Pixels where
    ``valid`` is False, or where ``target == ignore_index``, are not counted. Values
    outside ``[0, K)`` in ``pred`` raise, as they point at a bug upstream.
    """
    target = np.asarray(target)
    pred = np.asarray(pred)
    if target.shape != pred.shape:
        raise ValueError(f"target shape {target.shape} != prediction shape {pred.shape}")
    keep = np.ones(target.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if ignore_index is not None:
        keep = keep & (target != ignore_index)
    t = target[keep].astype(np.int64, copy=False)
    p = pred[keep].astype(np.int64, copy=False)
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"target holds classes outside 0..{num_classes - 1}")
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"prediction holds classes outside 0..{num_classes - 1}")
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def add_confusion(total: np.ndarray | None, cm: np.ndarray) -> np.ndarray:
    """Accumulate ``cm`` into ``total`` (``None`` starts a new total)."""
    return cm.astype(np.int64).copy() if total is None else total + cm


def _ratio(num: np.ndarray, den: np.ndarray, absent: np.ndarray) -> np.ndarray:
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    out = np.where(absent, 1.0, 0.0)
    np.divide(num, den, out=out, where=den > 0)
    return out


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, IoU and F1 (arrays of length K) and TP/FP/FN counts."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    absent = (tp + fp + fn) == 0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": _ratio(tp, tp + fp, absent),
        "recall": _ratio(tp, tp + fn, absent),
        "iou": _ratio(tp, tp + fp + fn, absent),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, absent),
    }


def segmentation_metrics(
    cm: np.ndarray, class_names: Sequence[str] = CLASS_NAMES
) -> dict[str, float]:
    """The paper's table from a (K, K) confusion matrix; all values are fractions in [0, 1].

    Keys: ``precision``/``recall``/``iou``/``f1_landslide`` (landslide class),
    ``iou_background``/``f1_background``, ``miou`` (IoU averaged over classes),
    ``f1_mean`` (F1 averaged over classes: the paper's "F1 score" column),
    ``accuracy`` (overall pixel accuracy) and ``pixels`` (counted pixels).
    For K > 2, every class gets ``iou_<name>`` and ``f1_<name>``.
    """
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    if cm.shape != (k, k) or k < 2:
        raise ValueError(f"expected a square confusion matrix with K >= 2, got {cm.shape}")
    names = list(class_names) + [f"class{i}" for i in range(len(class_names), k)]
    pc = per_class(cm)
    total = int(cm.sum())
    fg = LANDSLIDE
    out: dict[str, float] = {
        "precision": float(pc["precision"][fg]),
        "recall": float(pc["recall"][fg]),
        "iou": float(pc["iou"][fg]),
        "f1_landslide": float(pc["f1"][fg]),
        "miou": float(pc["iou"].mean()),
        "f1_mean": float(pc["f1"].mean()),
        "accuracy": float(np.trace(cm) / total) if total else 1.0,
        "pixels": float(total),
    }
    for i in range(k):
        out[f"iou_{names[i]}"] = float(pc["iou"][i])
        out[f"f1_{names[i]}"] = float(pc["f1"][i])
    return out


# Order and labels for printed tables (CLI, GUI run comparison).
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("precision", "Precision (landslide)"),
    ("recall", "Recall (landslide)"),
    ("iou", "IoU (landslide)"),
    ("f1_landslide", "F1 (landslide)"),
    ("iou_background", "IoU (background)"),
    ("f1_background", "F1 (background)"),
    ("miou", "mIoU (class mean)"),
    ("f1_mean", "F1 (class mean, paper)"),
    ("accuracy", "Overall accuracy"),
)


def format_table(metrics: dict[str, float]) -> str:
    """Two-column text table of the paper metrics, values in percent."""
    width = max(len(label) for _, label in TABLE_COLUMNS)
    lines = []
    for key, label in TABLE_COLUMNS:
        if key in metrics:
            lines.append(f"{label:<{width}}  {100.0 * metrics[key]:6.2f} %")
    return "\n".join(lines)
