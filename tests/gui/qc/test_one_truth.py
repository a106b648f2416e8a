"""One QC truth (issue 16): the QC panel's sliders are the project's working rules, and the
browser's states and filters, ``export --accepted-only``, training's kept tiles and the CLI
all agree with the panel; label edits never reset the rules; review queues are separate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from casdesk.cli import main
from casdesk.core.dataset import tile_table as ti
from casdesk.core.jobs import run_job
from casdesk.core.project.events import MasksChanged
from casdesk.core.project.stores.qc import QcRecords
from casdesk.core.qc import rules as qc
from casdesk.core.qc import shared
from casdesk.gui.browser.panel import BrowserPanel
from casdesk.gui.map.panel import MapPanel
from casdesk.gui.qc.panel import QCPanel
from casdesk.gui.shell.context import ProjectContext
from casdesk.ml.training.data import accepted_tile_ids as training_kept

from .conftest import fill_strip_specs


def measured_project(make_project, seed: int) -> Path:
    """A 16-tile project with every metric computed (closed; the process's QC table dropped)."""
    catalog = make_project(fill_strip_specs(16, seed=seed))
    run_job(qc.compute_metrics(catalog))
    path = catalog.path
    catalog.close()
    shared.forget()
    return path


@pytest.fixture
def views(qtbot, make_project):
    path = measured_project(make_project, seed=1)
    ctx = ProjectContext()
    panel = QCPanel(ctx)
    browser = BrowserPanel(ctx)
    qtbot.addWidget(panel)
    qtbot.addWidget(browser)
    ctx.open(path)
    assert panel.wait_loaded()
    qtbot.waitUntil(lambda: browser.index is not None and browser.qc_loaded, timeout=20_000)
    yield ctx, panel, browser, path
    panel.shutdown()
    ctx.close()


def _kept(panel: QCPanel) -> set[int]:
    keep = (panel.states == qc.ACCEPTED) | (panel.states == qc.MANUAL_ACCEPT)
    return {int(t) for t in panel.table.tile_ids[keep]}


def test_slider_move_reaches_browser_export_training_and_cli(views, qtbot, tmp_path: Path, capsys) -> None:
    ctx, panel, browser, path = views
    ed = panel.editors["fill_fraction"]
    ed.slider.setValue(ed._to_slider(0.12))  # the user drags the slider
    assert panel.preset_box.currentText() == "paper defaults (modified)"
    # debounced: persisted and announced once the slider rests; the browser follows
    with qtbot.waitSignal(ctx.events.qc_rules_changed, timeout=5_000):
        pass
    qtbot.waitUntil(lambda: browser.qc_loaded, timeout=20_000)
    rows = browser.index.rows_of(panel.table.tile_ids)
    assert browser.index.qc_state[rows].tolist() == panel.states.tolist()
    accepted = ti.filter_rows(browser.index, ti.TileFilter(qc_states=frozenset({int(qc.ACCEPTED)})))
    assert {int(t) for t in browser.index.ids[accepted]} == {
        int(t) for t in panel.table.tile_ids[panel.states == qc.ACCEPTED]
    }
    kept = _kept(panel)
    assert 0 < len(kept) < len(panel.table)
    # a rejected tile's tooltip says which rule and by how much
    rejected = int(panel.table.tile_ids[panel.states == qc.REJECTED][0])
    tip = browser.index.tooltip(int(browser.index.rows_of([rejected])[0]))
    assert "fill_fraction" in tip and "> 0.12 (by " in tip
    # the detail view says it too
    view_row = browser.model.view_rows_of_ids([rejected])
    if len(view_row):
        browser.open_detail(browser.model.index(int(view_row[0])))
        assert "(by " in browser.detail.title.text()
    # training's kept tiles and the core decision agree with the panel
    catalog = ctx.catalog
    assert training_kept(catalog) == kept
    assert set(qc.accepted_tile_ids(catalog)) == kept
    # the CLI (another process would read the same project file)
    capsys.readouterr()
    assert main(["qc", str(path), "--no-compute", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["total"] == panel.counts["total"]
    assert cli["subdatasets"] == panel.counts["subdatasets"]
    out = tmp_path / "export"
    assert main(["export", str(path), str(out), "--accepted-only"]) == 0
    exported = {p.stem for p in (out).rglob("*.tif") if "img" in p.parent.name.lower()}
    names = {str(panel.table.names[i]) for i in range(len(panel.table)) if int(panel.table.tile_ids[i]) in kept}
    assert exported == names


def test_save_preset_only_names_and_label_edits_keep_rules(views, qtbot) -> None:
    ctx, panel, _browser, _path = views
    panel.set_threshold("fill_fraction", 0.2)
    panel.persist_rules()
    assert qc.current_rules(ctx.catalog)[0].threshold == pytest.approx(0.2, abs=1e-3)
    states = panel.states.copy()
    panel.save_preset("mine")
    assert panel.preset_box.currentText() == "mine"  # named, no "(modified)"
    assert panel.states.tolist() == states.tolist()  # nothing moved
    panel.set_threshold("fill_fraction", 0.25)
    assert panel.preset_box.currentText() == "mine (modified)"
    ctx.tiles_changed.emit()  # a label edit elsewhere reloads the tiles
    assert panel.wait_loaded()
    assert panel.rules[0].threshold == pytest.approx(0.25, abs=1e-3)
    assert panel.editors["fill_fraction"].spin.value() == pytest.approx(0.25, abs=1e-3)


def test_review_flagged_and_rejected_are_separate(views) -> None:
    _ctx, panel, _browser, _path = views
    panel.set_threshold("fill_fraction", 0.3)
    flagged, rejected = panel.review_queue("flagged"), panel.review_queue("rejected")
    assert flagged and rejected and not set(flagged) & set(rejected)
    assert all(panel.state_of(t) == "flagged" for t in flagged)
    dialog = panel.open_review("rejected")
    assert dialog.queue == rejected
    assert "(by " in dialog.info.text()  # which rule fired and by how much
    dialog.close()


def test_changed_mask_marks_metrics_stale_then_recomputes(views, qtbot) -> None:
    ctx, panel, _browser, _path = views
    catalog = ctx.catalog
    tile = catalog.tiles()[2]
    with catalog.transaction() as db:  # the editor rewrote the mask
        db.execute("UPDATE tiles SET modified = '2999-01-01T00:00:00.000+00:00' WHERE id = ?", (tile.id,))
    ctx.events.announce(MasksChanged((tile.id,)))
    assert "metrics stale" in panel.heading.text()
    qtbot.waitUntil(lambda: "stale" not in panel.heading.text(), timeout=30_000)
    assert not panel.table.stale.any()


def test_tiles_a_new_detector_version_has_not_measured_are_pending_everywhere(views, qtbot, capsys) -> None:
    # a seam detector of a newer version leaves the stored seam values unused: the panel,
    # the browser, the exported/kept tiles and the CLI all show those tiles pending (never
    # accepted by a rule that did not look at them) until Compute metrics measures them
    ctx, panel, browser, path = views
    with ctx.catalog.transaction() as db:
        db.execute("UPDATE qc_metrics SET version = 0 WHERE metric = 'seam_score'")
    ctx.metrics_changed.emit()
    assert panel.wait_loaded()
    qtbot.waitUntil(lambda: browser.qc_loaded and (browser.index.qc_state == qc.PENDING).any(), timeout=20_000)
    pending = {int(t) for t in panel.table.tile_ids[panel.states == qc.PENDING]}
    assert pending and panel.counts["total"]["accepted"] == 0  # every unrejected tile waits
    assert f"{len(pending)} pending: seam_score not measured yet" in panel.heading.text()
    rows = browser.index.rows_of(panel.table.tile_ids)
    assert browser.index.qc_state[rows].tolist() == panel.states.tolist()
    waiting = browser.index.rows_of(sorted(pending))[0]  # the browser says what it waits for
    assert "QC: pending (seam_score not measured yet)" in browser.index.tooltip(int(waiting))
    assert not set(qc.accepted_tile_ids(ctx.catalog)) & pending
    capsys.readouterr()
    assert main(["qc", str(path), "--no-compute", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == panel.counts["total"]


def test_qc_presentation(views) -> None:
    """Issue 19: the histogram says its last bar holds everything beyond the range, the
    y axis fits its labels, equal-looking subdataset names are not cut to the same text."""
    _ctx, panel, _browser, _path = views
    ed = panel.editors["label_fraction"]
    ed.set_values(np.array([0.001, 0.005, 0.03, 0.5, np.nan]))  # two beyond 0.02
    assert ed.overflow.textItem.toPlainText() == "last bar: \u2265 0.02 (2)"
    ed.set_values(np.r_[np.zeros(20865), 0.5])
    assert panel.editors["label_fraction"].plot.getAxis("left").maximumWidth() > 40
    names = ["Tiburon Peninsula (Sentinel)", "Tiburon Peninsula (Planet)"]
    counts = {"tiles": 1, "accepted": 1, "rejected": 0, "flagged": 0, "manual_accept": 0,
              "manual_reject": 0, "pending": 0, "kept": 1}
    view = panel.counts_view
    view.set_counts({"total": counts, "subdatasets": {n: counts for n in names}})
    view.resize(500, 300)
    view.resizeColumnsToContents()
    fm = view.fontMetrics()
    for r in (1, 2):
        text = view.item(r, 0).text()
        shown = fm.elidedText(text, view.textElideMode(), view.columnWidth(0) - 8)
        assert shown == text or shown.endswith(text[-8:])  # the end ("(Planet)") stays visible


def test_the_views_count_with_one_loaded_table(qtbot, make_project, monkeypatch) -> None:
    """The QC panel, the browser and the map take one QC table, loaded once at open; a rules
    change re-evaluates it without reading the metrics again; a decision reloads it once."""
    full_reads: list[int] = []
    real_values = QcRecords.metric_values

    def counting(self, tile_ids=None):  # type: ignore[no-untyped-def]
        if tile_ids is None:
            full_reads.append(1)  # every tile's metrics read from the project
        return real_values(self, tile_ids)

    monkeypatch.setattr(QcRecords, "metric_values", counting)
    path = measured_project(make_project, seed=2)
    ctx = ProjectContext()
    panel, browser, map_panel = QCPanel(ctx), BrowserPanel(ctx), MapPanel(ctx)
    for widget in (panel, browser, map_panel):
        qtbot.addWidget(widget)
    map_panel.show()
    try:
        ctx.open(path)
        assert panel.wait_loaded()
        qtbot.waitUntil(lambda: browser.index is not None and browser.qc_loaded, timeout=20_000)
        qtbot.waitUntil(lambda: map_panel.data is not None and not map_panel.is_loading(), timeout=20_000)
        assert shared.loads(path) == 1 and len(full_reads) == 1
        ed = panel.editors["fill_fraction"]
        ed.slider.setValue(ed._to_slider(0.12))
        with qtbot.waitSignal(ctx.events.qc_rules_changed, timeout=5_000):
            pass
        qtbot.waitUntil(lambda: browser.qc_loaded and browser.index.rules == tuple(panel.rules), timeout=20_000)
        rows = browser.index.rows_of(panel.table.tile_ids)
        assert browser.index.qc_state[rows].tolist() == panel.states.tolist()
        assert shared.loads(path) == 1 and len(full_reads) == 1
        tid = int(panel.table.tile_ids[0])
        panel.decide([tid], "reject")
        qtbot.waitUntil(
            lambda: int(browser.index.qc_state[browser.index.rows_of([tid])[0]]) == qc.MANUAL_REJECT, timeout=20_000)
        browser.reload_qc()
        qtbot.waitUntil(lambda: browser.qc_loaded, timeout=20_000)
        assert shared.loads(path) == 2 and len(full_reads) == 2
        assert int(browser.index.manual[browser.index.rows_of([tid])[0]]) == -1
    finally:
        panel.shutdown()
        ctx.close()
