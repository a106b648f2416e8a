"""The Map tab on a 20,000-tile project, in the real main window: the longest GUI-thread
stall of each interaction (issue 19's goal: none over 50 ms).

Generates the project of ``benchmarks/bench_browser.py`` (``--tiles`` tiles, not
georeferenced: shown as a grid per subdataset), opens it, shows the Map tab and measures
(latency of a 5 ms timer, wall time, and the GUI thread's own CPU time in its longest gap):

- **show**: the tab's first show until the map is drawn;
- **zoom**: ``--steps`` mouse-wheel steps in, then out, over the map;
- **pan**: a left-button drag across the view;
- **hover**: the mouse moved over 60 points (coordinates and tile name under the cursor);
- **pick**: a click on a tile (its outline and details), then a double-click (opens it in
  Browse);
- **decisions**: 500 tiles rejected by hand (the map repaints those cells);
- **rules**: the working rules changed (every cell recoloured in a worker).

The last line printed is one JSON object with the figures.

    python benchmarks/bench_map.py [--tiles 20000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_browser import Stalls  # noqa: E402
from bench_qc_panel import measured, window_on_project  # noqa: E402

GOAL_STALL_MS = 50.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=20_000)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8, help="wheel steps in (then out)")
    parser.add_argument("--keep", help="build/keep the project in this folder")
    args = parser.parse_args(argv)

    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="casdesk-map-"))
    result: dict[str, object] = {"load_avg_1min": round(os.getloadavg()[0], 1), "tiles": args.tiles}
    window = None
    try:
        from casdesk.core.dataset import tile_table as ti

        window = window_on_project(app, folder, args.tiles, args.images)
        browser, map_panel, qc_panel = (window.panels["Browse"], window.panels["Map"], window.panels["QC"])

        result["show"] = measured(
            app,
            lambda: window.tabs.setCurrentWidget(map_panel),
            lambda: map_panel.data is not None and not map_panel.is_loading(),
            120,
        )
        Stalls(app).spin(lambda: False, 0.5)
        view = map_panel.view
        port = view.viewport()
        centre = port.rect().center()

        def wheel(steps: int) -> None:
            for _ in range(abs(steps)):
                delta = 120 if steps > 0 else -120
                event = QWheelEvent(
                    QPointF(centre),
                    QPointF(port.mapToGlobal(centre)),
                    QPoint(0, 0),
                    QPoint(0, delta),
                    Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier,
                    Qt.ScrollPhase.NoScrollPhase,
                    False,
                )
                QApplication.sendEvent(port, event)
                app.processEvents()

        result["zoom_in"] = measured(app, lambda: wheel(args.steps), lambda: True)
        result["zoom_out"] = measured(app, lambda: wheel(-args.steps), lambda: True)

        def pan() -> None:
            start = centre - QPoint(200, 100)
            QTest.mousePress(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
            for k in range(1, 21):
                QTest.mouseMove(port, start + QPoint(20 * k, 10 * k))
                app.processEvents()
            QTest.mouseRelease(
                port,
                Qt.MouseButton.LeftButton,
                Qt.KeyboardModifier.NoModifier,
                start + QPoint(400, 200),
            )

        result["pan"] = measured(app, pan, lambda: True)
        view.fit(map_panel.extent())

        def hover() -> None:
            w, h = port.width(), port.height()
            for k in range(60):
                QTest.mouseMove(
                    port, QPoint(20 + (k * 37) % max(w - 40, 1), 20 + (k * 53) % max(h - 40, 1))
                )
                app.processEvents()

        result["hover"] = measured(app, hover, lambda: True)

        index = map_panel.data.index
        target = int(index.ids[len(index) // 2])
        point = view.mapFromScene(map_panel.tile_scene_point(target))
        result["pick"] = measured(
            app,
            lambda: QTest.mouseClick(
                port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point
            ),
            lambda: map_panel.selected == target,
        )
        result["double_click_opens_browse"] = measured(
            app,
            lambda: QTest.mouseDClick(
                port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point
            ),
            lambda: window.tabs.currentWidget() is browser,
        )
        window.tabs.setCurrentWidget(map_panel)
        Stalls(app).spin(lambda: False, 0.5)

        rejected = [int(t) for t in index.ids[:500]]
        code = ti.qc_code("MANUAL_REJECT")
        result["decisions"] = measured(
            app,
            lambda: qc_panel.decide(rejected, "reject"),
            lambda: (
                map_panel.data is not None
                and bool((map_panel.data.index.qc_state[:500] == code).all())
            ),
        )
        metric = next(iter(qc_panel.editors))
        result["rules"] = measured(
            app,
            lambda: (
                qc_panel.editors[metric].slider.setValue(
                    qc_panel.editors[metric].slider.maximum() // 3
                ),
                qc_panel.persist_rules(),
            ),
            lambda: not map_panel.is_loading(),
        )
        result["worst_stall_ms"] = max(
            float(v["worst_stall_ms"]) for v in result.values() if isinstance(v, dict)
        )
        result["goal_ms"] = GOAL_STALL_MS
        result["load_avg_1min_end"] = round(os.getloadavg()[0], 1)
    finally:
        if window is not None:
            window.close()
            app.processEvents()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
