"""Worker threads are made when a pool is built and kept (casdesk.gui.kit.pools): a thread
made later, while another thread loads a large library (torch), waits for the loader."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from casdesk.gui.kit.pools import kept_pool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_a_kept_pool_makes_its_threads_at_once_and_never_makes_more(qapp) -> None:
    before = _os_threads()
    pool = kept_pool(None, 3)
    try:
        assert pool.expiryTimeout() == -1
        assert pool.activeThreadCount() == 0  # idle on return: nothing looks busy
        assert _os_threads() == before + 3
        started = threading.Barrier(4, timeout=10)
        release = threading.Event()

        def task() -> None:
            started.wait()
            release.wait(10)

        for _ in range(3):
            pool.start(task)
        started.wait()  # all three run at once, each in a thread the pool made up front
        assert _os_threads() == before + 3
        release.set()
        assert pool.waitForDone(10_000)
    finally:
        release.set()
        pool.waitForDone(10_000)
        pool.deleteLater()


def test_the_browser_loaders_and_the_project_context_keep_their_threads(qapp) -> None:
    from casdesk.gui.browser.loader import LatestCall, ThumbnailLoader
    from casdesk.gui.shell.context import ProjectContext

    call, loader, context = LatestCall(), ThumbnailLoader(threads=2), ProjectContext()
    try:
        for pool in (call._pool, loader._pool, context._threads):
            assert pool.expiryTimeout() == -1 and pool.activeThreadCount() == 0
        assert not call.is_busy() and loader.pending() == 0
    finally:
        call.shutdown()
        loader.shutdown()
        context.close()
