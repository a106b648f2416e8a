import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from casdesk.core.evaluation.runs import list_runs
from casdesk.core.project.catalog import Catalog
from casdesk.gui.shell.main_window import MainWindow


@pytest.fixture()
def panel(qtbot, tmp_path: Path, tiny_project: Path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    assert window.open_project(tiny_project)
    panel = window.panels["Train"]
    form = panel.form
    form.model.setCurrentIndex(form.model.findData("smp:Unet"))
    form.encoder.setText("resnet18")
    form.epochs.setValue(2)
    form.batch_size.setValue(4)
    form.tiles.setCurrentIndex(form.tiles.findData("all"))
    form.augment.setChecked(False)
    yield panel
    panel.shutdown()
    window.close()


def test_training_runs_off_the_gui_thread_and_plots_each_epoch(qtbot, panel):
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(threading.get_ident()))
    timer.start(20)
    panel.start_from_form()
    assert panel.busy
    qtbot.waitUntil(lambda: not panel.busy and panel.runner is None, timeout=180_000)
    timer.stop()
    assert len(ticks) > 5  # the GUI thread kept processing events while training ran
    assert len(panel.plots.train_loss.x) == 2  # one point per epoch
    assert len(panel.plots.metrics["miou"].x) == 2
    assert len(panel.plots.step_loss.x) >= 2
    runs = list_runs(panel.context.catalog)
    assert len(runs) == 1 and runs[0].status == "finished"
    shown = panel.runs.item(0, 8 + 5).text()  # mIoU column (after Id, Run, Model, Encoder, Split, Status, Device, Minutes)
    assert shown == f"{100 * runs[0].best['miou']:.2f}"
    assert panel.runs.item(0, 3).text() == "resnet18"  # the encoder column shows what was trained


def test_cancel_stops_within_a_batch_and_keeps_a_checkpoint(qtbot, panel):
    from PySide6.QtCore import Qt

    panel.form.epochs.setValue(50)
    panel.start_from_form()
    seen: dict[str, int] = {}

    def on_worker_progress(event):  # runs in the worker thread, as each batch reports
        data = event.data or {}
        if data.get("event") == "batch":
            step = (data["epoch"] - 1) * data["batches"] + data["batch"]
            if "cancel_at" not in seen:
                seen["cancel_at"] = step
                panel.runner.token.cancel()  # what the Cancel button does
            seen["last"] = step

    panel.runner._worker.progress.connect(on_worker_progress, Qt.ConnectionType.DirectConnection)
    qtbot.waitUntil(lambda: "cancel_at" in seen, timeout=120_000)
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.busy and panel.runner is None, timeout=60_000)
    assert seen["last"] <= seen["cancel_at"] + 1  # at most the batch in flight finished
    run = list_runs(panel.context.catalog)[0]
    assert run.status == "cancelled"
    assert "None" not in panel.status.text() and "ancelled" in panel.status.text()
    from casdesk.ml.training.trainer import read_checkpoint

    ckpt = read_checkpoint(Path(run.out_dir) if run.out_dir else Path(panel.last_run_dir))
    assert ckpt["format"]


def test_a_broken_tile_shows_a_dialog_and_the_panel_stays_usable(qtbot, panel, tiny_project: Path):
    with Catalog.open(tiny_project) as cat:
        tile = cat.tiles()[0]
    tile.image_path.write_bytes(b"not a tiff at all")
    panel.start_from_form()
    qtbot.waitUntil(lambda: not panel.busy and panel.runner is None, timeout=120_000)

    def dialogs():
        return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]

    qtbot.waitUntil(lambda: bool(dialogs()))
    box = dialogs()[0]
    assert "Traceback" not in box.text()
    box.close()
    assert panel.start_button.isEnabled()


def test_table5_preset_queues_twelve_runs(qtbot, panel, monkeypatch):
    monkeypatch.setattr(panel, "_start_next", lambda: None)
    runs = panel.queue_experiment("Table 5: four models x UAV / SAT / UAV+SAT")
    assert len(runs) == len(panel.queue) == 12
    assert {q["planned"].model for q in panel.queue} == {"fcn", "unet", "deeplabv3plus", "mffenet"}
    assert {q["planned"].sensors for q in panel.queue} == {("UAV",), ("SAT",), ("UAV", "SAT")}
    assert all(q["config"]["model"] == q["planned"].model for q in panel.queue)
    # the paper recipe, as `casdesk experiment` runs it, whatever the form's recipe and loss say
    from casdesk.ml.training.config import TrainConfig

    panel.form.loss.setCurrentText("focal")
    panel.form.lr.setValue(0.1)
    panel.queue.clear()
    panel.queue_experiment("Table 5: four models x UAV / SAT / UAV+SAT")
    for q in panel.queue:
        cfg = q["config"]
        assert cfg["recipe"] == "paper" and cfg["loss"] == "dice" and cfg["lr"] == 0.01 and cfg["classes"] == 2
        assert cfg["encoder"] is None and cfg["epochs"] == panel.form.epochs.value()
        TrainConfig(**cfg)  # what the run is started with
    panel.queue.clear()


def test_table6_and_7_presets(qtbot, panel, monkeypatch):
    monkeypatch.setattr(panel, "_start_next", lambda: None)
    runs = panel.queue_experiment("Table 6: QC-filtered vs unfiltered SAT")
    assert [r.qc_accepted_only for r in runs] == [True, False]
    panel.queue.clear()
    # the tiny project has no Moxitaidi region: a clear error, nothing queued
    assert panel.queue_experiment("Table 7: hold out a region (Moxitaidi)") == []
    assert panel.queue == []
    shown = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert any("moxitaidi" in w.text().lower() for w in shown)
    for w in shown:
        w.close()
