"""Background calls run in one pool whose threads are made early and kept
(casdesk.gui.kit.pools): a thread made later, while another thread loads a large library
(torch), waits for the loader on the GUI thread; and the thread count does not grow with the
number of panels or windows."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from casdesk.gui.browser.loader import LatestCall
from casdesk.gui.kit.pools import CALL_THREADS, call_pool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")


def _os_threads() -> set[int]:
    return {int(t) for t in os.listdir("/proc/self/task")}


def test_latest_calls_share_one_pool_whose_threads_exist_before_any_call(qtbot) -> None:
    pool = call_pool()
    assert pool.expiryTimeout() == -1 and pool.activeThreadCount() == 0
    before = _os_threads()
    calls = [LatestCall() for _ in range(20)]  # twenty panels' worth
    assert all(c._pool is pool for c in calls)
    assert not _os_threads() - before  # building them made no thread
    running: list[int] = []
    release = threading.Event()
    results: list[object] = []

    def call(i: int):
        def run() -> int:
            running.append(threading.get_native_id())
            release.wait(10)
            return i

        return run

    for i, c in enumerate(calls[:CALL_THREADS]):
        c.finished.connect(results.append)
        c.submit(call(i))
    qtbot.waitUntil(lambda: len(running) == CALL_THREADS, timeout=10_000)  # all at once,
    assert len(set(running)) == CALL_THREADS and set(running) <= before  # in threads made before
    release.set()
    qtbot.waitUntil(lambda: len(results) == CALL_THREADS, timeout=10_000)
    assert sorted(results) == list(range(CALL_THREADS))
    qtbot.waitUntil(lambda: not any(c.is_busy() for c in calls), timeout=10_000)
    assert all(c.shutdown() for c in calls)
    assert set(running) <= _os_threads()  # kept, not ended


def test_a_call_submitted_while_one_runs_waits_and_only_the_newest_runs(qtbot) -> None:
    call = LatestCall()
    release = threading.Event()
    ran: list[str] = []
    seen: list[object] = []
    call.finished.connect(seen.append)

    def slow() -> str:
        ran.append("slow")
        release.wait(10)
        return "slow"

    call.submit(slow)
    qtbot.waitUntil(lambda: ran == ["slow"], timeout=10_000)
    call.submit(lambda: ran.append("older") or "older")  # replaced before it could start
    call.submit(lambda: ran.append("newest") or "newest")
    assert call.is_busy()
    release.set()
    qtbot.waitUntil(lambda: seen == ["newest"], timeout=10_000)
    assert ran == ["slow", "newest"]
    qtbot.waitUntil(lambda: not call.is_busy(), timeout=10_000)
    assert call.shutdown()


def test_shutdown_waits_for_the_running_call(qtbot) -> None:
    call = LatestCall()
    release, done = threading.Event(), threading.Event()

    def slow() -> None:
        release.wait(10)
        done.set()

    call.submit(slow)
    qtbot.waitUntil(lambda: not call._idle.is_set(), timeout=10_000)
    threading.Timer(0.05, release.set).start()
    assert call.shutdown(10_000)
    assert done.is_set()
