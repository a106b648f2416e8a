"""One polygon edit on a 20,000-tile project, in the real main window: how long the GUI
thread stalls and how long until every view is consistent, and how many full reloads it
causes.

Generates the project of ``benchmarks/bench_browser.py`` (``--tiles`` tiles, 128x128 px,
sharing ``--images`` files), opens it in a :class:`MainWindow` with every tab, then:

- **open**: the time the window's open (``start_open_project``: menu, recent list, drop and
  command line; ``--sync-open`` measures the blocking ``open_project`` of scripts instead)
  blocks the GUI thread, the longest stall until the tile table, QC states and the map are
  loaded (latency of a 5 ms timer; also the GUI thread's own CPU time in its longest gap,
  which the machine's load does not inflate), and where the blocking time goes (per GUI
  package, from a profile of the GUI thread);
- **edit**: in the Label tab, one polygon drawn on a tile with real mouse clicks (autosave,
  mask regeneration in a worker, change events); the longest stall (clicks included) and the
  time until Browse and Map show the tile's new mask and label count, with the number of
  full reloads (Browse tile table, Map, QC table, editor lists, Project summary);
- where the GUI-thread time of a second, profiled edit goes (per GUI package).

The interpreter runs as in the app (``run_app``): the GUI thread's garbage collector, the
short switch interval, the startup objects frozen (:func:`apply_app_runtime`);
``--python-defaults`` measures with Python's defaults instead.

The last line printed is one JSON object with the figures.

    python benchmarks/bench_edit_scale.py [--tiles 20000] [--keep DIR] [--sync-open]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_browser import Stalls, apply_app_runtime, generate  # noqa: E402

from casdesk.core.project.catalog import Catalog  # noqa: E402

GOAL_STALL_MS = 50.0


def outermost_gui_frame(frame) -> str | None:
    """The outermost casdesk GUI frame below the event loop ("browser/delegate.py:paint")."""
    where = None
    while frame is not None:
        file = frame.f_code.co_filename.replace("\\", "/")
        if "casdesk/gui/" in file and "casdesk/gui/shell/" not in file:
            where = f"{file.split('casdesk/gui/')[1]}:{frame.f_code.co_name}"
        frame = frame.f_back
    return where


class StallWatch(threading.Thread):
    """Samples the GUI thread's Python stack every 5 ms while it has not served an event for
    more than ``threshold`` s: which casdesk GUI function the stalls are spent in (no profiler
    overhead on the GUI thread). :meth:`alive` is called from the GUI thread's timer."""

    def __init__(self, threshold: float = GOAL_STALL_MS / 1000, where=None) -> None:
        super().__init__(daemon=True)
        self.gui = threading.get_ident()
        self.threshold = threshold
        self.where = where or outermost_gui_frame
        """frame -> the name a sample is counted under (None: not counted)."""
        self.last = time.perf_counter()
        self.samples: dict[str, float] = {}
        self.running = True

    def alive(self) -> None:
        self.last = time.perf_counter()

    def run(self) -> None:
        previous = time.perf_counter()
        while self.running:
            time.sleep(0.005)
            now = time.perf_counter()
            dt, previous = min(now - previous, 0.1), now
            if now - self.last < self.threshold:
                continue
            where = self.where(sys._current_frames().get(self.gui))
            if where is not None:
                self.samples[where] = self.samples.get(where, 0.0) + dt * 1000

    def top(self, n: int = 6) -> dict[str, float]:
        items = sorted(self.samples.items(), key=lambda kv: -kv[1])[:n]
        return {k: round(v) for k, v in items}

    def reset(self) -> None:
        self.samples = {}


class WatchedStalls(Stalls):
    def __init__(self, app, watch: StallWatch) -> None:
        super().__init__(app)
        self.watch = watch

    def _tick(self) -> None:
        self.watch.alive()
        super()._tick()


class Counter:
    """Counts calls of a function patched on its owner (class or module)."""

    def __init__(self, owner: object, name: str) -> None:
        self.owner, self.name, self.calls = owner, name, 0
        self.original = getattr(owner, name)
        counter = self

        def wrapped(*args: object, **kwargs: object) -> object:
            counter.calls += 1
            return counter.original(*args, **kwargs)

        setattr(owner, name, wrapped)

    def restore(self) -> None:
        setattr(self.owner, self.name, self.original)


def gui_time_by_package(profile: cProfile.Profile) -> dict[str, float]:
    """Milliseconds of GUI-thread time per ``casdesk.gui.<package>``, counted at the slots
    Qt called (functions with no Python caller inside casdesk.gui)."""
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    out: dict[str, float] = {}
    for (file, _line, _name), (_cc, _nc, _tt, ct, callers) in stats.items():
        if "casdesk/gui/" not in file.replace("\\", "/"):
            continue
        if any("casdesk/gui/" in c[0].replace("\\", "/") for c in callers):
            continue  # counted at its caller
        package = file.replace("\\", "/").split("casdesk/gui/")[1].split("/")[0]
        if package == "shell":
            continue  # the window passes signals on: its callees are counted by package
        out[package] = out.get(package, 0.0) + ct * 1000
    return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 1.0}


