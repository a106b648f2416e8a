"""The columnar tile table: loading, filters (checked against SQL), sorting, splits."""

from __future__ import annotations

import time

import numpy as np
import pytest

from casdesk.core.dataset import tile_table as ti
from casdesk.core.qc import rules as qc


def sql_count(cat, where: str, params=()) -> int:
    sql = (
        "SELECT COUNT(*) FROM tiles t JOIN subdatasets d ON d.id = t.subdataset_id"
        " LEFT JOIN scenes s ON s.id = t.scene_id"
        " LEFT JOIN qc_metrics f ON f.tile_id = t.id AND f.metric = 'fill_fraction'"
        " LEFT JOIN split_tiles st ON st.tile_id = t.id AND st.split_id = 1"
        f" WHERE {where}"
    )
    return int(cat.execute(sql, params).fetchone()[0])


def test_load_matches_catalog(browser_project):
    cat = browser_project.catalog
    index = ti.load_index(cat)
    assert len(index) == cat.tile_count()
    assert index.ids.tolist() == sorted(browser_project.ids)
    assert index.split_name == "s1"
    assert set(index.subdataset_names) == {"alpha UAV", "beta SAT"}
    assert {"fill_fraction", "cloud_fraction", "seam_score", ti.LABEL_FRACTION} <= set(index.metrics)
    tile = cat.tile(int(index.ids[5]))
    assert index.names[5] == tile.name
    assert index.metrics[ti.LABEL_FRACTION][5] == pytest.approx(tile.label_pixels / tile.valid_pixels)
    assert ti.SENSOR_NAMES[index.sensor_code[5]] == tile.sensor


def test_qc_state_matches_qc_module(browser_project):
    cat = browser_project.catalog
    index = ti.load_index(cat)
    states, _ = qc.evaluate(qc.load_table(cat), qc.current_rules(cat))
    assert index.qc_state.tolist() == states.tolist()
    ids = browser_project.ids
    assert index.qc_state[index.rows_of([ids[1]])[0]] == qc.MANUAL_REJECT
    assert index.manual[index.rows_of([ids[2]])[0]] == 0  # accept, then clear
    assert (index.qc_state == qc.PENDING).sum() == len(ids) // 10


@pytest.mark.parametrize(
    ("flt", "where", "params"),
    [
        (ti.TileFilter(), "1", ()),
        (ti.TileFilter(subdatasets=frozenset({"beta SAT"})), "d.name = ?", ("beta SAT",)),
        (ti.TileFilter(sensors=frozenset({"UAV"})), "COALESCE(s.sensor, d.sensor) = 'UAV'", ()),
        (ti.TileFilter(has_label=True), "t.label_pixels > 0", ()),
        (ti.TileFilter(has_label=False), "t.label_pixels = 0", ()),
        (ti.TileFilter(text="_X"), "t.name LIKE '%\\_x%' ESCAPE '\\'", ()),
        (ti.TileFilter(ranges={"fill_fraction": (0.25, 0.6)}), "f.value BETWEEN 0.25 AND 0.6", ()),
        (ti.TileFilter(split_parts=frozenset({"val"})), "st.part = 'val'", ()),
        (ti.TileFilter(split_parts=frozenset({""})), "st.part IS NULL", ()),
        (
            ti.TileFilter(
                subdatasets=frozenset({"alpha UAV"}),
                has_label=True,
                ranges={"fill_fraction": (0.0, 0.5)},
                split_parts=frozenset({"train", "test"}),
                text="tile_01",
            ),
            "d.name = 'alpha UAV' AND t.label_pixels > 0 AND f.value <= 0.5"
            " AND st.part IN ('train', 'test') AND t.name LIKE '%tile\\_01%' ESCAPE '\\'",
            (),
        ),
    ],
)
def test_filters_match_sql(browser_project, flt, where, params):
    cat = browser_project.catalog
    index = ti.load_index(cat)
    rows = ti.filter_rows(index, flt)
    expected = sql_count(cat, where, params)
    assert rows.size == expected
    assert expected > 0 or flt.split_parts == frozenset({""})


