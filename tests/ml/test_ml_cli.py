"""`casdesk split`, `casdesk train` and `casdesk evaluate` from the command line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from casdesk.cli import main


def test_split_train_evaluate(make_project: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    project = make_project(n=8)
    assert main(["split", str(project), "--kind", "holdout", "--holdout", "B", "--name", "hold"]) == 0
    assert "hold  (holdout; train 4, val 4)" in capsys.readouterr().out
    assert main(["split", str(project), "--list", "--json"]) == 0
    assert [s["name"] for s in json.loads(capsys.readouterr().out)] == ["hold"]
    assert main(["split", str(project), "--name", "hold"]) == 2  # exists: a user error
    capsys.readouterr()

    run_dir = tmp_path / "run"
    code = main(["train", str(project), "--model", "smp:Unet", "--encoder", "tu-resnet10t", "--split", "hold",
                 "--epochs", "1", "--batch-size", "2", "--workers", "0", "--device", "cpu",
                 "--out", str(run_dir), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out)
    assert result["status"] == "finished" and result["run_dir"] == str(run_dir)
    assert {"f1_mean", "f1_landslide"} <= set(result["best_metrics"])
    assert "epoch 1/1" in out.err

    assert main(["evaluate", str(run_dir / "model.pt"), str(project), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["split"] == "hold" and ev["part"] == "val" and ev["tiles"] == 4
    assert main(["evaluate", str(run_dir / "model.pt"), str(project)]) == 0
    table = capsys.readouterr().out
    assert "F1 (class mean, paper)" in table and "F1 (landslide)" in table


def test_train_table_output_and_errors(make_project: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    project = make_project(n=6)
    cfg = tmp_path / "c.toml"
    cfg.write_text('model = "smp:Unet"\nencoder = "tu-resnet10t"\nepochs = 1\nbatch_size = 2\nnum_workers = 0\nclasses = 2\nloss = "lovasz"\n')
    assert main(["train", str(project), "--config", str(cfg), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "F1 (class mean, paper)" in out and "model file:" in out
    assert main(["train", str(project), "--model", "nonsense", "--epochs", "1"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing.pt"), str(project)]) == 2


@pytest.mark.parametrize("command", ["split", "train", "evaluate"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0 and "usage" in capsys.readouterr().out
