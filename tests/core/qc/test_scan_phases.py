"""The scan's two passes: every metric but the seam for every tile first, then the seam
(so the other rules' sliders count every tile long before the seam pass ends), on a small
project made from the released CAS tiles."""

from __future__ import annotations

import numpy as np
import pytest

from casdesk.core.errors import CasdeskError
from casdesk.core.jobs import CancelToken, Progress, run_job
from casdesk.core.qc import scan
from casdesk.core.qc.detectors import METRICS

from .conftest import CAS_TILES, real_tile

SEAM = "seam_score"
FAST = [n for n in METRICS if n not in scan.SLOW_METRICS]


@pytest.fixture
def cas_project(make_project):
    """Every released CAS tile (about 10), each with a stand-in label."""
    names = sorted(p.name for p in CAS_TILES.glob("*.tif*")) if CAS_TILES.exists() else []
    if len(names) < 4:
        pytest.skip(f"shared CAS tiles not found at {CAS_TILES}")
    specs = []
    for i, name in enumerate(names):
        img = real_tile(name)
        mask = (img[1].astype(np.int16) - img[2] > 20).astype(np.uint8)
        specs.append({"subdataset": f"S{i % 2}", "image": img, "mask": mask, "sensor": "SAT"})
    return make_project(specs)


def _stored(catalog) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {t.id: set() for t in catalog.tiles()}
    for tid, metric, _version, _computed in catalog.qc.metric_stamps():
        out[tid].add(metric)
    return out


def _record_writes(catalog, monkeypatch) -> list[list[tuple[int, str]]]:
    """Every transaction the scan writes, as (tile, metric) pairs in order."""
    writes: list[list[tuple[int, str]]] = []
    put = catalog.qc.put_metrics

    def recording(rows):
        writes.append([(int(r[0]), str(r[1])) for r in rows])
        put(rows)

    monkeypatch.setattr(catalog.qc, "put_metrics", recording)
    return writes


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_every_tile_has_its_fast_metrics_before_the_first_seam_value(cas_project, monkeypatch, processes) -> None:
    catalog = cas_project
    ids = {t.id for t in catalog.tiles()}
    monkeypatch.setattr(scan, "FLUSH_SECONDS", 0.0)  # a transaction per finished chunk: many
    if processes:
        monkeypatch.setattr(scan, "CHUNK", 2)
    writes = _record_writes(catalog, monkeypatch)
    events: list[Progress] = []
    seen: list[tuple[int, dict[int, set[str]]]] = []

    def on_event(event: Progress) -> None:
        events.append(event)
        seen.append((event.data.get("phase", -1), _stored(catalog)))

    n = run_job(scan.compute_metrics(catalog, workers=2, processes=processes), on_event)
    assert n == len(ids)
    order = [pair for batch in writes for pair in batch]
    first_seam = next(i for i, (_, metric) in enumerate(order) if metric == SEAM)
    before = order[:first_seam]
    assert {(t, m) for t, m in before} == {(t, m) for t in ids for m in FAST}  # all, and only, fast values
    assert all(m == SEAM for _, m in order[first_seam:])
    assert sorted(t for t, _ in order[first_seam:]) == sorted(ids)  # each tile's seam once
    assert len(writes) >= 3  # several transactions: the order is not one write's
    # what the progress callback saw: fast metrics of every tile before any seam value
    for _phase, stored in seen:
        if any(SEAM in got for got in stored.values()):
            assert all(set(FAST) <= got for got in stored.values())
    assert [phase for phase, _ in seen[1:]] == sorted(phase for phase, _ in seen[1:])
    assert {phase for phase, _ in seen[1:]} == {0, 1}
    assert events[-1].done == events[-1].total == 2 * len(ids)
    assert all(got == set(METRICS) for got in _stored(catalog).values())


def test_the_seam_pass_reads_no_mask(cas_project, monkeypatch) -> None:
    calls: list[tuple[str, bool]] = []
    load = scan.load_tile

    def spy(image_path, mask_path=None, sensor=None, fill_values=None, display_limits=None):
        calls.append((str(image_path), mask_path is not None))
        return load(image_path, mask_path, sensor, fill_values, display_limits)

    monkeypatch.setattr(scan, "load_tile", spy)
    n = len(cas_project.tiles())
    run_job(scan.compute_metrics(cas_project, workers=1))
    assert len(calls) == 2 * n  # each image read once per pass
    assert all(has_mask for _, has_mask in calls[:n])  # the label fraction needs it
    assert not any(has_mask for _, has_mask in calls[n:])


def test_cancel_during_the_seam_pass_keeps_every_fast_metric(cas_project, monkeypatch) -> None:
    catalog = cas_project
    ids = {t.id for t in catalog.tiles()}
    monkeypatch.setattr(scan, "FLUSH_SECONDS", 0.0)
    token = CancelToken()

    def on_event(event: Progress) -> None:
        if event.data.get("phase") == 1 and event.data.get("tile_ids"):
            token.cancel()  # the first seam values are written: stop

    with pytest.raises(CasdeskError):
        run_job(scan.compute_metrics(catalog, workers=1, cancel=token), on_event)
    stored = _stored(catalog)
    assert all(set(FAST) <= got for got in stored.values())
    with_seam = {t for t, got in stored.items() if SEAM in got}
    assert with_seam and with_seam != ids  # cancelled in the middle of the seam pass
    fast_stamps = {(t, m): c for t, m, _v, c in catalog.qc.metric_stamps() if m != SEAM}
    # the next scan measures only the missing seam values
    calls: list[list[str]] = []
    measure = scan.measure_tile

    def spy(tile, names, display_limits=None):
        calls.append(list(names))
        return measure(tile, names, display_limits)

    monkeypatch.setattr(scan, "measure_tile", spy)
    assert run_job(scan.compute_metrics(catalog, workers=1)) == len(ids - with_seam)
    assert calls == [[SEAM]] * len(ids - with_seam)
    assert {(t, m): c for t, m, _v, c in catalog.qc.metric_stamps() if m != SEAM} == fast_stamps
    assert all(got == set(METRICS) for got in _stored(catalog).values())


def test_without_the_seam_one_pass(cas_project) -> None:
    events: list[Progress] = []
    n = run_job(scan.compute_metrics(cas_project, metrics=FAST, workers=1), events.append)
    assert n == len(cas_project.tiles())
    assert events[-1].done == events[-1].total == n
    assert {e.data.get("phase") for e in events[1:]} == {0}
