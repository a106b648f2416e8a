"""The Train tab stays responsive: the devices are listed by a child process, torch is
imported in a worker with its libraries loaded outside the GIL, and the live plots draw one
plot at a time with cached axes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtWidgets import QGraphicsItem

from casdesk.gui.kit import devices as devices_module
from casdesk.gui.kit.device_probe import probe_main, read_result
from casdesk.gui.kit.devices import DeviceProbe
from casdesk.gui.training.plots import TrainingPlots

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture()
def fresh_probe(monkeypatch):
    monkeypatch.setattr(devices_module, "_found", None)


def test_probe_main_writes_the_devices(tmp_path):
    out = tmp_path / "devices.json"
    assert probe_main(str(out), nice=False) == 0
    found = read_result(str(out))
    assert found is not None and found[-1] == ("cpu", "cpu")
    assert read_result(str(tmp_path / "missing.json")) is None


def test_device_probe_runs_a_child_and_caches_its_answer(qtbot, fresh_probe):
    probe = DeviceProbe()
    with qtbot.waitSignal(probe.found, timeout=120_000) as signal:
        assert probe.start()
    assert ("cpu", "cpu") in signal.args[0]
    assert DeviceProbe.cached() == signal.args[0] and not probe.is_running()
    assert not DeviceProbe().start()  # once per session


def test_a_failing_probe_leaves_the_menu_as_it_is(qtbot, fresh_probe, monkeypatch):
    monkeypatch.setattr(devices_module, "probe_command",
                        lambda out: (sys.executable, ["-c", "raise SystemExit(3)"], {}))
    probe = DeviceProbe()
    with qtbot.waitSignal(probe.found, timeout=30_000) as signal:
        probe.start()
    assert signal.args[0] == [] and DeviceProbe.cached() is None


def test_train_tab_lists_devices_without_torch_on_the_gui_thread(qtbot, fresh_probe, monkeypatch, tmp_path):
    """Showing the tab starts the child probe and the torch warm-up; the menu fills from the
    probe's answer."""
    from casdesk.gui.shell.context import ProjectContext
    from casdesk.gui.training import panel as panel_module

    fake = json.dumps([["cuda:0", "cuda:0 Fake GPU (80 GB)"], ["cpu", "cpu"]])
    monkeypatch.setattr(devices_module, "probe_command", lambda out: (
        sys.executable, ["-c", f"import pathlib; pathlib.Path({out!r}).write_text({fake!r})"], {}))
    warmed: list[str] = []
    monkeypatch.setattr(panel_module, "import_torch_quietly", lambda: warmed.append("w"))
    monkeypatch.setattr(panel_module, "torch_imported", lambda: False)
    panel = panel_module.TrainingPanel(ProjectContext())
    qtbot.addWidget(panel)
    try:
        panel.show()
        qtbot.waitUntil(lambda: panel.form.device.findData("cuda:0") >= 0, timeout=30_000)
        qtbot.waitUntil(lambda: warmed == ["w"] and not panel.device_runner.is_running(), timeout=30_000)
        assert panel.form.device.itemText(panel.form.device.findData("cuda:0")) == "cuda:0 Fake GPU (80 GB)"
    finally:
        panel.shutdown()


