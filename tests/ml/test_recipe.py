"""The paper recipe is one choice away (config, CLI, GUI preset) and shows in the run's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from casdesk.cli import main
from casdesk.ml.errors import TrainingError
from casdesk.ml.models import weights as W
from casdesk.ml.training.config import PAPER_RECIPE, TrainConfig, apply_recipe, recipe_settings
from casdesk.ml.training.losses import dice_loss


def test_paper_recipe_settings() -> None:
    cfg = TrainConfig.from_recipe("paper").validate()
    assert (cfg.recipe, cfg.classes, cfg.loss) == ("paper", 2, "dice")
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay) == ("sgd", 0.01, 0.9, 5e-4)
    assert (cfg.encoder_weights, cfg.normalization, cfg.augment) == ("imagenet", "imagenet", "paper")
    assert cfg.drop_last is True
    assert cfg.head_lr_mult == 1.0  # the paper's single rate; the authors' DeepLab code uses 10
    assert TrainConfig().recipe == "custom" and TrainConfig().classes == 1


def test_explicit_settings_win_over_the_recipe() -> None:
    cfg = TrainConfig.from_recipe("paper", model="mffenet", head_lr_mult=10, epochs=3, batch_size=None,
                                  encoder_weights="none")
    assert (cfg.model, cfg.head_lr_mult, cfg.epochs) == ("mffenet", 10, 3)
    assert cfg.batch_size == TrainConfig().batch_size  # None: not given
    assert cfg.encoder_weights is None  # "none": from scratch, even under the paper recipe
    assert apply_recipe(TrainConfig(model="fcn", epochs=7), "paper").classes == 2
    assert apply_recipe(TrainConfig(model="fcn", epochs=7), "paper").epochs == 7
    assert recipe_settings("paper") == PAPER_RECIPE and recipe_settings("paper") is not PAPER_RECIPE


def test_bad_recipe_settings_are_named() -> None:
    with pytest.raises(TrainingError, match="recipe"):
        TrainConfig.from_recipe("authors")
    with pytest.raises(TrainingError, match="normalization"):
        TrainConfig(normalization="minmax").validate()
    with pytest.raises(TrainingError, match="augmentation"):
        TrainConfig(augment="mixup").validate()
    with pytest.raises(TrainingError, match="head_lr_mult"):
        TrainConfig(head_lr_mult=0).validate()


def test_toml_recipe(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[train]\nrecipe = "paper"\nmodel = "fcn"\nlr = 0.02\n', encoding="utf-8")
    cfg = TrainConfig.from_toml(path, epochs=2)
    assert (cfg.recipe, cfg.classes, cfg.model, cfg.lr, cfg.epochs) == ("paper", 2, "fcn", 0.02, 2)


def test_dice_over_both_classes() -> None:
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, :2] = 1
    perfect = torch.stack([(target == 0).float(), (target == 1).float()], dim=1) * 20 - 10
    assert dice_loss(perfect, target).item() < 1e-3
    # all background predicted: background Dice 2/3 (8 of 16 right), landslide Dice ~0: mean
    background = torch.zeros(1, 2, 4, 4)
    background[:, 0] = 10
    loss = dice_loss(background, target, smooth=0.0).item()
    assert loss == pytest.approx(1 - (2 * 8 / (16 + 8) + 0.0) / 2, abs=1e-3)
    ignored = target.clone()
    ignored[0, 0] = 255  # ignore pixels count in neither class
    assert dice_loss(perfect, ignored).item() < 1e-3


@pytest.fixture
def cached_resnet18(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fake torchvision ResNet18 file in a temporary torch hub cache; no download possible."""
    import torchvision

    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), hub / "checkpoints" / "resnet18-f37072fd.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.setattr(W, "_smp_cached", lambda encoder: None)

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("no network")

    monkeypatch.setattr(W, "_download_torchvision", no_network)
    monkeypatch.setattr(W, "_download_smp", no_network)
    return hub


@pytest.mark.slow  # a real one-epoch run: about 10 s on 2 CPU cores
def test_train_with_the_paper_recipe_records_it(capsys, tiny_project: Path, cached_resnet18: Path) -> None:
    from casdesk.core.evaluation.runs import list_runs
    from casdesk.core.project.catalog import Catalog
    from casdesk.ml.modelfile import read_model_file

    code = main(["train", str(tiny_project), "--recipe", "paper", "--model", "unet", "--encoder", "resnet18",
                 "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--workers", "0", "--json", "--quiet"])
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    config = json.loads((Path(result["run_dir"]) / "config.json").read_text(encoding="utf-8"))
    for key, value in PAPER_RECIPE.items():
        assert config[key] == value, key
    assert config["model"] == "unet"
    meta = read_model_file(result["model_path"])["meta"]
    assert meta["classes"] == 2 and meta["loss"] == "dice"
    assert meta.get("normalization_kind") == "imagenet"
    mean = meta["normalization"]["mean"]  # ImageNet mean on /255, in the tiles' 0-255 units
    assert mean[0] == pytest.approx(0.485 * 255, rel=1e-3) or mean[0] == pytest.approx(0.485, rel=1e-3)
    with Catalog.open(tiny_project, readonly=True) as cat:
        assert list_runs(cat)[0].config["recipe"] == "paper"


def test_paper_recipe_offline_stops_before_training(capsys, monkeypatch, tiny_project: Path, tmp_path: Path) -> None:
    from casdesk.core.evaluation.runs import list_runs
    from casdesk.core.project.catalog import Catalog

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    monkeypatch.setattr(W, "_smp_cached", lambda encoder: None)

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(W, "_download_torchvision", no_network)
    code = main(["train", str(tiny_project), "--recipe", "paper", "--model", "mffenet", "--epochs", "1",
                 "--device", "cpu", "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "resnet50-0676ba61.pth" in err and str(tmp_path / "empty-hub" / "checkpoints") in err
    assert "--encoder-weights FILE" in err and "--encoder-weights none" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    with Catalog.open(tiny_project, readonly=True) as cat:
        assert list_runs(cat) == []


def test_gui_paper_defaults_preset_is_the_recipe(qtbot) -> None:
    from casdesk.gui.training.form import TrainingForm

    form = TrainingForm()
    qtbot.addWidget(form)
    assert form.config_values()["recipe"] == "custom"
    form.refresh_presets()
    form.preset.setCurrentIndex(form.preset.findData("__paper__"))
    form._load_preset()
    values = form.config_values()
    for key, value in PAPER_RECIPE.items():
        assert values[key] == value, key
    assert TrainConfig.from_dict(values).validate().recipe == "paper"
    form.augment.setChecked(False)
    assert form.config_values()["augment"] == "none"
    form.lr.setValue(0.005)  # a field edited after the preset wins
    assert form.config_values()["lr"] == 0.005
    form.recipe.setCurrentIndex(form.recipe.findData("custom"))
    assert form.config_values()["recipe"] == "custom" and form.config_values()["augment"] is False