def test_qc_state_filter(browser_project):
    index = ti.load_index(browser_project.catalog)
    for code in (qc.PENDING, qc.MANUAL_REJECT, qc.ACCEPTED):
        rows = ti.filter_rows(index, ti.TileFilter(qc_states=frozenset({int(code)})))
        assert rows.size == int((index.qc_state == code).sum())
    both = ti.filter_rows(index, ti.TileFilter(qc_states=frozenset({int(qc.PENDING), int(qc.MANUAL_REJECT)})))
    assert both.size == int(np.isin(index.qc_state, [qc.PENDING, qc.MANUAL_REJECT]).sum())


def test_sort(browser_project):
    index = ti.load_index(browser_project.catalog)
    rows = ti.filter_rows(index, ti.TileFilter())
    by_name = ti.sort_rows(index, rows, "name")
    assert index.names[by_name].tolist() == sorted(index.names.tolist())
    by_fill = ti.sort_rows(index, rows, "fill_fraction", descending=True)
    values = index.metrics["fill_fraction"][by_fill]
    finite = values[~np.isnan(values)]
    assert (np.diff(finite) <= 0).all()
    assert np.isnan(values[-1]) and not np.isnan(values[0])  # missing values last
    assert ti.sort_rows(index, rows, "id", descending=True)[0] == rows[-1]
    with pytest.raises(KeyError):
        ti.sort_rows(index, rows, "nope")


def test_assign_split_creates_manual_split(browser_project):
    cat = browser_project.catalog
    ids = browser_project.ids[:5]
    ti.assign_split(cat, "hand-picked", ids, "test")
    ti.assign_split(cat, "hand-picked", ids[:2], "val")
    assert cat.execute("SELECT kind FROM splits WHERE name = 'hand-picked'").fetchone()[0] == "manual"
    parts = dict(
        cat.query(
            "SELECT tile_id, part FROM split_tiles st JOIN splits s ON s.id = st.split_id"
            " WHERE s.name = 'hand-picked'"
        )
    )
    assert parts == {ids[0]: "val", ids[1]: "val", ids[2]: "test", ids[3]: "test", ids[4]: "test"}
    index = ti.load_index(cat, split="hand-picked")
    assert (index.split_part > 0).sum() == 5
    with pytest.raises(Exception, match="unknown split part"):
        ti.assign_split(cat, "hand-picked", ids, "holdout")


def test_refresh_decisions(browser_project):
    cat = browser_project.catalog
    index = ti.load_index(cat)
    tid = browser_project.ids[7]
    qc.set_decision(cat, [tid], "accept")
    rows = ti.refresh_decisions(cat, index, [tid])
    assert index.qc_state[rows[0]] == qc.MANUAL_ACCEPT
    qc.set_decision(cat, [tid], "clear")
    ti.refresh_decisions(cat, index, [tid])
    assert index.qc_state[rows[0]] == index.auto_state[rows[0]]


def test_filter_100k_is_fast():
    index = ti.synthetic_index(100_000)
    index.names_lower()
    flt = ti.TileFilter(
        subdatasets=frozenset({"SAT set", "sub3"}),
        sensors=frozenset({"UAV"}),
        qc_states=frozenset({1, 3}),
        split_parts=frozenset({"train"}),
        ranges={"fill_fraction": (0.1, 0.7), ti.LABEL_FRACTION: (0.01, 0.05)},
        has_label=True,
        text="r0001",
    )
    ti.filter_rows(index, flt)
    best = min(_timed(lambda: ti.filter_rows(index, flt)) for _ in range(5))
    assert best < 0.05  # typically ~5 ms; generous for a loaded 2-core CI machine


def _timed(func) -> float:
    t = time.perf_counter()
    func()
    return time.perf_counter() - t