def test_torch_libraries_load_through_the_gil_free_dlopen():
    """In a fresh interpreter: torch's extension module and the libraries torch loads with
    ctypes are opened through the ctypes *function call* first (which releases the GIL),
    and everything is put back afterwards."""
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    code = textwrap.dedent("""
        import ctypes, sys
        from casdesk.gui.kit import torch_import as ti
        real = ti._libc_dlopen()
        opened = []
        def spy(name, mode):
            opened.append(name.decode())
            return real(name, mode)
        ti._libc_dlopen = lambda: spy
        before = (ctypes._dlopen, list(sys.meta_path))
        torch = ti.import_torch_quietly()
        assert float(torch.ones(3).sum()) == 3.0
        assert (ctypes._dlopen, list(sys.meta_path)) == before
        assert any("/torch/_C." in p for p in opened), opened
        assert any("libtorch_global_deps" in p for p in opened), opened
        opened.clear()
        ti.import_ml_quietly()  # the model packages: their extension modules too (triton, PIL, ...)
        assert "segmentation_models_pytorch" in sys.modules
        assert any(".so" in p and "/torch/" not in p for p in opened), opened
        assert (ctypes._dlopen, list(sys.meta_path)) == before
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_plots_draw_one_plot_per_turn_with_cached_axes(qtbot):
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(900, 500)
    plots.show()
    for plot in (plots.loss_plot, plots.metric_plot, plots.lr_plot):
        for side in ("bottom", "left"):
            assert plot.getAxis(side).cacheMode() == QGraphicsItem.CacheMode.DeviceCoordinateCache
    drawn: list[str] = []
    plots.step_loss.curve.sigPlotChanged.connect(lambda *_: drawn.append("loss"))
    plots.lr.curve.sigPlotChanged.connect(lambda *_: drawn.append("lr"))
    for batch in range(1, 21):
        plots.add_batch({"epoch": 1, "batch": batch, "batches": 40, "epochs": 3, "loss": 1 / batch, "lr": 0.01})
    assert drawn == []  # 20 batches, nothing drawn yet
    qtbot.waitUntil(lambda: "lr" in drawn, timeout=5_000)
    assert drawn == ["loss", "lr"]  # each plot once, in separate turns
    assert plots.step_loss.curve.getData()[0].size == 20
    assert plots.loss_plot.getAxis("bottom").range[1] >= 3.0  # the whole run's epochs: x stays put
    plots.clear()
    assert plots.loss_plot.getPlotItem().getViewBox().autoRangeEnabled()[0]


def test_plots_are_first_painted_one_per_turn(qtbot):
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(900, 500)
    plots.show()
    assert plots.loss_plot.updatesEnabled()
    assert not plots.metric_plot.updatesEnabled() and not plots.lr_plot.updatesEnabled()
    qtbot.waitUntil(lambda: plots.metric_plot.updatesEnabled(), timeout=5_000)
    assert not plots.lr_plot.updatesEnabled()  # the next one a turn later
    qtbot.waitUntil(lambda: plots.lr_plot.updatesEnabled(), timeout=5_000)
    plots.hide()
    plots.show()  # only the first show staggers
    assert plots.metric_plot.updatesEnabled() and plots.lr_plot.updatesEnabled()


def test_axes_stay_put_while_a_run_trains(qtbot):
    """An axis whose range moves is laid out and repainted again (10-30 ms of the GUI thread):
    during a run the loss axis changes only when a loss leaves it, and the metric plot's
    x axis spans the run's epochs from the start."""
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(900, 500)
    plots.show()
    box = plots.loss_plot.getPlotItem().getViewBox()
    plots.add_batch({"epoch": 1, "batch": 1, "batches": 40, "epochs": 5, "loss": 0.8, "lr": 0.01})
    plots.draw_now()
    first = box.viewRange()[1]
    assert first == pytest.approx([0.0, 1.0])
    for batch in range(2, 41):  # the loss falls to a new lowest value at every batch
        plots.add_batch({"epoch": 1, "batch": batch, "batches": 40, "epochs": 5, "loss": 0.8 / batch, "lr": 0.01})
    plots.add_epoch({"epoch": 1, "train": {"loss": 0.3}, "val": {"loss": 0.4, "miou": 0.3}})
    plots.draw_now()
    assert box.viewRange()[1] == pytest.approx(first)
    assert plots.metric_plot.getPlotItem().getViewBox().viewRange()[0][1] >= 5.0
    plots.add_batch({"epoch": 2, "batch": 1, "batches": 40, "epochs": 5, "loss": 2.0, "lr": 0.01})
    assert box.viewRange()[1] == pytest.approx(first)  # set on the loss plot's own drawing turn
    qtbot.waitUntil(lambda: box.viewRange()[1] == pytest.approx([0.0, 2.5]), timeout=5_000)  # a loss above the axis widens it
    plots.clear()
    assert box.autoRangeEnabled()[1]  # a past run's history is shown with auto range
    assert plots.metric_plot.getPlotItem().getViewBox().autoRangeEnabled()[0]


def test_the_last_epochs_points_are_inside_the_frame(qtbot) -> None:
    # a 1-epoch run: the last batch, the epoch's train loss and the validation point sit at
    # x = 1; the x axes leave room beside them instead of cutting them at the frame
    from casdesk.gui.training.plots import TrainingPlots

    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(900, 500)
    plots.show()
    for b in (1, 2, 3, 4):
        plots.add_batch({"epoch": 1, "batch": b, "batches": 4, "epochs": 1, "loss": 0.8, "lr": 0.01})
    for plot in (plots.loss_plot, plots.metric_plot):
        box = plot.getPlotItem().getViewBox()
        qtbot.waitUntil(lambda box=box: box.viewRange()[0][1] > 1.0, timeout=5_000)
        low, high = box.viewRange()[0]
        assert low <= -0.04 and high >= 1.04  # a point's radius (5 px) fits in 5 % of the width
