"""DDP faults of issue 18 on 2 gloo CPU processes: a rank without validation tiles, and an
out-of-memory error on one rank only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from casdesk.core.dataset.splits import make_split
from casdesk.core.project.catalog import Catalog

SCRIPT = r'''
import json, os, sys
import torch
import casdesk.ml.training.trainer as trainer
from casdesk.core.jobs import run_job
from casdesk.ml.training.config import TrainConfig

rank = int(os.environ["RANK"])
real = trainer.get_loss

def get_loss(name):
    fn = real(name)
    def wrapped(logits, target):
        if rank == 1 and logits.shape[0] == 4:  # a fake CUDA OOM on one process only
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return fn(logits, target)
    return wrapped

trainer.get_loss = get_loss
events = []
cfg = TrainConfig(model="smp:Unet", encoder="tu-resnet10t", split="h", epochs=2, batch_size=4,
                  num_workers=0, device="cpu", out_dir=sys.argv[2], optimizer="adamw", lr=1e-3)
result = run_job(trainer.train(sys.argv[1], cfg), lambda ev: events.append(ev))
out = {"status": result.status, "batch_size": result.batch_size, "epochs": result.epochs_done,
       "oom": [e.message for e in events if e.data.get("event") == "oom"],
       "val_tiles": [e.data.get("val_tiles") for e in events if e.data.get("event") == "start"]}
with open(os.path.join(sys.argv[3], f"rank{rank}.json"), "w") as f:
    json.dump(out, f)
'''


# two torchrun processes (about 15 s): in CI on purpose, the hang it guards against is silent
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_four_train_one_val_and_oom_on_one_rank_finish_together(make_project: Any, tmp_path: Path) -> None:
    # tiles t0..t3 are subdataset A, t4 is B: holdout B = 4 training tiles, 1 validation tile,
    # so rank 1 gets no validation batch (this hung until a timeout before issue 18)
    project = make_project(n=5, subdatasets=("A", "A", "A", "A", "B"))
    with Catalog.open(project) as cat:
        make_split(cat, "holdout", "h", holdout=["B"])
    script = tmp_path / "ddp_job.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME=os.environ.get("GLOO_SOCKET_IFNAME", "lo"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(project), str(tmp_path / "run"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r in ranks:
        assert r["status"] == "finished" and r["epochs"] == 2 and r["val_tiles"] == [1]
        # both processes halved together although only rank 1 ran out of memory
        assert r["batch_size"] == 2 and len(r["oom"]) == 1 and "on at least one process" in r["oom"][0]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "best.ckpt", "config.json", "last.ckpt", "log.csv", "model.pt"]


MID_RUN_OOM = r'''
import os, sys
import torch
import casdesk.ml.training.trainer as trainer
from casdesk.core.jobs import run_job
from casdesk.ml.training.config import TrainConfig

rank = int(os.environ["RANK"])
real = trainer.get_loss
calls = {"n": 0}

def get_loss(name):
    fn = real(name)
    def wrapped(logits, target):
        calls["n"] += 1
        if rank == 1 and calls["n"] == 3:  # a fake CUDA OOM in the middle of an epoch
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return fn(logits, target)
    return wrapped

trainer.get_loss = get_loss
cfg = TrainConfig(model="smp:Unet", encoder="tu-resnet10t", split="h", epochs=3, batch_size=1,
                  num_workers=0, device="cpu", out_dir=sys.argv[2], optimizer="adamw", lr=1e-3)
run_job(trainer.train(sys.argv[1], cfg), lambda ev: None)
'''


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_an_oom_in_the_middle_of_a_ddp_epoch_stops_every_process(make_project: Any, tmp_path: Path) -> None:
    """After the start-of-run probe, an OOM on one process ends it with the sentence that says
    what to do, and torchrun stops the others at once (no wait for a collective timeout)."""
    project = make_project(n=9, subdatasets=("A",) * 7 + ("B", "B"))
    with Catalog.open(project) as cat:
        make_split(cat, "holdout", "h", holdout=["B"])
    script = tmp_path / "oom_job.py"
    script.write_text(MID_RUN_OOM, encoding="utf-8")
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME=os.environ.get("GLOO_SOCKET_IFNAME", "lo"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(project), str(tmp_path / "run")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)  # gloo's own timeout: 30 min
    assert proc.returncode != 0
    assert "CUDA out of memory on process 1 during a DDP step" in proc.stderr
    assert "the processes cannot continue together" in proc.stderr
    assert "--batch-size 0" not in proc.stderr  # at batch size 1 the hint does not say "halve"
