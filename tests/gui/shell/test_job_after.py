"""A job started *after* another (JobRunner.start(after=...)): the first training run waits
for torch's warm-up import without making its thread while torch's libraries load (a thread
made then waits for the C library's loader, on the GUI thread)."""

from __future__ import annotations

import threading

from casdesk.core.jobs import Progress
from casdesk.gui.kit.workers import JobRunner


def _blocking(release: threading.Event, log: list[str], name: str):
    def factory(token):
        log.append(f"{name} started")
        release.wait(30)
        yield Progress(1, 1, name)
        log.append(f"{name} ended")
        return name

    return factory


def test_a_job_started_after_another_runs_once_that_one_has_ended(qtbot) -> None:
    release, go, log = threading.Event(), threading.Event(), []
    first = JobRunner(_blocking(release, log, "import"), name="first")
    second = JobRunner(_blocking(go, log, "train"), name="second")
    first.start()
    qtbot.waitUntil(lambda: log == ["import started"], timeout=10_000)
    second.start(after=first)
    assert second.is_running()  # running as far as the panel is concerned
    assert not second.wait(10)  # its thread has not started
    qtbot.wait(50)  # the event loop turns: still waiting for the first
    assert log == ["import started"]
    go.set()
    with qtbot.waitSignal(second.done, timeout=30_000):
        release.set()
    assert log == ["import started", "import ended", "train started", "train ended"]
    assert not first.is_running() and not second.is_running()


def test_a_job_waiting_to_start_never_starts_after_shutdown(qtbot) -> None:
    release, log = threading.Event(), []
    first = JobRunner(_blocking(release, log, "import"), name="first")
    second = JobRunner(_blocking(threading.Event(), log, "train"), name="second")
    first.start()
    second.start(after=first)
    second.shutdown()
    assert not second.is_running()
    with qtbot.waitSignal(first.done, timeout=30_000):
        release.set()
    qtbot.wait(50)
    assert "train started" not in log


def test_after_a_job_that_is_not_running_starts_at_once(qtbot) -> None:
    log: list[str] = []
    go = threading.Event()
    go.set()
    ended = JobRunner(_blocking(go, log, "import"), name="first")  # never started
    runner = JobRunner(_blocking(go, log, "train"), name="second")
    with qtbot.waitSignal(runner.done, timeout=30_000):
        runner.start(after=ended)
    assert log == ["train started", "train ended"]
