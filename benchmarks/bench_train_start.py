"""The first "Start training" of a session: how long the GUI thread stalls while torch loads
and the run starts.

A fresh interpreter (torch not imported), the app's runtime (``run_app``: garbage collected on
the GUI thread, the short switch interval, the startup objects frozen), a main window on a
small generated project (16 tiles of 64x64). The Train tab is shown (the devices are listed
and torch is imported in the background), then "Start training" is pressed at once or, with
``--wait-warm``, once the warm-up is done; a 5 ms timer measures the longest stall of the GUI
thread (wall time, and the GUI thread's own CPU time in its longest gap) from showing the tab
until the run (1 epoch) has finished.

The last line printed is one JSON object with the figures.

    python benchmarks/bench_train_start.py [--wait-warm] [--plain-import]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import rasterio  # noqa: E402

GOAL_STALL_MS = 50.0


def innermost_frames(frame) -> str:
    """The GUI thread's three innermost frames ("a.py:f < b.py:g < ...")."""
    names = []
    while frame is not None and len(names) < 3:
        names.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(names) or "(no Python frame: Qt)"


def StackWatch():  # noqa: N802 - the sampler of bench_edit_scale, naming the innermost frames
    from bench_edit_scale import StallWatch

    return StallWatch(0.03, innermost_frames)


def _write(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype) as dst:
        dst.write(data)


def make_project(folder: Path) -> Path:
    from casdesk.core.project.catalog import Catalog

    rng = np.random.default_rng(0)
    cat = Catalog.create(folder / "tiny")
    rows = []
    for i in range(16):
        sub = "uav" if i % 2 else "sat"
        img = rng.integers(0, 120, (3, 64, 64), dtype=np.uint8)
        mask = np.zeros((1, 64, 64), np.uint8)
        r, c = (4, 36)[i % 2], (36, 4)[i % 2]
        img[:, r:r + 20, c:c + 20] = 230
        mask[0, r:r + 20, c:c + 20] = 1
        ip, mp = folder / "t" / sub / f"{i}.tif", folder / "t" / sub / f"{i}_mask.tif"
        _write(ip, img)
        _write(mp, mask)
        rows.append({"name": f"t{i}", "subdataset": sub, "image_path": ip, "mask_path": mp, "width": 64,
                     "height": 64, "label_pixels": int(mask.sum()), "valid_pixels": 64 * 64})
    cat.add_tiles(rows)
    cat.ensure_subdataset("uav", sensor="UAV")
    cat.ensure_subdataset("sat", sensor="SAT")
    cat.close()
    return folder / "tiny.casdesk"


