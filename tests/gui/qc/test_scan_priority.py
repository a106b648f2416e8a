"""The QC tab's scan yields the cores to the window: its thread runs at a lower priority
than the GUI thread, and processes it starts inherit that priority (issue 19: no GUI stall
over 50 ms while a scan fills every core; ``benchmarks/bench_qc_panel.py`` measures it)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from casdesk.core.jobs import CancelToken, Progress
from casdesk.gui.qc import scanning

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="per-thread nice is Linux"
)


def test_scan_thread_and_its_processes_run_below_the_gui(monkeypatch) -> None:
    seen: dict[str, int] = {}

    def fake_compute_metrics(path, cancel=None, **options):
        seen["thread"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        # a worker process started from the scan's thread, as ProcessPoolExecutor does
        out = subprocess.run(
            [sys.executable, "-c", "import os; print(os.nice(0))"],
            capture_output=True,
            text=True,
            check=True,
        )
        seen["child"] = int(out.stdout)
        seen["options"] = len(options)
        yield Progress(1, 1, "done")
        return 1

    monkeypatch.setattr(scanning.qc, "compute_metrics", fake_compute_metrics)
    gui = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    result: list[object] = []

    def job() -> None:
        gen = scanning.scan_yielding_to_gui("project.casdesk", CancelToken(), workers=1)
        try:
            while True:
                result.append(next(gen))
        except StopIteration as stop:
            result.append(stop.value)

    worker = threading.Thread(target=job)
    worker.start()
    worker.join(30)
    assert not worker.is_alive()
    assert result[-1] == 1 and isinstance(result[0], Progress)
    assert seen["options"] == 1
    assert seen["thread"] > gui
    assert seen["child"] == seen["thread"]
    # the calling (GUI) thread itself is untouched
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == gui
