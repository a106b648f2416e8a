"""pytest-qt: the QC panel's live counts, presets, manual decisions and worker."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QThread

from casdesk.core.jobs import run_job
from casdesk.core.qc import rules as qc
from casdesk.gui.qc.panel import QCPanel

from .conftest import fill_strip_specs, qc_panel_on


@pytest.fixture
def panel(qtbot, make_project):
    with qc_panel_on(qtbot, make_project(fill_strip_specs(12, seed=0))) as widget:
        yield widget


def shown_matches_core(panel: QCPanel) -> None:
    table = qc.load_table(panel.context.catalog)
    expected = qc.count_states(table, qc.evaluate(table, panel.rules)[0])
    for sub, counts in [("Total", expected["total"]), *expected["subdatasets"].items()]:
        for key in ("accepted", "rejected", "flagged", "manual_accept", "pending"):
            assert panel.counts_view.value(sub, key) == counts[key], (sub, key)


def compute(panel: QCPanel, qtbot) -> None:
    with qtbot.waitSignal(panel.context.metrics_changed, timeout=60_000):
        panel.compute()
    qtbot.waitUntil(lambda: not panel.runner.is_running(), timeout=10_000)
    panel.runner.wait()
    assert panel.wait_loaded()


def test_compute_in_worker_then_drag_threshold(panel: QCPanel, qtbot) -> None:
    assert panel.counts_view.value("Total", "pending") == 12
    compute(panel, qtbot)
    assert panel.counts_view.value("Total", "pending") == 0
    shown_matches_core(panel)
    before = panel.counts_view.value("Total", "rejected")
    ed = panel.editors["fill_fraction"]
    ed.slider.setValue(ed._to_slider(0.1))  # as the user drags the slider
    assert panel.rules[0].threshold == pytest.approx(0.1, abs=1e-3)
    assert ed.spin.value() == pytest.approx(0.1, abs=1e-3)
    assert panel.counts_view.value("Total", "rejected") > before
    shown_matches_core(panel)
    ed.line.setValue(0.6)  # drag the histogram's threshold line
    assert ed.slider.value() == ed._to_slider(0.6)
    shown_matches_core(panel)


def test_manual_decision_survives_threshold_change(panel: QCPanel, qtbot) -> None:
    compute(panel, qtbot)
    queue = panel.review_queue()
    assert queue
    seen: list = []
    panel.context.decisions_changed.connect(seen.append)
    dialog = panel.open_review()
    qtbot.addWidget(dialog)
    first = dialog.current
    dialog.accept_tile()
    assert seen == [[first]]
    assert panel.state_of(first) == "manual accept"
    for value in (0.05, 0.5, 0.95):
        panel.set_threshold("fill_fraction", value)
        assert panel.state_of(first) == "manual accept"
        shown_matches_core(panel)
    dialog.undo()
    assert panel.state_of(first) != "manual accept"
    dialog.reject_tile()  # advances to the next tile
    dialog.previous()
    assert dialog.current == first
    dialog.note("blurry")
    assert panel.state_of(first) == "manual reject"
    table = qc.load_table(panel.context.catalog)
    assert table.notes[first] == "blurry"
    dialog.close()


def test_presets_and_external_decisions(panel: QCPanel, qtbot) -> None:
    compute(panel, qtbot)
    panel.set_threshold("fill_fraction", 0.7)
    panel.save_preset("loose")
    assert panel.preset_box.currentText() == "loose"
    panel.apply_preset(qc.PAPER_PRESET)
    assert panel.rules[0].threshold == pytest.approx(0.30)
    panel.apply_preset("loose")
    assert panel.editors["fill_fraction"].spin.value() == pytest.approx(0.7)
    # another panel (the tile browser) decides: we recount
    tid = int(panel.table.tile_ids[-1])
    qc.set_decision(panel.context.catalog, [tid], "reject")
    panel.context.decisions_changed.emit([tid])
    assert panel.state_of(tid) == "manual reject"
    shown_matches_core(panel)


def test_no_leaked_threads(panel: QCPanel, qtbot) -> None:
    compute(panel, qtbot)
    assert not panel.runner._thread.isRunning()
    assert isinstance(panel.runner._thread, QThread)


def test_recompute_is_noop_when_fresh(panel: QCPanel) -> None:
    catalog = panel.context.catalog
    run_job(qc.compute_metrics(catalog))
    with catalog.transaction() as db:
        db.execute("UPDATE tiles SET modified = '2000-01-01T00:00:00+00:00'")
    assert run_job(qc.compute_metrics(catalog)) == 0


def test_suspect_labels_review_queue_highlights_disagreement(qtbot, panel):
    """Tiles ranked by the label-error finder open worst first, region shown in yellow."""
    import json

    import rasterio

    from casdesk.core.project.catalog import utc_now

    catalog = panel.context.catalog
    tiles = catalog.tiles()
    region = np.zeros((96, 96), np.uint8)
    region[10:40, 10:40] = 1
    region_path = catalog.data_dir / "region.tif"
    with rasterio.open(region_path, "w", driver="GTiff", width=96, height=96, count=1, dtype="uint8") as dst:
        dst.write(region[None])
    scores = {tiles[3].id: 0.9, tiles[7].id: 0.6}
    with catalog.transaction() as db:
        for tid, score in scores.items():
            db.execute("INSERT INTO qc_metrics(tile_id, metric, version, value, computed) VALUES (?, 'suspect_score', 1, ?, ?)",
                       (tid, score, utc_now()))
            db.execute("INSERT INTO suspects(tile_id, model, score, kind, attributes, created) VALUES (?, 'm', ?, ?, ?, ?)",
                       (tid, score, "missed_landslide", json.dumps({"region_path": str(region_path)}), utc_now()))
    review = panel.open_suspects()
    assert review.queue == [tiles[3].id, tiles[7].id]
    assert "missed landslide" in review.info.text() and "0.90" in review.info.text()
    image = review.image.pixmap().toImage()
    x, y = int(25 * image.width() / 96), int(25 * image.height() / 96)
    colour = image.pixelColor(x, y)
    assert colour.red() > 150 and colour.green() > 120 and colour.blue() < 100  # yellow tint
    review.reject_tile()
    from casdesk.core.qc.rules import latest_decisions

    assert latest_decisions(catalog)[tiles[3].id]["decision"] == "reject"
    review.close()


def test_histograms_follow_a_scan_at_most_once_a_second(panel: QCPanel, qtbot) -> None:
    """While a scan runs the counts follow every batch; the histograms are redrawn from the
    tiles done so far, at most once per HISTOGRAM_EVERY_MS (not only when the scan ends)."""
    from casdesk.core.jobs import Progress

    ed = panel.editors["fill_fraction"]
    assert int(np.sum(ed.bars.opts["height"])) == 0
    ids = [int(t) for t in panel.table.tile_ids[:5]]
    version = qc.METRICS["fill_fraction"].version
    panel.context.catalog.qc.put_metrics(
        [(t, "fill_fraction", version, 0.1 * k, "2999-01-01T00:00:00.000000+00:00") for k, t in enumerate(ids)])
    panel._on_progress(Progress(5, 12, "metrics: 5/12 tiles", {"tile_ids": ids}))  # a scan's batch
    assert panel.histogram_timer.isActive()
    assert panel.progress.text() == "metrics: 5/12 tiles"  # the pass and its own tiles
    panel._on_progress(Progress(5, 12, "", {"tile_ids": ids}))  # a second batch: no second timer
    qtbot.waitUntil(lambda: int(np.sum(ed.bars.opts["height"])) == 5, timeout=5_000)
    redrawn: list[str] = []
    for metric, editor in panel.editors.items():
        editor.set_values = lambda values, m=metric: redrawn.append(m)  # type: ignore[method-assign]
    panel._update_histograms()
    assert redrawn == []  # nothing changed since: no histogram is redrawn
    panel.table.metrics["seam_score"][0] = 3.0  # the seam pass measured a tile
    panel._update_histograms()
    assert redrawn == ["seam_score"]
