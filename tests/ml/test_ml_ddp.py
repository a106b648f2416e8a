"""`casdesk train` under torchrun: DistributedDataParallel with gloo on 2 CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from casdesk.core.project.catalog import Catalog
from casdesk.ml.modelfile import load_model_file


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_torchrun_two_cpu_processes_write_one_model(make_project: Any, tmp_path: Path) -> None:
    project = make_project(n=10)
    run_dir = tmp_path / "ddp_run"
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME=os.environ.get("GLOO_SOCKET_IFNAME", "lo"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "casdesk", "train", str(project), "--model", "smp:Unet", "--encoder", "tu-resnet10t",
           "--epochs", "1", "--batch-size", "2", "--workers", "0", "--device", "cpu",
           "--out", str(run_dir), "--json", "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout[proc.stdout.index("{"):])  # rank 0 alone prints
    assert result["status"] == "finished" and "x2" in result["device"]
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.ckpt", "config.json", "last.ckpt", "log.csv", "model.pt"]
    with Catalog.open(project) as cat:
        runs = cat.query("SELECT status FROM runs")
        epochs = cat.execute("SELECT COUNT(*) FROM run_epochs").fetchone()[0]
    assert [r[0] for r in runs] == ["finished"] and epochs == 1
    model, meta = load_model_file(run_dir / "model.pt")
    assert meta["architecture"] == "smp:Unet"
