"""The loop's last step (issue 19): from the editor, "Train on these tiles" stores a split of
the open subdataset's (or scene's) labelled tiles plus a random sample of unlabelled ones and
queues a short run in the Train tab."""

from __future__ import annotations

import pytest

from casdesk.core.dataset.splits import load_split
from casdesk.core.project.catalog import Catalog
from casdesk.gui.training.panel import QUICK_EPOCHS


@pytest.fixture()
def window(tiny_window):
    """The main window with the tiny training project open (tests/gui/conftest.py)."""
    return tiny_window


def test_train_on_these_tiles_from_the_editor(qtbot, window, tiny_project) -> None:
    with Catalog.open(tiny_project) as cat, cat.transaction() as db:  # two unlabelled uav tiles
        db.execute("UPDATE tiles SET label_pixels = 0 WHERE name IN ('t1', 't3')")
    editor, trainer = window.panels["Label"], window.panels["Train"]
    queued = []
    trainer.enqueue = lambda planned, config, existing_split=None, resume=None: queued.append(
        (planned, config, existing_split))
    cat = window.context.catalog
    tile = next(t for t in cat.tiles() if t.name == "t5")  # a uav tile
    editor.open_target("tile", tile.id)
    qtbot.waitUntil(lambda: editor.target is not None and editor.target.tile_id == tile.id, timeout=5000)
    assert editor.train_action.isEnabled()

    ids, title = editor.training_sample()
    uav = {t.id: t for t in cat.tiles() if t.subdataset == "uav"}
    assert title == "uav" and set(ids) <= set(uav)
    labelled = {i for i, t in uav.items() if t.name not in ("t1", "t3")}
    assert labelled <= set(ids) and len(set(ids) - labelled) == 2  # 6 labelled + both unlabelled (<= 6)

    editor.train_action.trigger()
    [(planned, config, split)] = queued
    assert window.tabs.currentWidget() is trainer
    assert config["epochs"] <= QUICK_EPOCHS and config["qc_accepted_only"] is False
    parts = load_split(cat, split)
    assert set(parts) == set(ids) and {"train", "val"} <= set(parts.values())
    assert split in [trainer.form.split.itemData(i) for i in range(trainer.form.split.count())]


def test_train_on_tiles_refuses_a_single_tile(qtbot, window, monkeypatch) -> None:
    trainer = window.panels["Train"]
    shown = []
    monkeypatch.setattr("casdesk.gui.training.panel.show_error", lambda _p, title, msg, *a: shown.append(msg))
    trainer.enqueue = lambda *a, **k: pytest.fail("nothing may be queued")
    assert trainer.train_on_tiles([window.context.catalog.tiles()[0].id], "one") is None
    assert shown and "at least two tiles" in shown[0]
