"""The model registry: one entry per architecture, one :func:`create_model` for all.

Registered names (the paper's four models):

``fcn``            FCN-8s on VGG16 (:mod:`casdesk.ml.models.fcn`)
``unet``           U-Net, segmentation_models_pytorch, ResNet50 encoder
``deeplabv3plus``  DeepLabV3+, segmentation_models_pytorch, ResNet50 encoder
``mffenet``        MFFENet re-implementation (:mod:`casdesk.ml.models.mffenet`), ResNet50 encoder

Every segmentation_models_pytorch architecture is also available by name, either as
``smp:<Arch>`` or the bare architecture name (``FPN``, ``UnetPlusPlus``, ``Segformer``,
case-insensitive), with any smp encoder (``encoder="efficientnet-b0"``, ``"tu-..."``).

Adding a model is adding one :class:`ModelSpec` to :data:`REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from casdesk.ml.errors import ModelError

WeightsArg = str | Path | None


@dataclass(frozen=True)
class ModelSpec:
    """How to build one architecture: ``build(encoder, in_channels, classes, imagenet)``."""

    name: str
    description: str
    default_encoder: str
    build: Callable[[str, int, int, bool], nn.Module]


def _smp_builder(arch: str) -> Callable[[str, int, int, bool], nn.Module]:
    def build(encoder: str, in_channels: int, classes: int, imagenet: bool) -> nn.Module:
        import segmentation_models_pytorch as smp

        return smp.create_model(
            arch,
            encoder_name=encoder,
            encoder_weights="imagenet" if imagenet else None,
            in_channels=in_channels,
            classes=classes,
        )

    return build


def _fcn(encoder: str, in_channels: int, classes: int, imagenet: bool) -> nn.Module:
    from casdesk.ml.models.fcn import FCN8s

    if encoder != "vgg16":
        raise ModelError(f"fcn is built on VGG16 only, not {encoder!r}", hint="omit --encoder")
    return FCN8s(in_channels=in_channels, classes=classes, imagenet=imagenet)


def _mffenet(encoder: str, in_channels: int, classes: int, imagenet: bool) -> nn.Module:
    from casdesk.ml.models.mffenet import MFFENet

    return MFFENet(encoder, in_channels, classes, "imagenet" if imagenet else None)


REGISTRY: dict[str, ModelSpec] = {
    "fcn": ModelSpec("fcn", "FCN-8s, VGG16 encoder (paper baseline)", "vgg16", _fcn),
    "unet": ModelSpec("unet", "U-Net (smp), ResNet50 encoder", "resnet50", _smp_builder("Unet")),
    "deeplabv3plus": ModelSpec(
        "deeplabv3plus", "DeepLabV3+ (smp), ResNet50 encoder", "resnet50", _smp_builder("DeepLabV3Plus")
    ),
    "mffenet": ModelSpec(
        "mffenet", "MFFENet (Xu et al. 2022) re-implementation, ResNet50", "resnet50", _mffenet
    ),
}

SMP_DEFAULT_ENCODER = "resnet34"


def smp_architectures() -> list[str]:
    import segmentation_models_pytorch as smp

    return sorted(c.__name__ for c in smp.MODEL_ARCHITECTURES_MAPPING.values())


def list_models() -> list[dict[str, str]]:
    """Models for menus: name, description, default encoder (registry, then smp:<Arch>)."""
    out = [
        {"name": s.name, "description": s.description, "default_encoder": s.default_encoder}
        for s in REGISTRY.values()
    ]
    out += [
        {"name": f"smp:{a}", "description": f"{a} (segmentation_models_pytorch)",
         "default_encoder": SMP_DEFAULT_ENCODER}
        for a in smp_architectures()
    ]
    return out


def resolve_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` for a registry name, ``smp:<Arch>`` or a bare smp arch name."""
    key = name.strip()
    if key.lower() in REGISTRY:
        return REGISTRY[key.lower()]
    arch = key[4:] if key.lower().startswith("smp:") else key
    for candidate in smp_architectures():
        if candidate.lower() == arch.lower():
            return ModelSpec(f"smp:{candidate}", candidate, SMP_DEFAULT_ENCODER, _smp_builder(candidate))
    raise ModelError(
        f"unknown model {name!r}",
        hint=f"use one of {', '.join(REGISTRY)} or smp:<Arch> ({', '.join(smp_architectures())})",
    )


