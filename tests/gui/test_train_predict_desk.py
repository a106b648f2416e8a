"""Train and Predict tabs as a user reads them (issue 19): plain axes labelled steps or epochs,
the encoder in the model names and the runs table, ten visible runs, the split named after
the project's sensors, and Predict offering the project's runs by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from casdesk.core.project.catalog import Catalog
from casdesk.gui.predict.models import (
    DEFAULT_ENCODERS,
    SMP_DEFAULT_ENCODER,
    effective_encoder,
    model_title,
)
from casdesk.gui.training.plots import EPOCH_AXIS, STEP_AXIS, TrainingPlots


@pytest.fixture()
def window(tiny_window):
    """The main window with the tiny training project open (tests/gui/conftest.py)."""
    return tiny_window


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import torch

    from casdesk.ml.modelfile import save_model_file
    from casdesk.ml.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("unet", encoder="mobilenet_v2", in_channels=3, classes=1)
    meta = {"architecture": "unet", "encoder": "mobilenet_v2", "in_channels": 3, "bands": 3, "classes": 1,
            "threshold": 0.5, "tile_size": [64, 64], "normalization": {"mean": [80.0] * 3, "std": [40.0] * 3}}
    path = tmp_path_factory.mktemp("runs") / "run0001-unet" / "model.pt"
    path.parent.mkdir(parents=True)
    save_model_file(path, model, meta)
    return path


def add_runs(project: Path, runs: list[tuple[str, dict, str | None]]) -> list[int]:
    ids = []
    with Catalog.open(project) as cat, cat.transaction() as db:
        for name, config, model_path in runs:
            cur = db.execute(
                "INSERT INTO runs(name, status, config, started, duration_s, model_path, best_metrics)"
                " VALUES (?, 'finished', ?, '2026-01-01', 60, ?, ?)",
                (name, json.dumps(config), model_path, json.dumps({"miou": 0.42})),
            )
            ids.append(int(cur.lastrowid))
    return ids


def test_loss_and_lr_axes_are_plain_fractional_epochs_not_si_scaled(qtbot) -> None:
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(900, 500)
    plots.show()
    qtbot.waitExposed(plots)
    for batch in range(15, 41):  # the first 40 % of epoch 1: x from 0.15 to 0.40
        plots.add_batch({"epoch": 1, "batch": batch, "batches": 100, "loss": 0.5, "lr": 0.001})
    qtbot.waitUntil(lambda: all(0.39 <= p.getAxis("bottom").range[1] < 1.0 for p in (plots.loss_plot, plots.lr_plot)),
                    timeout=2000)
    for plot in (plots.loss_plot, plots.lr_plot):
        bottom, left = plot.getAxis("bottom"), plot.getAxis("left")
        assert bottom.labelText == STEP_AXIS and "epoch" in bottom.labelString()
        assert "x0.001" not in bottom.labelString() and bottom.autoSIPrefixScale == 1.0
        assert "x0.001" not in left.labelString() and left.autoSIPrefixScale == 1.0
        assert bottom.range[0] < 0.2 and bottom.range[1] < 1.0  # ticks in epochs, not 150-400
    # the engine reads the loss back every few batches (NaN before the first): no NaN points
    n = len(plots.step_loss.x)
    plots.add_batch({"epoch": 1, "batch": 41, "batches": 100, "loss": float("nan"), "lr": 0.001})
    assert len(plots.step_loss.x) == n and len(plots.lr.x) == n + 1
    plots.add_epoch({"epoch": 1, "train": {"loss": 0.4}, "val": {"loss": 0.5, "miou": 0.3}})
    assert plots.metric_plot.getAxis("bottom").labelText == EPOCH_AXIS


def test_the_runs_table_has_an_encoder_column_and_shows_ten_rows(qtbot, window, tiny_project) -> None:
    runs = [(f"run {i}", {"model": "deeplabv3plus", "encoder": "resnet18" if i % 2 else None}, None)
            for i in range(12)]
    add_runs(tiny_project, runs)
    panel = window.panels["Train"]
    window.tabs.setCurrentWidget(panel)
    window.show()
    qtbot.waitExposed(window)
    assert window.size().height() <= 900  # the default window
    panel.refresh_runs()
    table = panel.runs
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    enc = headers.index("Encoder")
    assert headers[enc - 1] == "Model"
    assert table.rowCount() == 12
    encoders = {table.item(r, enc).text() for r in range(12)}
    assert encoders == {"resnet18", "resnet50"}  # configured, or the model's default (not "")
    qtbot.waitUntil(lambda: table.viewport().height() > 0, timeout=2000)
    last_visible = table.rowAt(table.viewport().height() - 1)
    visible = table.rowCount() if last_visible < 0 else last_visible  # rowAt: the partly shown row
    assert visible >= 10, f"only {visible} runs visible at the default window size"


def test_model_names_show_the_encoder_actually_used(qtbot) -> None:
    from casdesk.gui.training.form import TrainingForm

    form = TrainingForm()
    qtbot.addWidget(form)
    form.model.setCurrentIndex(form.model.findData("deeplabv3plus"))
    assert form.model.currentText() == "DeepLabV3+ (resnet50)"
    form.encoder.setText("resnet18")
    assert form.model.currentText() == "DeepLabV3+ (resnet18)"
    assert form.config_values()["model"] == "deeplabv3plus" and form.config_values()["encoder"] == "resnet18"
    form.encoder.clear()
    assert form.model.currentText() == "DeepLabV3+ (resnet50)"


def test_default_encoders_match_the_model_registry() -> None:
    from casdesk.ml.models import registry

    for m in registry.list_models():
        name = m["name"]
        if name.startswith("smp:"):
            assert m["default_encoder"] == SMP_DEFAULT_ENCODER
        else:
            assert DEFAULT_ENCODERS[name] == m["default_encoder"], name
    assert effective_encoder("unet", None) == "resnet50" and model_title("fcn", None) == "FCN (vgg16)"


def test_the_split_is_named_after_the_projects_sensors(qtbot, window, tiny_project) -> None:
    panel = window.panels["Train"]
    assert panel._project_sensors() == ("UAV", "SAT")  # the tiny project has both
    with Catalog.open(tiny_project) as cat, cat.transaction() as db:
        db.execute("UPDATE subdatasets SET sensor = 'UAV'")  # a UAV-only project (as the demo)
    assert panel._project_sensors() == ("UAV",)
    calls = []
    panel.enqueue = lambda planned, config, existing_split=None, resume=None: calls.append(planned)
    panel.start_from_form()
    assert calls[0].split_name.endswith("-UAV-qc") and "SAT" not in calls[0].split_name


def test_predict_offers_the_projects_runs_by_name(qtbot, window, tiny_project, tiny_model) -> None:
    missing = tiny_model.parent.parent / "gone" / "model.pt"
    add_runs(tiny_project, [("old run", {"model": "unet", "encoder": "mobilenet_v2"}, str(tiny_model)),
                            ("lost run", {"model": "unet"}, str(missing)),
                            ("newest run", {"model": "deeplabv3plus", "encoder": None}, str(tiny_model))])
    panel = window.panels["Predict"]
    window.tabs.setCurrentWidget(panel)
    window.show()
    qtbot.waitUntil(lambda: panel.model_chooser.count() >= 3, timeout=2000)
    chooser = panel.model_chooser
    texts = [chooser.itemText(i) for i in range(chooser.count())]
    assert texts[0].startswith("newest run") and "DeepLabV3+ (resnet50)" in texts[0]
    assert any(t.startswith("old run") for t in texts)
    assert not any("lost run" in t for t in texts)  # its model file is gone
    assert texts[-1] == "Model file..."  # and a file picker
    assert chooser.current_path() == tiny_model  # the newest run is chosen: nothing to browse to
    qtbot.waitUntil(lambda: panel.model_info is not None, timeout=20_000)
    assert panel.model_info.path == tiny_model
    # a model file from elsewhere is offered beside the runs
    other = tiny_model.parent.parent / "elsewhere.pt"
    other.write_bytes(tiny_model.read_bytes())
    panel.set_model(other)
    assert chooser.currentText() == "file: elsewhere.pt"
    qtbot.waitUntil(lambda: panel.model_info is not None and panel.model_info.path == other, timeout=20_000)
    assert np.isfinite(panel.model_info.parameters)