def draw_square(app, editor, stalls: Stalls) -> float:
    """Draw a square polygon on the open tile with mouse clicks; returns the longest click."""
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtTest import QTest

    canvas = editor.canvas
    canvas.run_action("mode:polygon")
    rect = canvas.image_rect
    x0, y0 = rect.x() + rect.width() * 0.3, rect.y() + rect.height() * 0.3
    x1, y1 = rect.x() + rect.width() * 0.6, rect.y() + rect.height() * 0.65
    worst = 0.0
    for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)):
        pos = canvas.mapFromScene(QPointF(x, y))
        t = time.perf_counter()
        QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
        worst = max(worst, time.perf_counter() - t)
        stalls.spin(lambda: False, timeout=0.03)
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=20_000)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--keep", help="build/keep the project in this folder")
    parser.add_argument("--sync-open", action="store_true", help="measure the blocking open_project")
    parser.add_argument("--python-defaults", action="store_true",
                        help="Python's own garbage collection and switch interval (not the app's)")
    args = parser.parse_args(argv)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="casdesk-edit-"))
    result: dict[str, object] = {"load_avg_1min": round(os.getloadavg()[0], 1), "tiles": args.tiles, "cpus": os.cpu_count()}
    try:
        project = folder / "bench.casdesk"
        if not project.exists():
            folder.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            project = generate(folder, args.tiles, args.images)
            result["generate_s"] = round(time.perf_counter() - t, 1)

        from casdesk.core.qc import rules as qc_rules
        from casdesk.gui.editor.panel import EditorPanel
        from casdesk.gui.project.panel import ProjectPanel
        from casdesk.gui.shell.main_window import MainWindow

        counters = {
            "qc_table": Counter(qc_rules, "load_table"),
            "editor_lists": Counter(EditorPanel, "refresh"),
            "project_summary": Counter(ProjectPanel, "refresh"),
        }
        settings = QSettings(str(folder / "bench-settings.ini"), QSettings.Format.IniFormat)
        runtime = None if args.python_defaults else apply_app_runtime(app)
        window = MainWindow(settings=settings)
        window.resize(1400, 900)
        window.show()
        app.processEvents()
        if runtime is not None:
            runtime.freeze()
        result["app_runtime"] = runtime.describe() if runtime is not None else "python defaults"
        browser, map_panel, editor = window.panels["Browse"], window.panels["Map"], window.panels["Label"]
        window.tabs.setCurrentWidget(browser)

        # ---- open ------------------------------------------------------------------------
        def loaded() -> bool:  # what Browse shows (the map loads when its tab is shown)
            return browser.index is not None and browser.qc_loaded and not browser.is_loading()

        def map_loaded() -> bool:
            return map_panel.data is not None and not map_panel.is_loading()

        start_open = getattr(window, "start_open_project", None)
        open_ = window.open_project if args.sync_open or start_open is None else start_open
        result["open_function"] = open_.__name__
        watch = StallWatch()
        watch.start()
        stalls = WatchedStalls(app, watch)
        t0, c0 = time.perf_counter(), time.thread_time()
        watch.alive()
        open_(project)
        open_call, open_cpu = time.perf_counter() - t0, time.thread_time() - c0
        stalls.spin(loaded, timeout=120)
        open_total = time.perf_counter() - t0
        window.tabs.setCurrentWidget(map_panel)
        t1 = time.perf_counter()
        stalls.spin(map_loaded, timeout=120)
        map_total = time.perf_counter() - t1
        window.tabs.setCurrentWidget(browser)
        open_stalls_in = watch.top()
        # again, profiled (slower): where the GUI-thread time goes, per tab package
        window.context.close()
        app.processEvents()
        profile = cProfile.Profile()
        profile.enable()
        open_(project)
        Stalls(app).spin(loaded, timeout=120)
        profile.disable()
        window.tabs.setCurrentWidget(map_panel)
        Stalls(app).spin(map_loaded, timeout=120)
        window.tabs.setCurrentWidget(browser)
        result.update(
            open_call_blocks_ms=round(open_call * 1000, 1),
            open_max_stall_after_call_ms=round(stalls.worst * 1000, 1),
            open_until_loaded_ms=round(open_total * 1000, 1),
            map_tab_until_drawn_ms=round(map_total * 1000, 1),
            open_and_map_max_stall_ms=round(max(open_call, stalls.worst) * 1000, 1),
            open_call_cpu_ms=round(open_cpu * 1000, 1),
            open_and_map_max_gap_cpu_ms=round(max(open_cpu, stalls.worst_cpu) * 1000, 1),
            open_gui_ms_by_package_profiled=gui_time_by_package(profile),
            open_stalled_ms_in=open_stalls_in,
        )
        print(f"open: {open_.__name__} blocks {open_call * 1000:.0f} ms ({open_cpu * 1000:.0f} ms CPU), longest "
              f"stall after it {stalls.worst * 1000:.0f} ms (GUI-thread CPU in a gap at most "
              f"{stalls.worst_cpu * 1000:.0f} ms; Map tab included), Browse loaded after {open_total * 1000:.0f} ms, "
              f"the Map drawn {map_total * 1000:.0f} ms after its tab was shown")
        print(f"  GUI-thread time by tab package (profiled, inflated): {result['open_gui_ms_by_package_profiled']}")
        print(f"  time in stalls over {GOAL_STALL_MS:g} ms, by function (sampled): {open_stalls_in}")

        # ---- one edit ----------------------------------------------------------------------
        tid = int(browser.index.ids[len(browser.index) // 2])
        window.tabs.setCurrentWidget(editor)
        editor.open_target("tile", tid)
        stalls.spin(lambda: editor.imagery.idle() and editor.target is not None
                    and editor.target.tile_id == tid, timeout=60)
        stalls.spin(lambda: False, timeout=0.3)  # let the tab settle
        row = int(browser.index.rows_of([tid])[0])
        before = str(browser.index.modified[row])
        base = {name: c.calls for name, c in counters.items()}
        base["browser_table"], base["map"] = browser.reloads, map_panel.loads

        def consistent() -> bool:
            if not editor.regen_idle() or browser.is_loading() or map_panel.is_loading():
                return False
            if str(browser.index.modified[row]) == before:
                return False
            tile = window.context.catalog.tile(tid)
            mrow = int(map_panel.data.index.rows_of([tid])[0])
            return (int(browser.index.label_pixels[row]) == tile.label_pixels
                    and int(map_panel.data.index.label_pixels[mrow]) == tile.label_pixels)

        edit_stalls = WatchedStalls(app, watch)
        watch.reset()
        t0 = time.perf_counter()
        watch.alive()
        click_worst = draw_square(app, editor, edit_stalls)
        shapes = len(editor.canvas.doc.shapes)
        ok = edit_stalls.spin(consistent, timeout=60)
        edit_total = time.perf_counter() - t0
        reloads = {"browser_table": browser.reloads - base["browser_table"], "map": map_panel.loads - base["map"]}
        reloads.update({name: c.calls - base[name] for name, c in counters.items()})
        stall = max(click_worst, edit_stalls.worst)
        result.update(
            edit_consistent=ok,
            edit_shapes=shapes,
            edit_max_stall_ms=round(stall * 1000, 1),
            edit_max_gap_cpu_ms=round(edit_stalls.worst_cpu * 1000, 1),
            edit_longest_click_ms=round(click_worst * 1000, 1),
            edit_until_consistent_ms=round(edit_total * 1000, 1),
            edit_reloads=reloads,
            edit_full_reloads=sum(reloads.values()),
            edit_stalled_ms_in=watch.top(),
        )
        print(f"edit: {shapes} shape(s); longest GUI-thread stall {stall * 1000:.0f} ms (longest click "
              f"{click_worst * 1000:.0f} ms); every view consistent after {edit_total * 1000:.0f} ms "
              f"({'yes' if ok else 'NO'}); full reloads {reloads}")

        # ---- a second edit, profiled: where the GUI-thread time goes -------------------------
        before = str(browser.index.modified[row])
        editor.canvas.undo_stack.undo()
        profile = cProfile.Profile()
        profile.enable()
        Stalls(app).spin(consistent, timeout=60)
        profile.disable()
        result["edit_gui_ms_by_package_profiled"] = gui_time_by_package(profile)
        print(f"  GUI-thread time of an undo until consistent, by package: {result['edit_gui_ms_by_package_profiled']}")

        watch.running = False
        result["goals"] = {
            f"edit_stall_ms<={GOAL_STALL_MS:g}": stall * 1000 <= GOAL_STALL_MS,
            "edit_no_full_reload": sum(reloads.values()) == 0,
            f"open_stall_ms<={GOAL_STALL_MS:g}": max(open_call, stalls.worst) * 1000 <= GOAL_STALL_MS,
            f"open_gap_cpu_ms<={GOAL_STALL_MS:g}": max(open_cpu, stalls.worst_cpu) * 1000 <= GOAL_STALL_MS,
        }
        for c in counters.values():
            c.restore()
        window.close()
        app.processEvents()
        with Catalog.open(project, readonly=True):
            pass
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