def _recording_stalls(app):  # Stalls that also list the gaps over 40 ms (end, wall, CPU)
    from bench_browser import Stalls

    class Recording(Stalls):
        gaps: list[tuple[float, float, float]] | None = None

        def _tick(self) -> None:
            now, cpu = time.perf_counter(), time.thread_time()
            if self._last is not None and self.gaps is not None and now - self._last > 0.04:
                self.gaps.append((now, now - self._last, cpu - self._last_cpu))
            super()._tick()

    return Recording(app)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wait-warm", action="store_true", help="press Start once torch is imported")
    parser.add_argument("--plain-import", action="store_true",
                        help="import torch as Python does (the baseline), not with the libraries loaded outside the GIL")
    args = parser.parse_args(argv)
    assert "torch" not in sys.modules

    from bench_browser import apply_app_runtime
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    runtime = apply_app_runtime(app)
    from casdesk.gui.shell.main_window import MainWindow

    if args.plain_import:
        import casdesk.gui.kit.torch_import as ti

        def plain() -> object:
            import torch

            return torch

        ti.import_torch_quietly = plain  # type: ignore[assignment]
        import casdesk.gui.training.panel as tp

        tp.import_torch_quietly = plain  # type: ignore[assignment]

    folder = Path(tempfile.mkdtemp(prefix="casdesk-train-start-"))
    result: dict[str, object] = {"load_avg_1min": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(),
                                 "wait_warm": args.wait_warm, "plain_import": args.plain_import}
    try:
        project = make_project(folder)
        settings = QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings=settings)
        window.resize(1400, 900)
        window.show()
        assert window.open_project(project)
        runtime.freeze()
        result["app_runtime"] = runtime.describe()
        assert "torch" not in sys.modules, "the window imported torch before the Train tab"
        panel = window.panels["Train"]
        form = panel.form
        form.model.setCurrentIndex(form.model.findData("smp:Unet"))
        form.encoder.setText("resnet18")
        form.epochs.setValue(1)
        form.batch_size.setValue(4)
        form.tiles.setCurrentIndex(form.tiles.findData("all"))
        form.augment.setChecked(False)
        stalls = _recording_stalls(app)
        watch = StackWatch()
        stalls._timer.timeout.connect(watch.alive)
        watch.start()
        stalls.spin(lambda: True, timeout=0.2)
        warm_gaps: list[tuple[float, float, float]] = []
        stalls.gaps = warm_gaps
        t0 = time.perf_counter()
        window.tabs.setCurrentWidget(panel)
        result["tab_switch_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        if args.wait_warm:
            stalls.spin(lambda: "torch" in sys.modules and not panel.device_runner.is_running(), timeout=120)
            result["warm_up_s"] = round(time.perf_counter() - t0, 2)
            result["warm_up_stall_ms"] = round(stalls.worst * 1000, 1)
            result["warm_up_stall_cpu_ms"] = round(stalls.worst_cpu * 1000, 1)
            result["warm_up_stalls_over_40ms"] = [  # (ms after the tab was shown, wall, CPU)
                (round((end - g - t0) * 1000), round(g * 1000), round(c * 1000))
                for end, g, c in sorted(warm_gaps, key=lambda x: -x[1])[:5]
            ]
            result["warm_up_stalled_in_ms"] = watch.top(4)
            watch.samples = {}
            stalls.worst = stalls.worst_cpu = 0.0
        else:
            stalls.spin(lambda: True, timeout=0.05)
        result["torch_imported_before_start"] = "torch" in sys.modules
        t_start = time.perf_counter()
        panel.start_from_form()
        events: list[tuple[float, str]] = []
        if panel.runner is not None:
            panel.runner.progress.connect(
                lambda e: events.append((time.perf_counter(), str((e.data or {}).get("event") or e.message))))
            panel.runner.finished.connect(lambda _r: events.append((time.perf_counter(), "finished")))
        gaps: list[tuple[float, float, float]] = []
        stalls.gaps = gaps
        result["start_call_ms"] = round((time.perf_counter() - t_start) * 1000, 1)
        stalls.spin(lambda: not panel.busy and panel.runner is None, timeout=600)
        result["run_s"] = round(time.perf_counter() - t_start, 2)
        result["status"] = panel.status.text()
        result["stalls_over_40ms"] = [
            (round(g * 1000), round(c * 1000), next((k for t, k in reversed(events) if t <= end - g + 0.002), "-"))
            for end, g, c in sorted(gaps, key=lambda x: -x[1])[:6]
        ]
        result["gui_max_stall_ms"] = round(stalls.worst * 1000, 1)
        result["gui_max_gap_cpu_ms"] = round(stalls.worst_cpu * 1000, 1)
        probe = getattr(panel, "device_probe", None)  # (older casdesk: listed in-process)
        if probe is not None:
            stalls.spin(lambda: not probe.is_running(), timeout=60)
            result["devices"] = [key for key, _ in (probe.cached() or [])]
        result["goal_stall_ms<50"] = stalls.worst * 1000 < GOAL_STALL_MS
        watch.running = False
        result["gui_thread_in_stalls_ms"] = watch.top()
        panel.shutdown()
        window.close()
        print(f"first Start training: longest GUI-thread stall {result['gui_max_stall_ms']} ms "
              f"(its CPU {result['gui_max_gap_cpu_ms']} ms); run {result['run_s']} s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
