"""The process's one QC table (``qc.shared_table``): loaded once, reloaded after every kind
of change to what it holds (by this connection, another one or another process), never
changed in place by a caller."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading

import numpy as np
import pytest

from casdesk.core.jobs import run_job
from casdesk.core.project.catalog import Catalog
from casdesk.core.qc import rules as qc
from casdesk.core.qc import shared

from .conftest import synthetic_rgb


@pytest.fixture
def catalog(make_project) -> Catalog:
    specs = [
        {"subdataset": "A", "image": synthetic_rgb(64, i), "mask": np.zeros((64, 64), np.uint8), "sensor": "UAV"}
        for i in range(3)
    ] + [{"subdataset": "B", "image": synthetic_rgb(64, 10 + i), "mask": None} for i in range(2)]
    cat = make_project(specs)
    run_job(qc.compute_metrics(cat, metrics=["fill_fraction", "label_fraction"], processes=False))
    shared.forget()
    return cat


def same_content(a: qc.QCTable, b: qc.QCTable) -> bool:
    def eq(x: np.ndarray, y: np.ndarray) -> bool:
        return bool(np.array_equal(x, y, equal_nan=x.dtype.kind == "f"))

    return (
        eq(a.tile_ids, b.tile_ids) and list(a.names) == list(b.names)
        and list(a.subdatasets) == list(b.subdatasets) and list(a.sensors) == list(b.sensors)
        and a.metrics.keys() == b.metrics.keys() and all(eq(a.metrics[k], b.metrics[k]) for k in a.metrics)
        and eq(a.manual, b.manual) and eq(a.computed, b.computed) and eq(a.stale, b.stale)
        and a.notes == b.notes
        and (a.measured or {}).keys() == (b.measured or {}).keys()
        and all(eq((a.measured or {})[k], (b.measured or {})[k]) for k in a.measured or {})
    )


def test_loaded_once_while_nothing_changes_whoever_asks(catalog: Catalog) -> None:
    first = qc.shared_table(catalog)
    other = Catalog.open(catalog.path, readonly=True)  # another view's own connection
    try:
        assert qc.shared_table(other) is first
    finally:
        other.close()
    assert qc.shared_table(catalog) is first
    assert shared.loads(catalog.path) == 1
    assert same_content(first, qc.load_table(catalog))


def test_callers_asking_at_once_share_one_load(catalog: Catalog, monkeypatch) -> None:
    started = threading.Event()
    release = threading.Event()
    real = shared.load_table

    def slow_load(cat: Catalog) -> qc.QCTable:
        started.set()
        release.wait(10)
        return real(cat)

    monkeypatch.setattr(shared, "load_table", slow_load)
    got: list[qc.QCTable] = []

    def ask() -> None:
        cat = Catalog.open(catalog.path, readonly=True)
        try:
            got.append(qc.shared_table(cat))
        finally:
            cat.close()

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    assert started.wait(10)
    release.set()
    for t in threads:
        t.join(10)
    assert len(got) == 4 and all(t is got[0] for t in got)
    assert shared.loads(catalog.path) == 1


def _decide(cat: Catalog) -> None:
    qc.set_decision(cat, [int(cat.tiles()[0].id)], "reject", note="blurred")


def _metric(cat: Catalog) -> None:
    tid = int(cat.tiles()[1].id)
    cat.qc.put_metrics([(tid, "fill_fraction", qc.METRICS["fill_fraction"].version, 0.75, "2099-01-01T00:00:00.000000+00:00")])


def _metric_same_time(cat: Catalog) -> None:
    """A value rewritten with a computation time no newer than the newest one."""
    tid = int(cat.tiles()[2].id)
    old = cat.query("SELECT computed FROM qc_metrics WHERE tile_id = ? AND metric = 'fill_fraction'", (tid,))[0][0]
    cat.qc.put_metrics([(tid, "fill_fraction", qc.METRICS["fill_fraction"].version, 0.5, old)])


def _stale(cat: Catalog) -> None:
    cat.touch_tile(int(cat.tiles()[0].id))


def _sensor(cat: Catalog) -> None:
    cat.update_subdataset("B", sensor="SAT")


def _new_tile(cat: Catalog) -> None:
    t = cat.tiles()[0]
    cat.add_tiles([{"name": "extra", "subdataset": "A", "image_path": str(t.image_path), "width": 64, "height": 64}])


def _removed_tiles(cat: Catalog) -> None:
    cat.delete_tiles(scene_id=None)


@pytest.mark.parametrize(
    "change", [_decide, _metric, _metric_same_time, _stale, _sensor, _new_tile, _removed_tiles],
    ids=lambda f: f.__name__.strip("_"),
)
def test_every_kind_of_change_gives_the_table_as_stored(catalog: Catalog, change) -> None:
    before = qc.shared_table(catalog)
    change(catalog)
    fresh = qc.load_table(catalog)
    assert not same_content(before, fresh), "the change must change what the table holds"
    after = qc.shared_table(catalog)
    assert after is not before and same_content(after, fresh)


def test_a_change_by_another_process_is_seen(catalog: Catalog) -> None:
    """The command line deciding on the same project while the GUI shows it."""
    before = qc.shared_table(catalog)
    tid = int(catalog.tiles()[0].id)
    code = (
        "import sys; from casdesk.core.project.catalog import Catalog; from casdesk.core.qc import rules as qc;"
        f"c = Catalog.open(sys.argv[1]); qc.set_decision(c, [{tid}], 'accept'); c.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(catalog.path)], check=True, timeout=60)
    after = qc.shared_table(catalog)
    assert after is not before and int(after.manual[after.rows([tid])[0]]) == 1


def test_a_new_detector_version_reloads(catalog: Catalog, monkeypatch) -> None:
    before = qc.shared_table(catalog)
    assert before.measured is not None and before.measured["fill_fraction"].all()
    metric = qc.METRICS["fill_fraction"]
    monkeypatch.setitem(qc.METRICS, "fill_fraction", dataclasses.replace(metric, version=metric.version + 1))
    after = qc.shared_table(catalog)
    assert after is not before and after.measured is not None and not after.measured["fill_fraction"].any()


def test_the_shared_table_cannot_be_changed_in_place_but_a_copy_can(catalog: Catalog) -> None:
    table = qc.shared_table(catalog)
    with pytest.raises(ValueError):
        table.metrics["fill_fraction"][0] = 1.0
    with pytest.raises(ValueError):
        table.manual[0] = 1
    mine = table.copy()
    mine.set_manual([int(mine.tile_ids[0])], "accept")
    mine.metrics["fill_fraction"][0] = 1.0
    assert table.manual[0] == 0 and table.metrics["fill_fraction"][0] != 1.0
    assert same_content(table, qc.load_table(catalog))


def test_forget_drops_a_closed_projects_table(catalog: Catalog) -> None:
    qc.shared_table(catalog)
    shared.forget(catalog.path)
    assert shared.loads(catalog.path) == 0
