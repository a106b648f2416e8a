"""The model registry: the paper's four networks match the authors' in structure and size,
every model builds at any band count and 1 or 2 classes, and pretrained weights load from
local files or fail offline with a message naming the file (nothing downloads here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from casdesk.ml.errors import ModelError
from casdesk.ml.models import weights as W
from casdesk.ml.models.registry import (
    REGISTRY,
    create_model,
    describe_models,
    list_models,
    parameter_count,
    parameter_groups,
    split_parameters,
)

PAPER = ("fcn", "unet", "deeplabv3plus", "mffenet")


# --------------------------------------------------------------------------- sizes
@pytest.mark.parametrize(("name", "encoder", "reference"), [
    ("fcn", None, 18.64e6),  # Aizu0/Code- FCN/fcn.py, FCNs on VGG16
    ("mffenet", None, 52.36e6),  # xupine/LandslideNet MFFENet, ResNet50 (the paper's backbone)
    ("mffenet", "resnet101", 71.36e6),  # the same code as shipped (ResNet101)
])
def test_parameter_counts_match_the_authors_networks(name: str, encoder: str | None, reference: float) -> None:
    count = parameter_count(name, encoder, in_channels=3, classes=2)  # meta device: instant
    assert abs(count - reference) / reference < 0.03, f"{name} {encoder}: {count / 1e6:.2f} M"


def test_mffenet_parts_have_the_reference_sizes() -> None:
    with torch.device("meta"):
        model = create_model("mffenet", classes=2)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert abs(count(model.decoder) - 13.3e6) / 13.3e6 < 0.03  # the issue: ~13.3 M decoder
    assert abs(count(model.aspp) - 15.5e6) / 15.5e6 < 0.03
    # the classifier reads the concatenation of four 256-channel maps
    first = next(m for m in model.decoder.classifier.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 4 * 256


def test_models_command_data_lists_sizes_and_references() -> None:
    rows = {m["name"]: m for m in describe_models()}
    assert list(rows)[:4] == list(PAPER) and "fcn8s" in rows
    assert rows["fcn"]["reference_parameters"] == 18_640_000
    assert rows["mffenet"]["variants"]["resnet101"]["parameters"] > 70e6
    assert "xupine/LandslideNet" in rows["mffenet"]["reference"]
    assert all(m["parameters"] for m in rows.values())


# --------------------------------------------------------------------------- structure
def test_fcn_is_the_authors_fcns_not_fcn8s() -> None:
    model = create_model("fcn", classes=2)
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [u.stride for u in ups] == [(2, 2)] * 5
    assert [u.out_channels for u in ups] == [512, 256, 128, 64, 32]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.decoder.modules()) == 5
    classic = create_model("fcn8s", classes=2)
    assert abs(sum(p.numel() for p in classic.parameters()) - 20.49e6) < 0.05e6


def test_deeplabv3plus_uses_rates_6_12_18_at_output_stride_16() -> None:
    model = create_model("deeplabv3plus", classes=2)
    aspp = model.decoder.aspp[0]
    dilations = sorted({m.dilation[0] for m in aspp.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)})
    assert dilations == [6, 12, 18]
    # output stride 16: layer4 keeps stride 1 (dilated), the feature map is 1/16
    feats = model.encoder(torch.zeros(1, 3, 64, 64))
    assert feats[-1].shape[-1] == 4


def test_mffenet_backbone_is_deeplab_resnet_with_multi_grid() -> None:
    model = create_model("mffenet", encoder="resnet101", classes=2)
    assert len(model.encoder.layer3) == 23
    assert [b.conv2.dilation[0] for b in model.encoder.layer4] == [2, 4, 8]
    assert model.encoder.layer4[0].conv2.stride == (1, 1)
    assert model.aspp.rates == (6, 12, 18)
    feats = model.encoder(torch.zeros(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4]  # strides 2, 4, 8, 16
    assert [f.shape[1] for f in feats] == [64, 256, 512, 2048]


# --------------------------------------------------------------------------- forward passes
SLOW = pytest.mark.slow  # MFFENet's decoder works at half resolution on 1024 channels: ~5 s a pass on CPU


@pytest.mark.parametrize(("name", "bands", "classes"), [
    ("fcn", 3, 2), ("fcn", 4, 1), ("unet", 3, 2), ("unet", 4, 1), ("deeplabv3plus", 3, 2),
    ("deeplabv3plus", 4, 1), pytest.param("mffenet", 3, 2, marks=SLOW), pytest.param("mffenet", 4, 1, marks=SLOW),
])
def test_paper_model_forward_at_256_px(name: str, bands: int, classes: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=bands, classes=classes).eval()
    with torch.no_grad():
        out = model(torch.randn(1, bands, 256, 256))
    assert out.shape == (1, classes, 256, 256)
    assert torch.isfinite(out).all()


def test_mffenet_resnet50_forward_with_four_bands_and_one_class() -> None:
    model = create_model("mffenet", in_channels=4, classes=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 4, 96, 96)).shape == (1, 1, 96, 96)


@pytest.mark.parametrize(("name", "bands", "classes"), [
    ("fcn", 1, 2), ("fcn8s", 14, 1), ("unet", 1, 2), ("deeplabv3plus", 14, 1), ("mffenet", 1, 2), ("mffenet", 14, 1),
])
def test_registry_model_forward_backward(name: str, bands: int, classes: int) -> None:
    torch.manual_seed(0)
    encoder = "resnet18" if name in ("unet", "deeplabv3plus", "mffenet") else None  # fast on CPU
    model = create_model(name, encoder=encoder, in_channels=bands, classes=classes)
    out = model(torch.randn(2, bands, 64, 64))
    assert out.shape == (2, classes, 64, 64)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_odd_input_sizes() -> None:
    for name in ("fcn", "mffenet"):
        model = create_model(name, encoder="resnet18" if name == "mffenet" else None, classes=2).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 72, 40)).shape == (1, 2, 72, 40)


@pytest.mark.parametrize("name", ["smp:FPN", "Linknet", "smp:UnetPlusPlus"])
def test_any_smp_architecture_by_name(name: str) -> None:
    model = create_model(name, encoder="resnet18", in_channels=4, classes=2)
    assert model(torch.randn(1, 4, 64, 64)).shape == (1, 2, 64, 64)


def test_list_models_names_the_paper_models() -> None:
    names = [m["name"] for m in list_models()]
    assert set(REGISTRY) <= set(names)
    assert names[:4] == list(PAPER)
    assert "fcn8s" in names and "smp:Segformer" in names


def test_unknown_model_encoder_and_file_errors() -> None:
    with pytest.raises(ModelError, match="unknown model"):
        create_model("resnet")
    with pytest.raises(ModelError, match="encoder"):
        create_model("unet", encoder="no-such-encoder")
    with pytest.raises(ModelError, match="vgg16"):
        create_model("fcn", encoder="resnet50")
    with pytest.raises(ModelError, match="not found"):
        create_model("unet", encoder_weights="/nonexistent/w.pth")


def test_head_and_encoder_parameters() -> None:
    model = create_model("mffenet", encoder="resnet18", classes=2)
    encoder, head = split_parameters(model)
    assert sum(p.numel() for p in encoder) == sum(p.numel() for p in model.encoder.parameters())
    assert len(encoder) + len(head) == len(list(model.parameters()))
    groups = parameter_groups(model, 0.01, head_lr_mult=10)
    assert [g["lr"] for g in groups] == [0.01, 0.1]


# --------------------------------------------------------------------------- weights
def _torchvision_state(arch: str) -> dict[str, torch.Tensor]:
    """A state dict shaped like torchvision's ImageNet file (random values: a fake)."""
    import torchvision

    torch.manual_seed(1)
    return getattr(torchvision.models, arch)(weights=None).state_dict()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No cached weights, no network: every download fails. Returns the torch hub folder."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def no_network(*args: object, **kwargs: object) -> Path:
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(W, "_download_torchvision", no_network)
    monkeypatch.setattr(W, "_download_smp", no_network)
    monkeypatch.setattr(W, "_smp_cached", lambda encoder: None)
    return hub


