"""SIGKILL in the middle of real work: a power cut, the OOM killer, "End task".

Each test runs the work in a child process, kills it with SIGKILL (no handler, no
``finally``) while it writes, then checks what the user would find: the project opens and
passes quick_check, everything the child reported as saved is there, no half-written tile
is registered, and the work can be resumed.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import rasterio

from casdesk.core.project.catalog import Catalog

from .conftest import (
    CliResult,
    assert_project_sound,
    kill9,
    python_subprocess,
    small_scene,
    wait_for,
)

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX"),
    pytest.mark.timeout(120),
]


@pytest.fixture()
def tiled_project(tmp_path: Path, cli: Callable[..., CliResult]) -> Path:
    """16 tiles of 64 x 64 pixels from a synthetic scene, with masks."""
    project = tmp_path / "p.casdesk"
    assert cli("init", project).code == 0
    assert cli("add-scene", project, small_scene(tmp_path / "scene.tif")).code == 0
    assert cli("crop", project, "--size", "64").code == 0
    return project


# ---------------------------------------------------------------------- QC decisions
DECIDER = textwrap.dedent(
    """
    import sys
    from casdesk.core.project.catalog import Catalog
    from casdesk.core.qc.rules import set_decision

    cat = Catalog.open(sys.argv[1])
    ids = [t.id for t in cat.tiles()]
    i = 0
    while True:
        set_decision(cat, [ids[i % len(ids)]], "accept" if i % 3 else "reject", note=str(i), author="robot")
        print(i, flush=True)  # reported saved: the transaction has committed
        i += 1
    """
)


def test_kill_during_qc_decisions(tiled_project: Path) -> None:
    proc = python_subprocess(DECIDER, tiled_project)
    try:
        last = -1
        while last < 150:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line, f"the deciding process died: {proc.stderr.read()[-2000:]}"  # type: ignore[union-attr]
            last = int(line)
        assert proc.poll() is None
    finally:
        unread = kill9(proc)
    last = max([last, *map(int, unread.split())])  # the last decision it reported saved
    cat = assert_project_sound(tiled_project)
    notes = [int(r[0]) for r in cat.query("SELECT note FROM qc_decisions ORDER BY id")]
    cat.close()
    # every reported decision is there, in order, with no gap; at most the one being
    # committed at the kill landed on top
    assert notes == list(range(len(notes))) and last + 1 <= len(notes) <= last + 2


# ---------------------------------------------------------------------- crop
@pytest.fixture(scope="module")
def big_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2048 x 1024 pixels: 512 tiles of 64, so the crop commits several batches."""
    from casdesk.core.dataset.synthetic import make_scene

    path = tmp_path_factory.mktemp("big") / "big.tif"
    make_scene(path, width=2048, height=1024, seed=5)
    return path


CLI = "from casdesk.cli import main; import sys; sys.exit(main(sys.argv[1:]))"


def _kill_when_staged(project: Path, argv: list[str | Path], staged: int) -> list[int]:
    """Run ``casdesk crop`` in a child, SIGKILL it once ``staged`` tiles are staged (the
    crop's committed batches); return the tile ids the catalog listed just before."""
    proc = python_subprocess(CLI, *argv)
    reader = Catalog.open(project, readonly=True)
    try:
        listed: list[int] = []

        def enough_staged() -> bool:
            listed[:] = [r[0] for r in reader.query("SELECT id FROM tiles ORDER BY id")]
            return reader.query("SELECT COUNT(*) FROM crop_staging")[0][0] >= staged

        wait_for(enough_staged, 60, f"{staged} staged tiles", proc)
        assert proc.poll() is None, "the crop finished before the kill: make the scene larger"
    finally:
        reader.close()
        kill9(proc)
    return listed


