"""Training engine: overfitting a tiny set, catalog records, model files, exact resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from casdesk.core.jobs import CancelToken, run_job
from casdesk.core.project.catalog import Catalog
from casdesk.ml.errors import DeviceError, TrainingError
from casdesk.ml.modelfile import load_model_file
from casdesk.ml.training.config import TrainConfig
from casdesk.ml.training.evaluate import evaluate
from casdesk.ml.training.trainer import TrainResult, read_checkpoint, train

TINY = {"model": "smp:Unet", "encoder": "tu-resnet10t", "num_workers": 0, "batch_size": 4,
        "optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.0, "loss": "dice+bce"}


def drive(job: Any, on_event: Any = None) -> tuple[TrainResult, list[Any]]:
    events = []
    while True:
        try:
            ev = next(job)
        except StopIteration as stop:
            return stop.value, events
        events.append(ev)
        if on_event is not None:
            on_event(ev, events)


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, project_builder: Any
) -> tuple[Path, TrainResult, list[Any]]:
    project = project_builder(tmp_path_factory.mktemp("trained"), n=12)
    config = TrainConfig(epochs=10, schedule="constant", **TINY)
    result, events = drive(train(project, config))
    return project, result, events


def test_small_model_overfits_tiny_dataset(trained: tuple[Path, TrainResult, list[Any]]) -> None:
    project, result, events = trained
    epochs = [e.data for e in events if e.data.get("event") == "epoch"]
    assert len(epochs) == 10 and result.status == "finished"
    assert epochs[-1]["train"]["loss"] < 0.5 * epochs[0]["train"]["loss"]
    # all-background prediction scores landslide IoU 0; the model must do far better
    ev = run_job(evaluate(result.model_path, project, part="train"))
    assert ev.metrics["iou"] > 0.6 and ev.metrics["miou"] > 0.75
    assert ev.split == "random-70-30-s0" and ev.tiles == 8


def test_progress_events_carry_numbers(trained: tuple[Path, TrainResult, list[Any]]) -> None:
    _, result, events = trained
    start = events[0].data
    assert start["event"] == "start" and start["device"] == "cpu" and start["train_tiles"] == 8
    batches = [e for e in events if e.data.get("event") == "batch"]
    assert len(batches) == 10 * 2  # 8 train tiles / batch 4
    b = batches[-1]
    assert b.done == b.total and {"loss", "samples_per_s", "eta_s", "lr"} <= set(b.data)
    epoch = [e for e in events if e.data.get("event") == "epoch"][-1]
    assert {"f1_mean", "f1_landslide", "miou", "iou"} <= set(epoch.data["val"])


def test_run_recorded_in_catalog_and_folder(trained: tuple[Path, TrainResult, list[Any]]) -> None:
    project, result, _ = trained
    with Catalog.open(project) as cat:
        run = cat.execute("SELECT * FROM runs WHERE id = ?", (result.run_id,)).fetchone()
        epochs = cat.query("SELECT epoch, metrics FROM run_epochs WHERE run_id = ? ORDER BY epoch",
                           (result.run_id,))
        split_name = cat.execute("SELECT name FROM splits WHERE id = ?", (run["split_id"],)).fetchone()[0]
    assert run["status"] == "finished" and run["device"] == "cpu" and run["duration_s"] > 0
    assert json.loads(run["config"])["model"] == "smp:Unet"
    assert json.loads(run["best_metrics"])["miou"] == pytest.approx(result.best_metrics["miou"])
    assert [r[0] for r in epochs] == list(range(1, 11)) and split_name == "random-70-30-s0"
    assert Path(run["model_path"]) == result.model_path
    rows = list(csv.DictReader((result.run_dir / "log.csv").read_text(encoding="utf-8").splitlines()))
    assert len(rows) == 10 and "val_f1_mean" in rows[0] and "train_loss" in rows[0]
    for name in ("last.ckpt", "best.ckpt", "model.pt", "config.json"):
        assert (result.run_dir / name).is_file()


def test_model_file_is_self_describing(trained: tuple[Path, TrainResult, list[Any]]) -> None:
    _, result, _ = trained
    model, meta = load_model_file(result.model_path)
    assert meta["architecture"] == "smp:Unet" and meta["encoder"] == "tu-resnet10t"
    assert meta["bands"] == 3 and meta["classes"] == 1 and meta["tile_size"] == [64, 64]
    assert len(meta["normalization"]["mean"]) == 3 and meta["split"] == "random-70-30-s0"
    assert meta["epoch"] == result.best_epoch and "f1_mean" in meta["metrics"]
    assert meta["casdesk_version"]
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)


def _resume_config() -> TrainConfig:
    cfg = dict(TINY, batch_size=2, grad_accum=2, schedule="poly", augment=True)
    return TrainConfig(epochs=3, **cfg)


def test_resume_after_cancel_matches_uninterrupted_run(make_project: Any) -> None:
    project = make_project(n=8)
    full, _ = drive(train(project, _resume_config()))
    token = CancelToken()
    after_cancel: list[Any] = []

    def cancel_mid_epoch(ev: Any, events: list[Any]) -> None:
        batches = [e for e in events if e.data.get("event") == "batch"]
        if token.cancelled and ev.data.get("event") == "batch":
            after_cancel.append(ev)
        if len(batches) == 4:  # epoch 2, batch 1 of 3: inside a gradient-accumulation group
            token.cancel()

    stopped, _ = drive(train(project, _resume_config(), cancel=token), cancel_mid_epoch)
    assert stopped.status == "cancelled" and not after_cancel  # stopped within one batch
    ckpt = read_checkpoint(stopped.run_dir)
    assert ckpt["epoch"] == 1 and ckpt["sample_offset"] == 0  # rolled back to the group start
    with Catalog.open(project) as cat:
        assert cat.execute("SELECT status FROM runs WHERE id = ?", (stopped.run_id,)).fetchone()[0] == "cancelled"
    resumed, _ = drive(train(project, resume=stopped.run_dir))
    assert resumed.status == "finished" and resumed.run_id == stopped.run_id and resumed.epochs_done == 3
    a = read_checkpoint(full.run_dir)
    b = read_checkpoint(resumed.run_dir)
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]
    assert [h["val"]["miou"] for h in a["history"]] == [h["val"]["miou"] for h in b["history"]]
    with Catalog.open(project) as cat:
        row = cat.execute("SELECT status FROM runs WHERE id = ?", (resumed.run_id,)).fetchone()
        n = cat.execute("SELECT COUNT(*) FROM run_epochs WHERE run_id = ?", (resumed.run_id,)).fetchone()[0]
    assert row[0] == "finished" and n == 3


def test_cuda_oom_retries_with_half_batch(make_project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import casdesk.ml.training.trainer as train_module

    real = train_module.get_loss
    calls = {"n": 0}

    def loss_with_oom(name: str) -> Any:
        fn = real(name)

        def wrapped(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1
            if logits.shape[0] == 4:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
            return fn(logits, target)

        return wrapped

    monkeypatch.setattr(train_module, "get_loss", loss_with_oom)
    result, events = drive(train(make_project(n=6), TrainConfig(epochs=1, **TINY)))
    oom = [e for e in events if e.data.get("event") == "oom"]
    assert len(oom) == 1 and "batch size 2" in oom[0].message
    assert result.status == "finished" and result.batch_size == 2


def test_early_stopping(make_project: Any) -> None:
    cfg = TrainConfig(epochs=6, early_stopping=1, **dict(TINY, lr=1e-9, optimizer="sgd"))
    result, _ = drive(train(make_project(n=4), cfg))
    assert result.status == "early_stopped" and result.epochs_done < 6


def test_gpu_request_never_falls_back_to_cpu(make_project: Any) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        drive(train(make_project(n=4), TrainConfig(device="cuda", **TINY)))


def test_amp_on_cpu_is_an_error_not_ignored(make_project: Any) -> None:
    with pytest.raises(TrainingError, match="needs a CUDA GPU"):
        drive(train(make_project(n=4), TrainConfig(amp="fp16", device="cpu", epochs=1, **TINY)))


def test_config_toml_and_validation(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[train]\nmodel = "unet"\nepochs = 3\nloss = "focal"\nencoder_weights = "none"\n')
    cfg = TrainConfig.from_toml(f, epochs=5)
    assert cfg.model == "unet" and cfg.epochs == 5 and cfg.loss == "focal" and cfg.encoder_weights is None
    f.write_text("epochz = 3\n")
    with pytest.raises(TrainingError, match="unknown training setting"):
        TrainConfig.from_toml(f)
    with pytest.raises(TrainingError, match="unknown loss"):
        TrainConfig(loss="hinge").validate()
    defaults = TrainConfig()
    assert (defaults.optimizer, defaults.lr, defaults.momentum, defaults.weight_decay, defaults.loss) == (
        "sgd", 0.01, 0.9, 5e-4, "dice")
