"""SIGKILL in the middle of real work: a power cut, the OOM killer, "End task".

Each test runs the work in a child process, kills it with SIGKILL (no handler, no
``finally``) while it writes, then checks what the user would find: the project opens and
passes quick_check, everything the child reported as saved is there, no half-written tile
is registered, and the work can be resumed.
"""

from __future__ import annotations

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


def test_kill_during_crop(big_scene: Path, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    project = tmp_path / "crop.casdesk"
    cli("init", project)
    assert cli("add-scene", project, big_scene).code == 0
    proc = python_subprocess("from casdesk.cli import main; import sys; sys.exit(main(sys.argv[1:]))",
                             "crop", project, "--size", "64", "--workers", "1")
    reader = Catalog.open(project, readonly=True)
    try:
        seen: list[int] = []

        def first_batch_committed() -> bool:
            seen[:] = [r[0] for r in reader.query("SELECT id FROM tiles")]
            return len(seen) >= 256

        wait_for(first_batch_committed, 60, "the first batch of tiles", proc)
        assert proc.poll() is None, "the crop finished before the kill: make the scene larger"
    finally:
        reader.close()
        kill9(proc)

    cat = assert_project_sound(project)  # every registered tile's three files open
    registered = {t.id for t in cat.tiles()}
    cat.close()
    assert set(seen) <= registered and len(registered) <= 512
    tile_dir = project.parent / "crop.casdesk.d" / "tiles" / "big"
    for path in tile_dir.rglob("[!.]*.tif"):  # visible files are whole: writes are atomic
        with rasterio.open(path) as ds:
            ds.read(1)

    # cropping again finishes the job and keeps the ids (QC decisions stay attached)
    result = cli("crop", project, "--size", "64", "--json")
    assert result.code == 0, result.err
    cat = assert_project_sound(project)
    assert cat.tile_count() == 512 and registered <= {t.id for t in cat.tiles()}
    cat.close()


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
