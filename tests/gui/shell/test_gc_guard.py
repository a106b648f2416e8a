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


def test_a_collection_waits_while_a_worker_holds_many_young_objects(qtbot, monkeypatch) -> None:
    """60k SQLite rows a worker is reading are young objects the GUI thread's collection
    would walk (20-90 ms) just before reference counting frees them: it waits for them, a
    bounded number of checks."""
    from casdesk.gui.kit import gc_guard
    from casdesk.gui.kit.gc_guard import BUSY_YOUNG, MAX_POSTPONED, GuiThreadGarbageCollector

    was_enabled = gc.isenabled()
    collector = GuiThreadGarbageCollector(interval_ms=60_000)  # checks run by hand below
    collected: list[int] = []
    real_collect = gc.collect
    try:
        real_collect()
        monkeypatch.setattr(gc_guard.gc, "collect", lambda generation=2: collected.append(generation))
        held = [[i] for i in range(2 * BUSY_YOUNG)]  # many young tracked objects, alive
        for _ in range(MAX_POSTPONED):
            collector.check()
        assert collected == [] and collector.postponed == MAX_POSTPONED
        collector.check()  # waited long enough: collects anyway
        assert len(collected) == 1 and collector.postponed == 0
        del held
        monkeypatch.undo()
        real_collect()
        few = [[i] for i in range(gc.get_threshold()[0] + 10)]  # a usual amount: collected at once
        monkeypatch.setattr(gc_guard.gc, "collect", lambda generation=2: collected.append(generation))
        collector.check()
        assert len(collected) == 2 and collector.postponed == 0 and few
    finally:
        monkeypatch.undo()
        collector.stop()
        if not was_enabled:
            gc.disable()


def test_startup_objects_are_frozen_and_thawed() -> None:
    from casdesk.gui.kit.gc_guard import freeze_long_lived, thaw

    assert gc.get_freeze_count() == 0
    try:
        kept = [{"startup": i} for i in range(100)]
        assert freeze_long_lived() >= 100 and kept
        assert gc.get_freeze_count() > 0
    finally:
        thaw()
    assert gc.get_freeze_count() == 0


def test_a_long_lived_burst_of_young_objects_is_frozen_not_walked(qtbot, monkeypatch) -> None:
    """What an import in a worker left (torch: ~250k objects) is still alive after the wait:
    frozen like the startup objects instead of a 150-260 ms young collection."""
    from casdesk.gui.kit import gc_guard
    from casdesk.gui.kit.gc_guard import (
        LONG_LIVED_YOUNG,
        MAX_FREEZES,
        MAX_POSTPONED,
        GuiThreadGarbageCollector,
    )

    was_enabled = gc.isenabled()
    collector = GuiThreadGarbageCollector(interval_ms=60_000)
    collected: list[int] = []
    try:
        gc.collect()
        assert gc.get_freeze_count() == 0
        monkeypatch.setattr(gc_guard.gc, "collect", lambda generation=2: collected.append(generation))
        imported = [[i] for i in range(LONG_LIVED_YOUNG + 1000)]  # long-lived: still alive after the wait
        for _ in range(MAX_POSTPONED + 1):
            collector.check()
        assert collected == [] and collector.freezes == 1
        assert gc.get_freeze_count() >= len(imported) and gc.get_count()[0] < 100
        collector.freezes = MAX_FREEZES  # no more freezes: a burst is walked again
        more = [[i] for i in range(LONG_LIVED_YOUNG + 1000)]
        for _ in range(MAX_POSTPONED + 1):
            collector.check()
        assert len(collected) == 1 and more
    finally:
        monkeypatch.undo()
        gc.unfreeze()
        collector.stop()
        if not was_enabled:
            gc.disable()


def _fresh_python(code: str) -> list[str]:
    """What ``code`` prints in a fresh interpreter, split into words."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_lazily_imported_modules_load_at_startup() -> None:
    # np.unique imports numpy.ma on its first call: that must not happen on a later GUI event
    code = (
        "import sys, numpy\n"
        "assert 'numpy.ma' not in sys.modules\n"
        "from casdesk.gui.kit.gc_guard import freeze_long_lived\n"
        "from casdesk.gui.kit.warmup import STARTUP_IMPORTS\n"
        "freeze_long_lived()\n"
        "print(all(m in sys.modules for m in STARTUP_IMPORTS), 'numpy.ma' in STARTUP_IMPORTS)\n"
    )
    assert _fresh_python(code) == ["True", "True"]


def test_modules_of_first_uses_are_imported_in_the_background_without_torch() -> None:
    # a fresh interpreter: the first "Review suspect labels" or "Start training" finds its
    # modules imported, and the background imports never pull torch in
    code = (
        "import sys\n"
        "from casdesk.gui.kit.warmup import BACKGROUND_IMPORTS, import_in_background\n"
        "assert not any(m in sys.modules for m in BACKGROUND_IMPORTS), 'imported already'\n"
        "thread = import_in_background()\n"
        "thread.join(60)\n"
        "print(thread.daemon, all(m in sys.modules for m in BACKGROUND_IMPORTS), 'torch' in sys.modules)\n"
    )
    assert _fresh_python(code) == ["True", "True", "False"]


def test_a_module_that_fails_to_import_does_not_stop_the_others() -> None:
    code = (
        "import sys\n"
        "from casdesk.gui.kit.warmup import import_in_background\n"
        "name = 'casdesk.core.dataset.splits'\n"
        "assert name not in sys.modules\n"
        "thread = import_in_background(('casdesk.no_such_module', name))\n"
        "thread.join(30)\n"
        "print(thread.is_alive(), name in sys.modules)\n"
    )
    assert _fresh_python(code) == ["False", "True"]
