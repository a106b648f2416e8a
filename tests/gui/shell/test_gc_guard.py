"""Cyclic garbage is collected on the GUI thread only (casdesk.gui.kit.gc_guard)."""

from __future__ import annotations

import gc
import threading


def test_cycles_are_collected_by_the_gui_thread_timer(qtbot) -> None:
    from casdesk.gui.kit.gc_guard import GuiThreadGarbageCollector

    was_enabled = gc.isenabled()
    collector = GuiThreadGarbageCollector(interval_ms=10)
    try:
        assert not gc.isenabled()  # no automatic collection, in any thread
        freed_in: list[int] = []

        class Node:
            def __del__(self) -> None:
                freed_in.append(threading.get_ident())

        def make_garbage() -> None:  # cycles made (and dropped) on a worker thread
            for _ in range(2000):
                a, b = Node(), Node()
                a.other, b.other = b, a

        worker = threading.Thread(target=make_garbage)
        worker.start()
        worker.join()
        assert not freed_in  # nothing collected on the worker
        qtbot.waitUntil(lambda: len(freed_in) >= 4000, timeout=5_000)
        assert set(freed_in) == {threading.get_ident()}  # all freed by the GUI thread's timer
    finally:
        collector.stop()
        if not was_enabled:
            gc.disable()
