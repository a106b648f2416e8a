"""Tile browser benchmark: first screen of thumbnails, filtering, memory over a full scroll.

Generates a project of ``--tiles`` tiles (default 20,000). To keep generation fast the tiles
are small (128x128 GeoTIFF) and share ``--images`` distinct image/mask files; the browser
still treats every tile separately (its own thumbnail, cache file and catalog row).

Measured in one run, on the offscreen Qt platform:
- first screen cold (no disk cache: the baseline) and warm (disk cache filled by a previous
  session), from opening the project to every visible cell painted with its thumbnail;
- filter + sort of the whole tile table in numpy, against the same question asked of SQLite
  and against a per-tile Python loop (baselines), and the end-to-end panel update;
- a full scroll of the grid, page by page, each page waited for: peak resident memory
  against what keeping every thumbnail would take, the in-memory cache's bytes, and the
  longest stall of the GUI thread (latency of a 5 ms timer; and the GUI thread's own CPU
  time in its longest gap, which the machine's load does not inflate).

The interpreter runs as in the app (``run_app``: garbage collected on the GUI thread, short
switch interval, startup objects frozen); ``--python-defaults`` measures without.

The last line printed is one JSON object with the figures.

    python benchmarks/bench_browser.py [--tiles 20000] [--cache-mb 64] [--keep DIR]
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

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import rasterio  # noqa: E402
from affine import Affine  # noqa: E402

from casdesk.core.dataset import tile_table as ti  # noqa: E402
from casdesk.core.project.catalog import Catalog, utc_now  # noqa: E402
from casdesk.core.qc.detectors import METRICS  # noqa: E402

PX = 128


def _write(path: Path, data: np.ndarray) -> None:
    profile = {
        "driver": "GTiff", "width": PX, "height": PX, "count": data.shape[0],
        "dtype": data.dtype.name, "crs": "EPSG:32618",
        "transform": Affine(0.5, 0, 500000, 0, -0.5, 3300000),
    }
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)


def generate(folder: Path, n_tiles: int, n_images: int) -> Path:
    rng = np.random.default_rng(0)
    tiles = folder / "tiles"
    tiles.mkdir(parents=True)
    yy, xx = np.mgrid[:PX, :PX]
    images, masks, label_px = [], [], []
    for i in range(n_images):
        base = rng.integers(40, 200, 3)
        rgb = (base[:, None, None] + rng.normal(0, 25, (3, PX, PX))).clip(0, 255).astype(np.uint8)
        mask = np.zeros((1, PX, PX), np.uint8)
        if i % 3:
            cy, cx, r = rng.integers(20, PX - 20, 2).tolist() + [int(rng.integers(6, 30))]
            mask[0][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1
        _write(tiles / f"img{i}.tif", rgb)
        _write(tiles / f"mask{i}.tif", mask)
        images.append(tiles / f"img{i}.tif")
        masks.append(tiles / f"mask{i}.tif")
        label_px.append(int(mask.sum()))
    cat = Catalog.create(folder / "bench.casdesk")
    for name, sensor in (("UAV set", "UAV"), ("SAT set", "SAT"), ("mixed", None)):
        cat.ensure_subdataset(name, sensor=sensor)
    subs = ["UAV set", "SAT set", "mixed"]
    ids = cat.add_tiles(
        [
            {
                "name": f"scene{i % 97:02d}_r{(i // 97) * 256:06d}_c{(i % 40) * 256:06d}_{i}",
                "subdataset": subs[i % 3], "image_path": images[i % n_images],
                "mask_path": masks[i % n_images], "width": PX, "height": PX,
                "label_pixels": label_px[i % n_images], "valid_pixels": PX * PX,
            }
            for i in range(n_tiles)
        ]
    )
    now = utc_now()
    values = rng.random((len(ids), 3))
    with cat.transaction() as db:
        for j, metric in enumerate(("fill_fraction", "cloud_fraction", "seam_score")):
            scale = 40.0 if metric == "seam_score" else 1.0
            db.executemany(
                "INSERT INTO qc_metrics(tile_id, metric, version, value, computed) VALUES (?, ?, ?, ?, ?)",
                [(t, metric, METRICS[metric].version, float(v) * scale, now) for t, v in zip(ids, values[:, j], strict=True)],
            )
        db.execute("INSERT INTO splits(name, kind, params, created) VALUES ('bench', 'random', '{}', ?)", (now,))
        db.executemany(
            "INSERT INTO split_tiles(split_id, tile_id, part) VALUES (1, ?, ?)",
            [(t, ("train", "val")[k % 2]) for k, t in enumerate(ids)],
        )
    cat.close()
    return folder / "bench.casdesk"


# --------------------------------------------------------------------------- GUI helpers
def _visible_keys(panel) -> list[tuple[int, int, str]]:
    from PySide6.QtCore import QPoint

    from casdesk.core.raster.thumbnails import size_bucket

    grid, model, index = panel.grid, panel.model, panel.index
    vp = grid.viewport().rect()
    cell = grid.gridSize()
    first = grid.indexAt(QPoint(cell.width() // 2, cell.height() // 2)).row()
    cols = max(1, vp.width() // cell.width())
    rows_vis = vp.height() // cell.height() + 1
    last = min(model.rowCount() - 1, max(first, 0) + cols * rows_vis - 1)
    if first < 0:
        return []
    size = size_bucket(panel.delegate.thumb_px)
    out = []
    for view_row in range(first, last + 1):
        r = int(model.rows[view_row])
        if grid.visualRect(model.index(view_row)).intersects(vp):
            out.append((int(index.ids[r]), size, str(index.modified[r])))
    return out


class Stalls:
    """Runs the event loop; a 5 ms timer measures its latency: the longest time the GUI
    thread could not serve an event (a frame the user would see stutter).

    ``worst`` is wall time: it includes waiting for a core (other processes) and for the GIL
    (workers running Python). ``worst_cpu`` is the GUI thread's own CPU time in that longest
    gap's kind of interval: the work it did between two timer ticks, whatever the machine's
    load (on a busy shared machine, compare before/after on this one)."""

    INTERVAL_MS = 5

    def __init__(self, app) -> None:
        from PySide6.QtCore import QTimer

        self.app = app
        self.worst = 0.0
        self.worst_cpu = 0.0
        self._last: float | None = None
        self._last_cpu = 0.0
        self._timer = QTimer()
        self._timer.setInterval(self.INTERVAL_MS)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        if self._last is not None:
            self.worst = max(self.worst, now - self._last - self.INTERVAL_MS / 1000)
            self.worst_cpu = max(self.worst_cpu, cpu - self._last_cpu)
        self._last, self._last_cpu = now, cpu

    def spin(self, until, timeout: float = 60.0) -> bool:
        from PySide6.QtCore import QEventLoop

        end = time.perf_counter() + timeout
        # measured from now: work queued before the loop runs (a zero timer) stalls too
        self._last, self._last_cpu = time.perf_counter(), time.thread_time()
        self._timer.start()
        try:
            while time.perf_counter() < end:
                self.app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
                if until():
                    return True
                time.sleep(0.001)
            return False
        finally:
            self._timer.stop()
            self._last = None


class AppRuntime:
    """What ``run_app`` sets up around the window (each part only where this casdesk has it)."""

    def __init__(self, app) -> None:
        self.parts: list[str] = []
        try:
            from casdesk.gui.kit.gc_guard import GuiThreadGarbageCollector

            self.collector = GuiThreadGarbageCollector(app)
            self.parts.append("gc on the GUI thread")
        except ImportError:
            pass
        try:
            from casdesk.gui.kit.gil import favour_gui_thread

            favour_gui_thread()
            self.parts.append(f"switch interval {sys.getswitchinterval() * 1000:g} ms")
        except ImportError:
            pass

    def freeze(self) -> None:
        try:
            from casdesk.gui.kit.gc_guard import freeze_long_lived
        except ImportError:
            return
        self.parts.append(f"{freeze_long_lived()} startup objects frozen")
        try:  # as run_app: the modules of features not used yet, in the background, 2 s later
            from PySide6.QtCore import QTimer

            from casdesk.gui.kit.warmup import import_in_background
            from casdesk.gui.shell.app import BACKGROUND_IMPORTS_AFTER_MS
        except ImportError:
            return
        QTimer.singleShot(BACKGROUND_IMPORTS_AFTER_MS, import_in_background)
        self.parts.append("background imports")

    def describe(self) -> str:
        return ", ".join(self.parts) or "python defaults"


def apply_app_runtime(app) -> AppRuntime:
    return AppRuntime(app)


def open_panel(app, project: Path, cache_mb: int):
    from casdesk.gui.browser.panel import BrowserPanel
    from casdesk.gui.shell.context import ProjectContext

    context = ProjectContext()
    panel = BrowserPanel(context)
    panel.loader.max_bytes = cache_mb * 1024 * 1024
    panel.resize(1400, 900)
    panel.show()
    return context, panel


def first_screen(app, project: Path, cache_mb: int) -> tuple[float, float, object, object]:
    """(seconds to the index, seconds to a fully painted first screen, context, panel)."""
    stalls = Stalls(app)
    context, panel = open_panel(app, project, cache_mb)
    t0 = time.perf_counter()
    context.open(project)
    stalls.spin(lambda: panel.index is not None and panel.model.rowCount() > 0)
    t_index = time.perf_counter() - t0  # the grid shows; QC badges follow (panel.qc_loaded)

    def painted() -> bool:
        keys = _visible_keys(panel)
        return bool(keys) and all(panel.loader.cached(k) is not None for k in keys)

    stalls.spin(painted)
    t_screen = time.perf_counter() - t0
    stalls.spin(lambda: panel.qc_loaded)
    print(f"  QC states and metrics shown after {(time.perf_counter() - t0) * 1000:.0f} ms")
    return t_index, t_screen, context, panel


def close_panel(context, panel) -> None:
    panel.shutdown()
    context.close()
    panel.deleteLater()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=20_000)
    parser.add_argument("--images", type=int, default=256, help="distinct image files")
    parser.add_argument("--cache-mb", type=int, default=64, help="in-memory thumbnail cache")
    parser.add_argument("--keep", help="build/keep the project in this folder")
    parser.add_argument("--scroll-pages", type=int, default=0,
                        help="scroll only this many pages (0: the whole grid; a quick run for the first screens)")
    parser.add_argument("--python-defaults", action="store_true",
                        help="Python's own garbage collection and switch interval (not the app's)")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    runtime = None if args.python_defaults else apply_app_runtime(app)
    if runtime is not None:
        from casdesk.gui.browser.panel import BrowserPanel  # noqa: F401 - the panel's modules, frozen with the rest

        runtime.freeze()
    proc = psutil.Process()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="casdesk-bench-"))
    result: dict[str, object] = {"load_avg_1min": round(os.getloadavg()[0], 1), "tiles": args.tiles,
                                 "scroll_pages_asked": args.scroll_pages or "all", "tile_px": PX, "distinct_files": args.images,
                                 "cache_mb": args.cache_mb, "cpus": os.cpu_count(),
                                 "app_runtime": runtime.describe() if runtime is not None else "python defaults"}
    try:
        project = folder / "bench.casdesk"
        t = time.perf_counter()
        if not project.exists():
            project = generate(folder, args.tiles, args.images)
        result["generate_s"] = round(time.perf_counter() - t, 2)
        shutil.rmtree(folder / "bench.casdesk.d" / "thumbs", ignore_errors=True)
        print(f"project: {project} ({args.tiles} tiles, generated in {result['generate_s']} s)")

        # -- first screen, cold (baseline) -------------------------------------------------
        t_index, cold, context, panel = first_screen(app, project, args.cache_mb)
        n_visible = len(_visible_keys(panel))
        print(f"first screen cold: {cold * 1000:.0f} ms ({n_visible} thumbnails; index {t_index * 1000:.0f} ms)")

        # -- filtering ---------------------------------------------------------------------
        index = panel.index
        flt = ti.TileFilter(
            subdatasets=frozenset({"UAV set", "mixed"}), qc_states=None,
            split_parts=frozenset({"train"}), ranges={"fill_fraction": (0.1, 0.6)},
            has_label=True, text="_C0025",
        )

        def numpy_filter() -> np.ndarray:
            return ti.sort_rows(index, ti.filter_rows(index, flt), "seam_score", True)

        sql_cat = Catalog.open(project, readonly=True)

        def sql_filter() -> list:
            return sql_cat.query(
                "SELECT t.id FROM tiles t JOIN subdatasets d ON d.id = t.subdataset_id"
                " JOIN split_tiles st ON st.tile_id = t.id AND st.split_id = 1"
                " JOIN qc_metrics f ON f.tile_id = t.id AND f.metric = 'fill_fraction'"
                " JOIN qc_metrics s ON s.tile_id = t.id AND s.metric = 'seam_score'"
                " WHERE d.name IN ('UAV set', 'mixed') AND st.part = 'train'"
                " AND f.value BETWEEN 0.1 AND 0.6 AND t.label_pixels > 0"
                " AND t.name LIKE '%\\_c0025%' ESCAPE '\\' ORDER BY s.value DESC"
            )

        names = index.names.tolist()
        subs = [index.subdataset_names[c] for c in index.subdataset_code]
        fill = index.metrics["fill_fraction"].tolist()
        seam = index.metrics["seam_score"].tolist()
        parts = index.split_part.tolist()
        labels = index.label_pixels.tolist()

        def python_filter() -> list:
            keep = [
                i for i in range(len(names))
                if subs[i] in ("UAV set", "mixed") and parts[i] == 1 and 0.1 <= fill[i] <= 0.6
                and labels[i] > 0 and "_c0025" in names[i].lower()
            ]
            return sorted(keep, key=lambda i: -seam[i])

        n_np = numpy_filter().size
        assert n_np == len(sql_filter()) == len(python_filter()), "filters disagree"

        def best(func, repeat: int = 7) -> float:
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                func()
                times.append(time.perf_counter() - t)
            return min(times)

        t_np, t_sql, t_py = best(numpy_filter), best(sql_filter, 3), best(python_filter, 3)
        sql_cat.close()
        panel.filters.search.setText("_c0025")
        t_panel = best(panel.apply_filter, 5)
        panel.filters.search.setText("")
        panel.apply_filter()
        big = ti.synthetic_index(100_000)
        big.names_lower()
        t_100k = best(lambda: ti.sort_rows(big, ti.filter_rows(big, flt), "seam_score", True))
        print(f"filter+sort {args.tiles} tiles ({n_np} kept): numpy {t_np * 1000:.2f} ms, "
              f"SQLite {t_sql * 1000:.1f} ms, Python loop {t_py * 1000:.1f} ms; panel update "
              f"{t_panel * 1000:.1f} ms; numpy on 100k tiles {t_100k * 1000:.2f} ms")

        # -- full scroll -------------------------------------------------------------------
        stalls = Stalls(app)
        rss0 = proc.memory_info().rss
        peak = rss0
        bar = panel.grid.verticalScrollBar()
        page = max(1, panel.grid.viewport().height())
        t = time.perf_counter()
        pages = 0
        avg_bytes: list[float] = []
        while True:
            keys = _visible_keys(panel)
            stalls.spin(lambda keys=keys: all(panel.loader.cached(k) is not None for k in keys))
            peak = max(peak, proc.memory_info().rss)
            if panel.loader._lru:
                avg_bytes.append(panel.loader.memory_bytes / len(panel.loader._lru))
            pages += 1
            if bar.value() >= bar.maximum() or pages == args.scroll_pages:
                break
            bar.setValue(min(bar.maximum(), bar.value() + page))
        scroll_s = time.perf_counter() - t
        decoded, cache_bytes = panel.loader.decoded, panel.loader.memory_bytes
        per_thumb = float(np.median(avg_bytes)) if avg_bytes else 0.0
        all_in_memory = per_thumb * args.tiles
        grown = peak - rss0
        print(f"full scroll: {pages} pages, {panel.loader.decoded} thumbnails decoded in {scroll_s:.1f} s "
              f"({panel.loader.decoded / scroll_s:.0f}/s); memory cache {panel.loader.memory_bytes / 2**20:.1f} MiB "
              f"(cap {args.cache_mb}); RSS +{grown / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB; keeping all "
              f"thumbnails would take {all_in_memory / 2**20:.0f} MiB; longest GUI-thread stall {stalls.worst * 1000:.0f} ms "
              f"(its CPU in a gap at most {stalls.worst_cpu * 1000:.0f} ms)")
        close_panel(context, panel)
        app.processEvents()

        # -- first screen, warm ------------------------------------------------------------
        t_index_w, warm, context, panel = first_screen(app, project, args.cache_mb)
        print(f"first screen warm: {warm * 1000:.0f} ms (index {t_index_w * 1000:.0f} ms, then thumbnails "
              f"{(warm - t_index_w) * 1000:.0f} ms); cold/warm {cold / warm:.1f}x")
        close_panel(context, panel)

        result.update(
            first_screen_cold_ms=round(cold * 1000, 1),
            first_screen_warm_ms=round(warm * 1000, 1),
            first_screen_cold_over_warm=round(cold / warm, 2),
            thumbnails_after_index_cold_ms=round((cold - t_index) * 1000, 1),
            thumbnails_after_index_warm_ms=round((warm - t_index_w) * 1000, 1),
            index_load_ms=round(t_index_w * 1000, 1),
            visible_thumbnails=n_visible,
            filter_numpy_ms=round(t_np * 1000, 3),
            filter_sqlite_ms=round(t_sql * 1000, 2),
            filter_python_ms=round(t_py * 1000, 2),
            filter_sqlite_over_numpy=round(t_sql / t_np, 1),
            filter_python_over_numpy=round(t_py / t_np, 1),
            filter_panel_update_ms=round(t_panel * 1000, 2),
            filter_numpy_100k_ms=round(t_100k * 1000, 3),
            scroll_pages=pages,
            scroll_s=round(scroll_s, 1),
            thumbnails_decoded=decoded,
            thumbnails_per_s=round(decoded / scroll_s, 1),
            memory_cache_mib=round(cache_bytes / 2**20, 1),
            rss_growth_mib=round(grown / 2**20, 1),
            rss_peak_mib=round(peak / 2**20, 1),
            all_thumbnails_mib=round(all_in_memory / 2**20, 1),
            rss_growth_over_all_thumbnails=round(grown / all_in_memory, 3) if all_in_memory else None,
            gui_max_stall_ms=round(stalls.worst * 1000, 1),
            gui_max_gap_cpu_ms=round(stalls.worst_cpu * 1000, 1),
            goals={"first_screen_warm_ms<300": warm < 0.3,
                   "thumbnails_after_index_warm_ms<300": warm - t_index_w < 0.3, "filter_ms<16": t_np < 0.016,
                   "memory_bounded": grown < 2 * args.cache_mb * 2**20 + 150 * 2**20},
        )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