@pytest.mark.parametrize(("name", "filename"), [("mffenet", "resnet50-0676ba61.pth"),
                                                 ("deeplabv3plus", "resnet50-0676ba61.pth"),
                                                 ("fcn", "vgg16-397923af.pth")])
def test_offline_imagenet_names_the_file_and_the_alternatives(offline: Path, name: str, filename: str) -> None:
    with pytest.raises(W.WeightsUnavailable) as info:
        create_model(name, classes=2, encoder_weights="imagenet")
    text = str(info.value)
    assert filename in text
    assert str(offline / "checkpoints") in text
    assert "--encoder-weights FILE" in text and "--encoder-weights none" in text
    assert "Traceback" not in text


def test_offline_smp_only_encoder(offline: Path) -> None:
    with pytest.raises(W.WeightsUnavailable, match="smp-hub/efficientnet-b0.imagenet"):
        create_model("unet", encoder="efficientnet-b0", encoder_weights="imagenet")


def test_imagenet_weights_come_from_the_torch_hub_cache(offline: Path) -> None:
    state = _torchvision_state("resnet18")
    (offline / "checkpoints").mkdir(parents=True)
    torch.save(state, offline / "checkpoints" / "resnet18-f37072fd.pth")
    model = create_model("unet", encoder="resnet18", in_channels=3, classes=2, encoder_weights="imagenet")
    assert torch.equal(model.encoder.layer2[1].conv1.weight, state["layer2.1.conv1.weight"])


