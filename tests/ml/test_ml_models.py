"""Every registry model builds and trains one step at 1, 3 and 14 bands (64 px, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from casdesk.ml.errors import ModelError
from casdesk.ml.models.registry import REGISTRY, create_model, list_models


@pytest.mark.parametrize("bands", [1, 3, 14])
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_model_forward_backward(name: str, bands: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=bands, classes=1)
    x = torch.randn(2, bands, 64, 64)
    out = model(x)
    assert out.shape == (2, 1, 64, 64)
    out.mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads[:3])


@pytest.mark.parametrize("name", ["smp:FPN", "Linknet", "smp:UnetPlusPlus"])
def test_any_smp_architecture_by_name(name: str) -> None:
    model = create_model(name, encoder="resnet18", in_channels=4, classes=2)
    assert model(torch.randn(1, 4, 64, 64)).shape == (1, 2, 64, 64)


def test_two_class_output_and_mffenet_other_encoder() -> None:
    model = create_model("mffenet", encoder="resnet18", in_channels=3, classes=2)
    model.eval()
    assert model(torch.randn(1, 3, 96, 96)).shape == (1, 2, 96, 96)


def test_list_models_names_the_paper_models() -> None:
    names = [m["name"] for m in list_models()]
    assert names[:4] == ["fcn", "unet", "deeplabv3plus", "mffenet"]
    assert "smp:Segformer" in names


def test_unknown_model_and_encoder_errors() -> None:
    with pytest.raises(ModelError, match="unknown model"):
        create_model("resnet")
    with pytest.raises(ModelError, match="encoder"):
        create_model("unet", encoder="no-such-encoder")
    with pytest.raises(ModelError, match="not found"):
        create_model("unet", encoder_weights="/nonexistent/w.pth")


def test_local_encoder_weights_file(tmp_path: Path) -> None:
    """Weights from a local file (offline machines), adapted to 4 bands."""
    import segmentation_models_pytorch as smp

    src = smp.Unet("resnet18", encoder_weights=None)
    state = {k: v for k, v in src.encoder.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 512)  # a torchvision file has a classifier: skipped
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = create_model("unet", encoder="resnet18", in_channels=4, encoder_weights=path)
    w_src = src.encoder.conv1.weight
    w_new = model.encoder.conv1.weight
    assert w_new.shape[1] == 4
    assert torch.allclose(w_new[:, 1], w_src[:, 1] * 3 / 4)
    assert torch.equal(model.encoder.layer1[0].conv1.weight, src.encoder.layer1[0].conv1.weight)
    torch.save({"something": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(ModelError, match="matches only"):
        create_model("unet", encoder="resnet18", encoder_weights=tmp_path / "wrong.pth")


def test_offline_imagenet_gives_actionable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import segmentation_models_pytorch.encoders as enc

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(enc, "hf_hub_download", offline)
    with pytest.raises(ModelError, match="cannot be downloaded") as info:
        create_model("unet", encoder="resnet18", encoder_weights="imagenet")
    assert "--encoder-weights FILE" in str(info.value)