def create_model(
    name: str,
    encoder: str | None = None,
    in_channels: int = 3,
    classes: int = 1,
    encoder_weights: WeightsArg = None,
) -> nn.Module:
    """Build a segmentation model returning logits ``(N, classes, H, W)``.

    ``classes``: 1 (landslide logit, sigmoid) or 2 (background/landslide, softmax).
    ``in_channels``: any number of bands. ``encoder_weights``: ``None`` (random init),
    ``"imagenet"`` (downloaded once into the torch/HF cache; needs the internet), or the
    path of a local encoder weight file (``.pth``/``.pt``/``.safetensors``, e.g. a
    torchvision ``resnet50-*.pth``): for offline machines. With other than 3 bands the
    pretrained first convolution is adapted (RGB filters summed or cycled).
    """
    spec = resolve_spec(name)
    if in_channels < 1:
        raise ModelError(f"a model needs at least one input band, not {in_channels}")
    if classes < 1:
        raise ModelError(f"classes must be 1 (sigmoid) or more (softmax), not {classes}")
    enc = encoder or spec.default_encoder
    weights_file: Path | None = None
    imagenet = False
    if encoder_weights is not None:
        if str(encoder_weights).lower() == "imagenet":
            imagenet = True
        else:
            weights_file = Path(encoder_weights).expanduser()
            if not weights_file.is_file():
                raise ModelError("encoder weight file not found", weights_file, "check the path")
    try:
        if imagenet:
            model = _build_imagenet(spec, enc, in_channels, classes)
        elif weights_file is not None:
            model = spec.build(enc, 3, classes, False)
            load_encoder_weights(model, weights_file)
            _set_in_channels(model, in_channels)
        else:
            model = spec.build(enc, in_channels, classes, False)
    except KeyError as exc:  # smp: wrong encoder name
        raise ModelError(f"cannot build {spec.name} with encoder {enc!r}: {exc}") from exc
    return model


def _build_imagenet(spec: ModelSpec, encoder: str, in_channels: int, classes: int) -> nn.Module:
    try:
        return spec.build(encoder, in_channels, classes, True)
    except (OSError, RuntimeError, ValueError) as exc:  # offline, proxy, hub errors
        raise ModelError(
            f"ImageNet weights for encoder {encoder!r} cannot be downloaded ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160] if str(exc) else ''})",
            hint=(
                "connect to the internet once (weights are cached), or download the encoder "
                "weights file on another machine and pass its path as --encoder-weights FILE, "
                "or train from scratch with --encoder-weights none"
            ),
        ) from exc


def _encoder_of(model: nn.Module) -> nn.Module:
    from casdesk.ml.models.fcn import FCN8s

    if isinstance(model, FCN8s):
        return model
    enc = getattr(model, "encoder", None)
    if enc is None:
        raise ModelError(f"{type(model).__name__} has no encoder to load weights into")
    return enc


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise ModelError(f"cannot read encoder weights ({exc})", path, "is it a torch state dict?") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError("the file holds no state dict", path)
    return {k.removeprefix("module.").removeprefix("encoder."): v for k, v in state.items()}


def load_encoder_weights(model: nn.Module, path: Path) -> None:
    """Load a local encoder weight file into ``model``'s encoder (3-band model).

    Keys that the encoder lacks (a classifier ``fc.*``) are skipped; the file must match
    most of the encoder, else it is the wrong file and an error says so.
    """
    from casdesk.ml.models.fcn import FCN8s

    state = _read_state_dict(path)
    target = _encoder_of(model)
    if isinstance(model, FCN8s):
        # torchvision vgg16 keys: features.N.* -> split across our three stages
        own = model.state_dict()
        mapped = {}
        for k, v in state.items():
            if not k.startswith("features."):
                continue
            idx, rest = k.split(".")[1], ".".join(k.split(".")[2:])
            i = int(idx)
            stage = "to_pool3" if i <= 16 else "to_pool4" if i <= 23 else "to_pool5"
            offset = 0 if i <= 16 else 17 if i <= 23 else 24
            mapped[f"{stage}.{i - offset}.{rest}"] = v
        state, target_keys = mapped, own.keys()
    else:
        target_keys = target.state_dict().keys()
    usable = {k: v for k, v in state.items() if k in target_keys}
    if len(usable) < 0.5 * len([k for k in target_keys if not k.endswith("num_batches_tracked")]):
        raise ModelError(
            f"the weight file matches only {len(usable)} of {len(target_keys)} encoder tensors",
            path,
            "pick the weights of the same encoder (e.g. torchvision resnet50 for resnet50)",
        )
    try:
        target.load_state_dict(usable, strict=False)
    except RuntimeError as exc:
        raise ModelError(f"encoder weights do not fit ({str(exc).splitlines()[0]})", path) from exc


def _set_in_channels(model: nn.Module, in_channels: int) -> None:
    if in_channels == 3:
        return
    from casdesk.ml.models.fcn import FCN8s, adapt_first_conv

    if isinstance(model, FCN8s):
        model.to_pool3[0] = adapt_first_conv(model.to_pool3[0], in_channels)
        return
    enc = _encoder_of(model)
    if hasattr(enc, "set_in_channels"):
        enc.set_in_channels(in_channels, pretrained=True)
    else:
        raise ModelError(f"cannot adapt {type(enc).__name__} to {in_channels} bands")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_summary(name: str, encoder: str | None) -> dict[str, Any]:
    spec = resolve_spec(name)
    return {"model": spec.name, "encoder": encoder or spec.default_encoder}