def test_torchvision_file_into_mffenet_at_four_bands(tmp_path: Path) -> None:
    state = _torchvision_state("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = create_model("mffenet", encoder="resnet18", in_channels=4, classes=2, encoder_weights=path)
    assert torch.equal(model.encoder.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    w = model.encoder.conv1.weight
    assert w.shape[1] == 4
    assert torch.allclose(w[:, 1], state["conv1.weight"][:, 1] * 3 / 4)
    assert torch.allclose(w[:, 3], state["conv1.weight"][:, 0] * 3 / 4)  # bands cycle R, G, B


def test_torchvision_vgg16_file_into_fcn(tmp_path: Path) -> None:
    state = _torchvision_state("vgg16")  # with its classifier, which is skipped
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    model = create_model("fcn", in_channels=1, classes=2, encoder_weights=path)
    assert torch.equal(model.encoder.features[28].weight, state["features.28.weight"])
    assert torch.allclose(model.encoder.features[0].weight, state["features.0.weight"].sum(1, keepdim=True))
    fcn8s = create_model("fcn8s", classes=2, encoder_weights=path)
    assert torch.equal(fcn8s.encoder.features[0].weight, state["features.0.weight"])


def test_smp_encoder_state_dict_and_wrong_file(tmp_path: Path) -> None:
    import segmentation_models_pytorch as smp

    src = smp.Unet("resnet18", encoder_weights=None)
    path = tmp_path / "encoder.pth"
    torch.save({f"encoder.{k}": v for k, v in src.encoder.state_dict().items()}, path)
    model = create_model("unet", encoder="resnet18", encoder_weights=path)
    assert torch.equal(model.encoder.layer1[0].conv1.weight, src.encoder.layer1[0].conv1.weight)
    torch.save({"something": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(ModelError, match="matches only"):
        create_model("unet", encoder="resnet18", encoder_weights=tmp_path / "wrong.pth")
    torch.save(_torchvision_state("resnet18"), tmp_path / "r18.pth")
    with pytest.raises(ModelError, match="matches only"):  # a ResNet18 file for a ResNet50
        create_model("mffenet", encoder_weights=tmp_path / "r18.pth")
