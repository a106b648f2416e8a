"""Metrics against hand-computed values on known confusion matrices."""

from __future__ import annotations

import numpy as np
import pytest

from casdesk.core.evaluation.metrics import confusion_matrix, format_table, segmentation_metrics


def test_confusion_matrix_counts_and_ignores() -> None:
    target = np.array([[0, 0, 1, 1], [1, 255, 0, 1]])
    pred = np.array([[0, 1, 1, 0], [1, 1, 0, 1]])
    valid = np.array([[True, True, True, True], [True, True, True, False]])
    cm = confusion_matrix(target, pred, valid=valid)
    # counted: (0,0) (0,1) (1,1) (1,0) (1,1) (0,0); ignore 255 and the invalid pixel
    assert cm.tolist() == [[2, 1], [1, 2]]


def test_confusion_matrix_rejects_bad_classes() -> None:
    with pytest.raises(ValueError):
        confusion_matrix(np.array([0, 1]), np.array([0, 2]))


def test_known_matrix_matches_hand_computation() -> None:
    cm = np.array([[50, 10], [5, 35]])  # rows: true background, true landslide
    m = segmentation_metrics(cm)
    assert m["precision"] == pytest.approx(35 / 45)
    assert m["recall"] == pytest.approx(35 / 40)
    assert m["iou"] == pytest.approx(35 / 50)
    assert m["f1_landslide"] == pytest.approx(70 / 85)
    assert m["iou_background"] == pytest.approx(50 / 65)
    assert m["f1_background"] == pytest.approx(100 / 115)
    assert m["miou"] == pytest.approx((35 / 50 + 50 / 65) / 2)
    assert m["f1_mean"] == pytest.approx((70 / 85 + 100 / 115) / 2)
    assert m["accuracy"] == pytest.approx(85 / 100)
    assert m["pixels"] == 100


def test_f1_is_harmonic_mean_of_precision_and_recall() -> None:
    m = segmentation_metrics(np.array([[900, 30], [20, 50]]))
    p, r = m["precision"], m["recall"]
    assert m["f1_landslide"] == pytest.approx(2 * p * r / (p + r))
    assert m["f1_mean"] != pytest.approx(m["f1_landslide"])


def test_zero_division_rules() -> None:
    # no landslide in reference and none predicted: landslide scores are perfect (1.0)
    m = segmentation_metrics(np.array([[100, 0], [0, 0]]))
    assert m["iou"] == 1.0 and m["f1_landslide"] == 1.0 and m["precision"] == 1.0
    assert m["miou"] == 1.0
    # landslides present, none predicted: precision 0 (no division by zero), recall 0
    m = segmentation_metrics(np.array([[90, 0], [10, 0]]))
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["iou"] == 0.0
    assert m["iou_background"] == pytest.approx(0.9)
    # empty matrix: nothing to judge, everything 1.0, finite
    m = segmentation_metrics(np.zeros((2, 2), dtype=np.int64))
    assert all(np.isfinite(v) for v in m.values())


def test_accumulating_matrices_equals_whole_set() -> None:
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, (4, 16, 16))
    p = rng.integers(0, 2, (4, 16, 16))
    total = sum(confusion_matrix(t[i], p[i]) for i in range(4))
    assert (total == confusion_matrix(t, p)).all()


def test_table_names_both_f1() -> None:
    text = format_table(segmentation_metrics(np.array([[50, 10], [5, 35]])))
    assert "F1 (landslide)" in text and "F1 (class mean, paper)" in text
