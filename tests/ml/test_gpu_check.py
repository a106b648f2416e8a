"""scripts/gpu_check.py runs on the CPU (``--cpu-smoke``): the GPU check itself is tested."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _summary(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_gpu_check_cpu_smoke_trains_recovers_from_oom_and_predicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _load().main(["--cpu-smoke", "--models", "deeplabv3plus", "--skip", "ddp", "--keep", str(tmp_path)])
    summary = _summary(capsys)
    assert code == 0 and summary["ok"]
    (run,) = summary["train"]
    assert run["status"] == "finished" and run["precision"] == "fp32" and run["steps"] >= 1
    assert run["samples_per_s"] > 0 and 0.0 <= run["loader_wait"] <= 1.0
    assert summary["oom"]["recovered"] and summary["oom"]["final_batch_size"] == 2
    assert summary["predict"]["windows"] > 0


@pytest.mark.slow  # all four paper models, DDP and torchrun prediction with 2 gloo processes: minutes
def test_gpu_check_cpu_smoke_full(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _load().main(["--cpu-smoke", "--keep", str(tmp_path)])
    summary = _summary(capsys)
    assert code == 0 and summary["ok"] and summary["ddp"]["ok"]
    assert [m["model"] for m in summary["train"]] == ["fcn", "unet", "deeplabv3plus", "mffenet"]
    assert summary["predict"]["torchrun_same_files"] is True
