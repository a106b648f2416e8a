"""Train tab extras: the per-epoch confusion table and the validation previews."""

from __future__ import annotations

import numpy as np

from casdesk.core.evaluation.runs import list_runs, run_epochs
from casdesk.gui.training.preview import ALPHA, COLOURS, confusion_overlay


def test_a_short_run_fills_the_confusion_table_and_shows_previews(qtbot, window):
    panel = window.panels["Train"]
    form = panel.form
    form.model.setCurrentIndex(form.model.findData("smp:Unet"))
    form.encoder.setText("resnet18")
    form.epochs.setValue(1)
    form.batch_size.setValue(4)
    form.tiles.setCurrentIndex(form.tiles.findData("all"))
    form.augment.setChecked(False)
    panel.start_from_form()
    qtbot.waitUntil(lambda: not panel.busy and panel.runner is None, timeout=120_000)
    qtbot.waitUntil(lambda: bool(panel.preview.thumbs) and not panel.preview.busy, timeout=60_000)

    counts = panel.confusion.counts
    assert counts is not None and sum(map(sum, counts)) > 0
    assert panel.confusion.item(1, 1).text().startswith("TP ") and "%" in panel.confusion.item(1, 1).text()
    assert 1 <= len(panel.preview.thumbs) <= 4
    assert not panel.preview.thumbs[0].pixmap().isNull()
    assert "Validation tiles" in panel.preview.caption.text()

    run = list_runs(window.context.catalog)[0]  # the counts are stored with the epoch record
    assert run_epochs(window.context.catalog, run.id)[-1]["val"]["confusion"] == counts
    assert (panel.last_run_dir / "log.csv").read_text().count("\n") == 2


def test_confusion_overlay_colours_each_outcome():
    rgb = np.zeros((1, 4, 3), np.uint8)
    pred = np.array([[True, True, False, False]])
    truth = np.array([[True, False, True, False]])
    out = confusion_overlay(rgb, pred, truth, np.ones((1, 4), bool))
    assert out[0, 0, 1] > out[0, 0, 0] and out[0, 1, 0] > out[0, 1, 1] and out[0, 2, 2] > out[0, 2, 0]
    assert tuple(out[0, 3, :3]) == (0, 0, 0)  # true negative: the image is untouched
    # each outcome is the image blended with its own palette colour (one palette for every view)
    for col, key in enumerate(("tp", "fp", "fn")):
        expected = np.round(ALPHA * np.asarray(COLOURS[key], np.float32)).astype(int)
        assert np.abs(out[0, col, :3].astype(int) - expected).max() <= 1, key