def test_kill_during_crop(big_scene: Path, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    """A first crop killed after 256 of 512 tiles: the catalog lists no half crop, the next
    command reports the crop interrupted and removes the dead writer's temporary files,
    and cropping again resumes (the staged tiles are not written again)."""
    project = tmp_path / "crop.casdesk"
    cli("init", project)
    assert cli("add-scene", project, big_scene).code == 0
    listed = _kill_when_staged(project, ["crop", project, "--size", "64", "--workers", "1"], 256)
    assert listed == []  # tiles appear in one step at the end of a crop, never half

    cat = assert_project_sound(project)
    assert cat.tile_count() == 0
    state, pid = cat.query("SELECT state, pid FROM scene_crops")[0]
    staged = cat.query("SELECT COUNT(*) FROM crop_staging")[0][0]
    cat.close()
    assert state == "running" and staged >= 256  # as the killed process left it
    tile_dir = project.parent / "crop.casdesk.d" / "tiles" / "big"
    (tile_dir / "img" / f".x.tif.{pid}-1234567.tmp").write_bytes(b"half")  # as a kill mid-write leaves it
    for path in tile_dir.rglob("[!.]*.tif"):  # visible files are whole: writes are atomic
        with rasterio.open(path) as ds:
            ds.read(1)

    info = cli("info", project)  # the next command, even a reading one, cleans up and says so
    assert info.code == 0
    assert "crop interrupted" in info.text and "removed" in info.text
    assert list(tile_dir.rglob(".*.tmp")) == []

    result = cli("crop", project, "--size", "64", "--json")
    assert result.code == 0, result.err
    out = json.loads(result.out)["big"]
    assert out["tiles"] == 512 and out["resumed_tiles"] >= staged
    cat = assert_project_sound(project)
    assert cat.tile_count() == 512 and cat.crop_state(1) == "complete"
    assert cat.query("SELECT COUNT(*) FROM crop_staging")[0][0] == 0
    cat.close()


def test_kill_during_recrop_at_another_size(big_scene: Path, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    """A re-crop at another size killed halfway: the catalog still lists exactly the old
    tiles with their files; a re-crop to completion replaces them and removes their files."""
    project = tmp_path / "re.casdesk"
    cli("init", project)
    assert cli("add-scene", project, big_scene).code == 0
    assert cli("crop", project, "--size", "128").code == 0
    cat = Catalog.open(project)
    before = [(t.id, t.image_path) for t in cat.tiles()]
    cat.close()
    assert len(before) == 128
    listed = _kill_when_staged(project, ["crop", project, "--size", "64", "--workers", "1"], 256)
    assert listed == [i for i, _ in before]

    cat = assert_project_sound(project)
    assert [(t.id, t.image_path) for t in cat.tiles()] == before  # the old crop, untouched
    cat.close()
    result = cli("crop", project, "--size", "64", "--json")
    assert result.code == 0, result.err
    out = json.loads(result.out)["big"]
    assert out["tiles"] == 512 and out["replaced_tiles"] == 128
    cat = assert_project_sound(project)
    assert not {i for i, _ in before} & {t.id for t in cat.tiles()}
    cat.close()
    assert not any(p.exists() for _, p in before)
    names = {p.name for p in (project.parent / "re.casdesk.d" / "tiles" / "big" / "img").iterdir()}
    assert len(names) == 512 and all("_64px_" in n for n in names)


EXPORTER = textwrap.dedent(
    """
    import sys
    from casdesk.core.dataset import export as ex
    real = ex._export_tile
    def slow(*args, **kwargs):
        real(*args, **kwargs)
        print("tile", flush=True)
        import time; time.sleep(0.05)
    ex._export_tile = slow
    from casdesk.cli import main
    sys.exit(main(["export", sys.argv[1], sys.argv[2], "--link", "copy"]))
    """
)


def test_kill_during_export(tiled_project: Path, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    """An export killed halfway leaves its hidden ``.OUT.partial-<pid>`` folder; the next
    export (and any command on the project) removes it, and the export completes."""
    out = tiled_project.parent / "export"
    proc = python_subprocess(EXPORTER, tiled_project, out)
    try:
        for _ in range(4):
            assert proc.stdout.readline() == "tile\n"  # type: ignore[union-attr]
    finally:
        kill9(proc)
    leftovers = list(out.parent.glob(".export.partial-*"))
    assert len(leftovers) == 1 and not out.exists()
    info = cli("info", tiled_project)  # the project folder is the export's parent here
    assert info.code == 0 and not leftovers[0].exists()

    proc = python_subprocess(EXPORTER, tiled_project, out)
    try:
        assert proc.stdout.readline() == "tile\n"  # type: ignore[union-attr]
    finally:
        kill9(proc)
    assert len(list(out.parent.glob(".export.partial-*"))) == 1
    result = cli("export", tiled_project, out, "--json")  # another export cleans the same folder
    assert result.code == 0, result.err
    assert list(out.parent.glob(".export.partial-*")) == []
    assert len(list((out / "scene" / "img").iterdir())) == 16


# ---------------------------------------------------------------------- training
def test_kill_during_training_checkpoint(tiled_project: Path, tmp_path: Path) -> None:
    """Kill ``casdesk train`` after its first checkpoint, while it writes the next ones."""
    run_dir = tmp_path / "run"
    proc = python_subprocess(
        "from casdesk.cli import main; import sys; sys.exit(main(sys.argv[1:]))",
        "train", tiled_project, "--model", "smp:Unet", "--encoder", "tu-resnet10t", "--encoder-weights", "none",
        "--epochs", "500", "--batch-size", "4", "--workers", "0", "--device", "cpu", "--out", run_dir, "--quiet",
    )
    try:
        wait_for(lambda: (run_dir / "last.ckpt").exists(), 90, "the first checkpoint", proc)
        time.sleep(0.3)  # land somewhere in the next epoch or its checkpoint write
        assert proc.poll() is None
    finally:
        kill9(proc)

    from casdesk.core.jobs import CancelToken
    from casdesk.ml.training.config import TrainConfig
    from casdesk.ml.training.trainer import read_checkpoint, train

    ckpt = read_checkpoint(run_dir)  # never a half file: atomic_save renames a complete one
    saved_epoch = int(ckpt["epoch"])
    assert saved_epoch >= 1
    cat = assert_project_sound(tiled_project)
    epochs = [r[0] for r in cat.query("SELECT epoch FROM run_epochs WHERE run_id = ? ORDER BY epoch",
                                      (ckpt["run_id"],))]
    cat.close()
    # the catalog records an epoch after its checkpoint is written: it never runs ahead
    assert epochs == list(range(1, len(epochs) + 1)) and saved_epoch - 1 <= len(epochs) <= saved_epoch

    token = CancelToken()
    job = train(tiled_project, TrainConfig(device="cpu", num_workers=0), resume=run_dir, cancel=token)
    start = None
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            result = stop.value
            break
        kind = event.data.get("event")
        if kind == "start":
            start = event.data["epoch"]
        elif kind == "epoch":
            token.cancel()  # one more epoch proves it continues; stop there
    assert start == saved_epoch
    assert result.status == "cancelled" and result.epochs_done == saved_epoch + 1
    assert result.run_id == ckpt["run_id"]
    assert int(read_checkpoint(run_dir)["epoch"]) == saved_epoch + 1
    with sqlite3.connect(tiled_project) as db:
        assert db.execute("SELECT MAX(epoch) FROM run_epochs WHERE run_id = ?",
                          (ckpt["run_id"],)).fetchone()[0] == saved_epoch + 1


# ---------------------------------------------------------------------- QC scan (two passes)
SCANNER = textwrap.dedent(
    """
    import sys
    from casdesk.core.qc.rules import compute_metrics
    for event in compute_metrics(sys.argv[1], workers=1, processes=False):
        print(event.data.get("phase", -1), event.done, flush=True)  # reported: rows committed
    """
)


def test_kill_during_the_seam_pass_keeps_whole_passes(tmp_path: Path, public_data: Path) -> None:
    """SIGKILL while the scan's seam pass runs on real released tiles: every tile keeps all
    of its fast metrics (the first pass committed), seam values exist only for measured
    tiles, and a re-run measures only the missing seam values, leaving the stored rows as
    they were."""
    from casdesk.core.jobs import run_job
    from casdesk.core.qc.rules import METRICS, compute_metrics

    images = sorted((public_data / "cas_tiles").glob("*.tif*"))
    if len(images) < 10:
        pytest.skip("released CAS tiles not found")
    cat = Catalog.create(tmp_path / "real.casdesk")
    rows = []
    for i in range(8):  # 80 tiles: the seam pass takes seconds, committed every second
        rows += [{"name": f"{p.stem}_{i}", "subdataset": "cas", "image_path": p, "width": 512, "height": 512}
                 for p in images]
    cat.add_tiles(rows)
    cat.close()
    project = tmp_path / "real.casdesk"
    proc = python_subprocess(SCANNER, project)
    seen: list[str] = []

    def in_seam_pass() -> bool:
        line = proc.stdout.readline() if proc.stdout is not None else ""
        seen.append(line)
        parts = line.split()
        # a seam batch committed, not the last one
        return len(parts) == 2 and parts[0] == "1" and len(rows) < int(parts[1]) < 2 * len(rows)
    wait_for(in_seam_pass, 90, "a committed seam batch", proc)
    kill9(proc)
    cat = assert_project_sound(project)
    try:
        fast = [m for m in METRICS if m != "seam_score"]
        stored = cat.query("SELECT tile_id, metric, value, computed FROM qc_metrics ORDER BY tile_id, metric")
        per_tile: dict[int, set[str]] = {}
        for tid, metric, _v, _c in stored:
            per_tile.setdefault(int(tid), set()).add(str(metric))
        assert len(per_tile) == len(rows)  # the first pass finished for every tile
        assert all(set(fast) <= names for names in per_tile.values())
        with_seam = {t for t, names in per_tile.items() if "seam_score" in names}
        assert 0 < len(with_seam) < len(rows)
        before = {(r[0], r[1]): (r[2], r[3]) for r in stored}
        assert run_job(compute_metrics(cat, workers=1, processes=False)) == len(rows) - len(with_seam)
        after = {(r[0], r[1]): (r[2], r[3]) for r in cat.query("SELECT tile_id, metric, value, computed FROM qc_metrics")}
        assert {k: after[k] for k in before} == before  # what was stored is untouched
        assert len(after) == len(rows) * len(METRICS)
    finally:
        cat.close()
