"""Opening a project of a few thousand tiles returns to the event loop at once (issue 19,
item 1): the QC tab reads its table in a worker and says "Loading" until it arrives; the
Label tab builds its scene/tile list when it is first shown, not behind another tab."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from casdesk.core.labels.store import mark_pending, pending_tiles
from casdesk.core.project.catalog import Catalog, utc_now
from casdesk.core.qc import rules as qc
from casdesk.gui.editor.panel import EditorPanel
from casdesk.gui.qc import panel as qc_panel
from casdesk.gui.qc.panel import QCPanel
from casdesk.gui.shell.context import ProjectContext
from tests.support.tiles import write_raster

N_TILES = 3000


def _tiles(folder: Path, n: int) -> Catalog:
    image = write_raster(folder / "img.tif", np.full((3, 16, 16), 90, np.uint8))
    cat = Catalog.create(folder / "many")
    cat.add_tiles(
        [
            {"name": f"t{i:05d}", "subdataset": ("A", "B")[i % 2], "image_path": image, "width": 16, "height": 16}
            for i in range(n)
        ]
    )
    return cat


@pytest.fixture(scope="module")
def many_tiles(tmp_path_factory) -> Path:
    """N_TILES tiles sharing one small image, with stored QC metrics (about 1 s)."""
    cat = _tiles(tmp_path_factory.mktemp("many"), N_TILES)
    ids = [t.id for t in cat.tiles()]
    rng = np.random.default_rng(0)
    now = utc_now()  # after the tiles were added: the metrics are fresh
    rows = [
        (int(t), metric, qc.METRICS[metric].version, float(v), now)
        for metric in ("fill_fraction", "cloud_fraction")
        for t, v in zip(ids, rng.random(len(ids)), strict=True)
    ]
    cat.qc.put_metrics(rows)
    path = cat.path
    cat.close()
    return path


def test_qc_table_arrives_from_a_worker_after_open(qtbot, many_tiles, monkeypatch) -> None:
    threads: list[int] = []
    real = qc_panel.load_table_for

    def spy(path):  # type: ignore[no-untyped-def]
        threads.append(threading.get_ident())
        return real(path)

    monkeypatch.setattr(qc_panel, "load_table_for", spy)
    context = ProjectContext()
    panel = QCPanel(context)
    qtbot.addWidget(panel)
    try:
        context.open(many_tiles)
        # open returned without the table: the panel shows its loading state
        assert panel.table is None
        assert panel.heading.text().startswith("Loading")
        assert not panel.progress.isHidden() and panel.progress.maximum() == 0  # a busy bar
        qtbot.waitUntil(lambda: panel.table is not None, timeout=20_000)
        assert panel.progress.isHidden()
        assert threads and threads[0] != threading.get_ident()  # read off the GUI thread
        assert panel.heading.text().startswith(f"{N_TILES} tiles:")
        assert panel.counts["total"]["tiles"] == N_TILES
    finally:
        panel.shutdown()
        context.close()


def test_label_list_is_built_when_the_tab_is_first_shown(qtbot, many_tiles) -> None:
    context = ProjectContext()
    panel = EditorPanel(context)
    qtbot.addWidget(panel)
    refreshed: list[object] = []
    real_refresh = panel.model_chooser.refresh
    panel.model_chooser.refresh = lambda cat: (refreshed.append(cat), real_refresh(cat))  # type: ignore[method-assign]
    try:
        context.open(many_tiles)  # the Label tab is hidden: no 3,000-row list yet
        assert panel.targets.rows == [] and refreshed == []
        panel.resize(900, 600)
        panel.show()
        qtbot.waitUntil(lambda: len(panel.targets.rows) == N_TILES, timeout=10_000)
        assert refreshed == [context.catalog]  # the model box follows the project on show
        assert panel.target is not None  # the first entry is shown, as before
        names = {r.text for r in panel.targets.rows}
        assert "tile  t00007" in names
    finally:
        panel.shutdown()
        context.close()


def test_open_target_on_a_hidden_label_tab_opens_it_and_builds_the_list(qtbot, many_tiles) -> None:
    context = ProjectContext()
    panel = EditorPanel(context)
    qtbot.addWidget(panel)
    try:
        context.open(many_tiles)
        assert panel.targets.rows == []
        tid = context.catalog.tiles()[5].id
        panel.open_target("tile", tid)  # e.g. "Open in editor" from Browse
        assert panel.target is not None and panel.target.tile_id == tid  # opened at once
        qtbot.waitUntil(lambda: len(panel.targets.rows) == N_TILES, timeout=10_000)  # the list follows
        current = panel.target_view.currentIndex().data(0x0100)
        assert (current.kind, current.id) == ("tile", tid)
        assert panel.target.tile_id == tid
    finally:
        panel.shutdown()
        context.close()


def test_stale_masks_are_finished_at_open_with_the_label_tab_hidden(qtbot, tmp_path) -> None:
    cat = _tiles(tmp_path, 3)
    tid = cat.tiles()[1].id
    with cat.transaction():
        mark_pending(cat, [tid])  # as if a crash left this tile's mask stale
    path = cat.path
    cat.close()
    context = ProjectContext()
    panel = EditorPanel(context)
    qtbot.addWidget(panel)
    try:
        context.open(path)
        assert panel.targets.rows == []  # hidden: no list yet, but the repair starts now
        qtbot.waitUntil(lambda: pending_tiles(context.catalog) == [] and panel.regen_idle(), timeout=10_000)
    finally:
        panel.shutdown()
        context.close()
