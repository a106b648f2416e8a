"""Issue 18 engine behaviour on the CPU: precision choice, no host sync in the batch loop,
batch size 1 on every paper model, checkpoints as model files, --resume settings, device
augmentation."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from casdesk.cli import main
from casdesk.core.jobs import CancelToken, run_job
from casdesk.ml.device import choose_precision
from casdesk.ml.errors import ModelError, TrainingError
from casdesk.ml.modelfile import load_model_file
from casdesk.ml.training.augment import Augment, DeviceTransform, gaussian_blur
from casdesk.ml.training.config import TrainConfig
from casdesk.ml.training.evaluate import confusion_torch, evaluate
from casdesk.ml.training.trainer import read_checkpoint, train

TINY = {"model": "smp:Unet", "encoder": "tu-resnet10t", "num_workers": 0, "device": "cpu",
        "optimizer": "sgd", "lr": 1e-3}


# --------------------------------------------------------------------------- precision
@pytest.mark.parametrize(("capability", "requested", "expected"), [
    (None, "auto", "fp32"),  # CPU
    (None, "off", "fp32"),
    ((7, 0), "auto", "fp16"),  # V100: bf16 is emulated there, not native
    ((7, 5), "auto", "fp16"),  # T4
    ((6, 1), "auto", "fp16"),
    ((8, 0), "auto", "bf16"),  # A100
    ((8, 6), "auto", "bf16"),
    ((9, 0), "auto", "bf16"),  # H100
    ((9, 0), "fp16", "fp16"),
    ((7, 0), "off", "fp32"),
    ((8, 0), "bf16", "bf16"),
])
def test_choose_precision(capability: tuple[int, int] | None, requested: str, expected: str) -> None:
    assert choose_precision(capability, requested) == expected


@pytest.mark.parametrize(("capability", "requested", "message"), [
    ((7, 5), "bf16", "no native bf16"),
    (None, "fp16", "needs a CUDA GPU"),
    (None, "bf16", "needs a CUDA GPU"),
    ((8, 0), "fp8", "unknown precision"),
])
def test_choose_precision_refuses_what_the_device_cannot_do(
    capability: tuple[int, int] | None, requested: str, message: str
) -> None:
    with pytest.raises(TrainingError, match=message):
        choose_precision(capability, requested)


# --------------------------------------------------------------------------- host syncs
SYNC_METHODS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


def _count_casdesk_syncs(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count read-backs of tensor values called from casdesk code (not torch's own)."""
    counts = dict.fromkeys(SYNC_METHODS, 0)
    for name in SYNC_METHODS:
        real = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("casdesk"):
                counts[_name] += 1
            return _real(self, *args, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


def test_batch_loop_reads_nothing_back_per_batch(make_project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    small = make_project(n=6, size=32, name="small")
    large = make_project(n=18, size=32, name="large")
    cfg = TrainConfig(epochs=1, batch_size=2, log_every=1000, augment="flips", **TINY)
    counts = _count_casdesk_syncs(monkeypatch)
    result_small = run_job(train(small, cfg))
    few = dict(counts)
    counts.update(dict.fromkeys(counts, 0))
    result_large = run_job(train(large, cfg))
    many = dict(counts)
    monkeypatch.undo()
    batches = [len(r.history) and r.history[0]["train"]["samples_per_s"] for r in (result_small, result_large)]
    assert all(batches)
    # 3x the batches (train and validation), the same number of read-backs: none per batch
    assert many == few, (few, many)


def test_confusion_on_device_equals_numpy() -> None:
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(size=(2, 1, 8, 8)).astype(np.float32))
    target = torch.from_numpy(rng.integers(0, 2, (2, 8, 8))).long()
    target[0, :2] = 255
    cm = confusion_torch(logits, target, 0.5).numpy()
    pred = (logits[:, 0] > 0).long().numpy()
    t = target.numpy()
    keep = t != 255
    expected = np.zeros((2, 2), dtype=np.int64)
    np.add.at(expected, (t[keep], pred[keep]), 1)
    assert (cm == expected).all() and cm.sum() == keep.sum()


# --------------------------------------------------------------------------- batch size 1
@pytest.mark.parametrize(("model", "encoder"), [
    pytest.param("fcn", None, marks=pytest.mark.slow), pytest.param("unet", "resnet18", marks=pytest.mark.slow),
    ("deeplabv3plus", "resnet18"), pytest.param("mffenet", "resnet18", marks=pytest.mark.slow),
])
def test_batch_size_one_trains_every_paper_model(make_project: Any, model: str, encoder: str | None) -> None:
    # the paper's architectures (ResNet18 instead of ResNet50 to keep the test short: the
    # BatchNorm layers that fail on one sample are in the decoders/heads, not the encoder)
    project = make_project(n=3, size=64)
    cfg = TrainConfig(model=model, encoder=encoder, epochs=1, batch_size=1, num_workers=0, device="cpu",
                      lr=1e-4)
    events: list[Any] = []
    result = run_job(train(project, cfg), events.append)
    assert result.status == "finished" and result.batch_size == 1
    notes = [e.message for e in events if e.data.get("event") == "note"]
    if model == "deeplabv3plus":  # the ASPP image-pooling BatchNorm sees one value per channel
        assert any("BatchNorm" in n and "eval mode" in n for n in notes), notes
        assert load_model_file(result.model_path)[1]["aspp_rates"] == [6, 12, 18]


# --------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, project_builder: Any) -> tuple[Path, Any]:
    project = project_builder(tmp_path_factory.mktemp("ckpt"), n=8)
    result = run_job(train(project, TrainConfig(epochs=1, batch_size=4, **TINY)))
    return project, result


def test_evaluate_accepts_checkpoints(tiny_run: tuple[Path, Any]) -> None:
    project, result = tiny_run
    by_model = run_job(evaluate(result.model_path, project, record=False))
    by_best = run_job(evaluate(result.run_dir / "best.ckpt", project, record=False))
    by_last = run_job(evaluate(result.run_dir / "last.ckpt", project, record=False))
    assert by_model.metrics == by_best.metrics == by_last.metrics  # one epoch: the same weights
    assert by_best.split == by_model.split and by_best.tiles == by_model.tiles


def test_predict_accepts_a_checkpoint(tiny_run: tuple[Path, Any], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    project, result = tiny_run
    from casdesk.core.project.catalog import Catalog

    with Catalog.open(project) as cat:
        scene = cat.tiles()[0].image_path
    code = main(["predict", str(result.run_dir / "best.ckpt"), str(scene), "--out", str(tmp_path / "o"),
                 "--device", "cpu", "--vector", "none", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)[0]["windows"] >= 1


def test_a_file_that_is_no_model_gets_one_sentence(tiny_run: tuple[Path, Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    project, _ = tiny_run
    from casdesk.core.project.catalog import Catalog

    with Catalog.open(project) as cat:
        tif = cat.tiles()[0].image_path
    with pytest.raises(ModelError, match="a GeoTIFF/TIFF raster, not a casdesk model file"):
        load_model_file(tif)
    bare = tmp_path / "weights.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bare)
    with pytest.raises(ModelError, match="did not write"):
        load_model_file(bare)
    assert main(["evaluate", str(tif), str(project)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a casdesk model file" in err and "best.ckpt" in err and "Traceback" not in err


def test_checkpoint_loads_with_the_safe_loader(tiny_run: tuple[Path, Any]) -> None:
    _, result = tiny_run
    blob = torch.load(result.run_dir / "last.ckpt", weights_only=True)  # no pickled numpy inside
    assert blob["precision"] == "fp32" and blob["model_meta"]["architecture"] == "smp:Unet"
    _, meta = load_model_file(result.model_path)
    assert meta["recipe"] == "custom" and meta["train_config"]["encoder"] == "tu-resnet10t"
    assert meta["precision"] == "fp32" and meta["aspp_rates"] is None  # a U-Net has no ASPP


def test_resume_keeps_saved_settings_unless_overridden(make_project: Any, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    project = make_project(n=6, size=32)
    token = CancelToken()
    cfg = TrainConfig(epochs=2, batch_size=2, log_every=3, out_dir=str(tmp_path / "run"), **TINY)

    def stop(ev: Any) -> None:
        if ev.data.get("event") == "batch":
            token.cancel()

    stopped = run_job(train(project, cfg, cancel=token), stop)
    assert stopped.status == "cancelled"
    assert main(["train", str(project), "--resume", str(stopped.run_dir), "--epochs", "9"]) == 2
    assert "epochs cannot change" in capsys.readouterr().err
    assert main(["train", str(project), "--resume", str(stopped.run_dir), "--json", "--quiet"]) == 0
    capsys.readouterr()
    saved = read_checkpoint(stopped.run_dir)["config"]
    assert (saved["num_workers"], saved["device"], saved["log_every"]) == (0, "cpu", 3)  # not the defaults


# --------------------------------------------------------------------------- device augmentation
def test_paper_augmentation_scales_crops_and_pads_with_ignore() -> None:
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32) % 251
    y = torch.ones(2, 32, 32, dtype=torch.uint8)
    params = torch.from_numpy(np.stack([
        Augment("paper").draw(np.random.default_rng(s), square=True) for s in range(2)]))
    params[0, 5], params[1, 5] = 0.5, 2.0  # half size (padded) and double size (cropped)
    t = DeviceTransform([0.0] * 3, [1.0] * 3, "paper")
    out, target = t(x.to(torch.uint8), y, params)
    assert out.shape == (2, 3, 32, 32) and target.shape == (2, 32, 32)
    assert (target[0] == 255).sum() == 32 * 32 - 16 * 16  # the padding of the half-size tile is ignore
    assert (out[0][:, target[0] == 255] == 0).all()
    assert (target[1] == 1).all()  # a crop of the doubled tile is all label


def test_gaussian_blur_keeps_constants_and_identity_at_sigma_zero() -> None:
    x = torch.rand(2, 3, 16, 16)
    out = gaussian_blur(x, torch.tensor([0.0, 0.8]))
    assert torch.equal(out[0], x[0]) and not torch.equal(out[1], x[1])
    flat = torch.full((1, 1, 8, 8), 3.0)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([0.9])), flat)


def test_head_lr_mult_gives_the_decoder_its_own_group(make_project: Any) -> None:
    from casdesk.ml.models.registry import create_model
    from casdesk.ml.training.net import build_optimizer

    model = create_model("smp:Unet", "tu-resnet10t", 3, 1)
    opt = build_optimizer(TrainConfig(head_lr_mult=10.0, lr=0.01), model)
    enc, head = opt.param_groups
    assert enc["lr"] == pytest.approx(0.01) and head["lr"] == pytest.approx(0.1)
    assert len(enc["params"]) == len(list(model.encoder.parameters()))
    assert len(enc["params"]) + len(head["params"]) == len(list(model.parameters()))


def test_flips_on_the_device_equal_per_sample_reference_ops() -> None:
    from casdesk.ml.training.augment import P_BRIGHT, P_CONTRAST, P_HFLIP, P_ROT, P_VFLIP, _flips

    x = torch.rand(16, 3, 8, 8)
    y = torch.randint(0, 3, (16, 8, 8), dtype=torch.uint8)
    p = torch.from_numpy(np.stack([Augment("flips").draw(np.random.default_rng(i), True) for i in range(16)]))
    out_x, out_y = _flips(x, y, p)
    for i in range(16):
        xi, yi = x[i], y[i]
        if p[i, P_HFLIP] > 0.5:
            xi, yi = xi.flip(-1), yi.flip(-1)
        if p[i, P_VFLIP] > 0.5:
            xi, yi = xi.flip(-2), yi.flip(-2)
        k = int(p[i, P_ROT])
        xi, yi = torch.rot90(xi, k, (-2, -1)), torch.rot90(yi, k, (-2, -1))
        assert torch.allclose(out_x[i], xi * p[i, P_CONTRAST] + p[i, P_BRIGHT]) and torch.equal(out_y[i], yi)


def test_a_bad_tile_in_a_worker_process_is_one_sentence(tmp_path: Path) -> None:
    from casdesk.core.errors import RasterError
    from casdesk.ml.training.data import (
        Normalization,
        TileDataset,
        TileRef,
        make_loader,
        worker_errors,
    )

    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tif")
    ds = TileDataset([TileRef(0, bad, bad, 32, 32)], Normalization([0.0] * 3, [1.0] * 3), size=(32, 32))
    with pytest.raises(RasterError) as info:
        list(worker_errors(make_loader(ds, 1, [0], num_workers=1)))
    text = str(info.value)
    assert text.startswith(str(bad)) and "not a raster" in text and "Traceback" not in text


def test_out_of_memory_in_validation_splits_the_batch() -> None:
    from casdesk.ml.training.evaluate import iter_confusion

    class PickyNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[int] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls.append(x.shape[0])
            if x.shape[0] > 1:
                raise torch.OutOfMemoryError("CUDA out of memory (fake)")
            return x.mean(1, keepdim=True) - 0.5

    torch.manual_seed(0)
    batches = [(torch.rand(4, 3, 8, 8), torch.randint(0, 2, (4, 8, 8))) for _ in range(2)]
    net = PickyNet()
    cm, _, samples, cancelled = run_job(iter_confusion(net, batches, torch.device("cpu")))  # type: ignore[arg-type]
    expected = sum(confusion_torch(x.mean(1, keepdim=True) - 0.5, y, 0.5) for x, y in batches)
    assert not cancelled and samples == 8 and torch.equal(cm, expected)
    assert 1 in net.calls and max(net.calls) == 4  # tried whole, then halves down to single tiles


def test_oom_halving_stops_at_batch_size_one_with_a_sentence(make_project: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import casdesk.ml.training.trainer as train_module

    def always_oom(name: str) -> Any:
        def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")

        return loss

    monkeypatch.setattr(train_module, "get_loss", always_oom)
    events: list[Any] = []
    with pytest.raises(TrainingError, match="even with batch size 1"):
        run_job(train(make_project(n=6, size=32), TrainConfig(epochs=1, batch_size=4, **TINY)), events.append)
    assert [e.data["batch_size"] for e in events if e.data.get("event") == "oom"] == [2, 1]


def test_train_cli_paper_recipe_runs_the_authors_pipeline(make_project: Any, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    project = make_project(n=6, size=32)
    run_dir = tmp_path / "paper"
    code = main(["train", str(project), "--recipe", "paper", "--encoder-weights", "none", "--model", "smp:Unet",
                 "--encoder", "tu-resnet10t", "--epochs", "1", "--batch-size", "2", "--workers", "0",
                 "--device", "cpu", "--out", str(run_dir), "--json", "--quiet"])
    out = capsys.readouterr()
    assert code == 0, out.err
    cfg = read_checkpoint(run_dir)["config"]
    assert (cfg["recipe"], cfg["classes"], cfg["normalization"], cfg["augment"], cfg["drop_last"]) == (
        "paper", 2, "imagenet", "paper", True)
    assert cfg["encoder_weights"] is None  # the explicit flag wins over the recipe
    _, meta = load_model_file(run_dir / "model.pt")
    assert meta["normalization"]["mean"] == pytest.approx([0.485 * 255, 0.456 * 255, 0.406 * 255])
