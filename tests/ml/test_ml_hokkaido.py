"""End to end on real data: the public Hokkaido image/mask pairs (512 px RGB PNG, masks
red on black), imported with the pairs importer, split, trained one epoch, evaluated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from casdesk.cli import main
from casdesk.core.dataset.importers import import_pairs
from casdesk.core.dataset.splits import make_split
from casdesk.core.jobs import run_job
from casdesk.core.project.catalog import Catalog


def test_hokkaido_pairs_train_and_evaluate(shared_data: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    folder = shared_data / "hokkaido_png"
    if not (folder / "images").is_dir():
        pytest.skip(f"{folder} not found")
    project = tmp_path / "hokkaido.casdesk"
    with Catalog.create(project) as cat:
        count = run_job(import_pairs(cat, folder, subdataset="Hokkaido"))
        assert count >= 8
        tiles = cat.tiles()
        assert sum(1 for t in tiles if (t.label_pixels or 0) > 0) > 0
        # 6 of the 512 px tiles keep the CPU run short: 4 train, 2 validation
        make_split(cat, "random", "small", tile_ids=[t.id for t in tiles[:6]])
    run_dir = tmp_path / "run"
    args: list[Any] = ["train", str(project), "--model", "smp:FPN", "--encoder", "tu-resnet10t",
                       "--epochs", "1", "--batch-size", "2", "--workers", "0", "--device", "cpu",
                       "--optimizer", "adamw", "--lr", "0.001", "--out", str(run_dir), "--json", "--quiet"]
    capsys.readouterr()
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "finished"
    assert 0.0 <= result["best_metrics"]["miou"] <= 1.0 and result["best_metrics"]["pixels"] > 0
    assert main(["evaluate", str(run_dir / "model.pt"), str(project), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["split"] == "small" and ev["tiles"] == 2 and ev["metrics"]["pixels"] == ev["tiles"] * 512 * 512
