"""The model registry: one entry per architecture, one :func:`create_model` for all.

Registered names (the paper's four models first):

``fcn``            the authors' FCN ("FCNs", ``Aizu0/Code-``) on VGG16 (:mod:`.fcn`)
``unet``           U-Net, segmentation_models_pytorch, ResNet50 encoder
``deeplabv3plus``  DeepLabV3+, segmentation_models_pytorch, ResNet50 encoder, output
                   stride 16 with ASPP rates 6/12/18 (the authors' DeepLab family; smp's
                   default 12/24/36 are the rates meant for output stride 8)
``mffenet``        MFFENet re-implemented from the authors' code (:mod:`.mffenet`), ResNet50
``fcn8s``          the classic FCN-8s on VGG16 (:mod:`.fcn8s`), not the paper's

Every segmentation_models_pytorch architecture is also available by name, either as
``smp:<Arch>`` or the bare architecture name (``FPN``, ``UnetPlusPlus``, ``Segformer``,
case-insensitive), with any smp encoder (``encoder="efficientnet-b0"``, ``"tu-..."``).

Every model has an ``encoder`` attribute (the pretrained part); the rest is the head
(:func:`split_parameters`, for a separate head learning rate).

Adding a model is adding one :class:`ModelSpec` to :data:`REGISTRY`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from casdesk.ml.errors import ModelError
from casdesk.ml.models import weights as W

WeightsArg = str | Path | None
Builder = Callable[[str, int, int], nn.Module]  # (encoder, in_channels, classes) -> random init

PAPER_ASPP_RATES = (6, 12, 18)
REFERENCE_BANDS, REFERENCE_CLASSES = 3, 2  # the setting of the reference parameter counts


@dataclass(frozen=True)
class ModelSpec:
    """How to build one architecture, and what it follows.

    ``build(encoder, in_channels, classes)`` returns the model with random weights.
    ``encoders``: the encoders it accepts (``None``: any smp encoder). ``smp_arch``: the smp
    class behind it (then encoders without a torchvision file get smp's own weights).
    ``reference_params``: published or reference-code parameter counts (3 bands, 2
    classes) per encoder.
    """

    name: str
    description: str
    default_encoder: str
    build: Builder
    reference: str = ""
    encoders: tuple[str, ...] | None = None
    smp_arch: str | None = None
    reference_params: dict[str, int] = field(default_factory=dict)


def _smp_builder(arch: str, **extra: Any) -> Builder:
    def build(encoder: str, in_channels: int, classes: int) -> nn.Module:
        return _smp_create(arch, encoder, in_channels, classes, None, **extra)

    return build


def _smp_create(arch: str, encoder: str, in_channels: int, classes: int, weights: str | None,
                **extra: Any) -> nn.Module:
    import segmentation_models_pytorch as smp

    if extra:
        cls = smp.MODEL_ARCHITECTURES_MAPPING[arch.lower()]
        missing = [k for k in extra if k not in inspect.signature(cls.__init__).parameters]
        if missing:
            raise ModelError(
                f"the installed segmentation_models_pytorch {smp.__version__} has no {', '.join(missing)} "
                f"for {arch}", hint="upgrade it: pip install -U segmentation-models-pytorch",
            )
    return smp.create_model(arch, encoder_name=encoder, encoder_weights=weights,
                            in_channels=in_channels, classes=classes, **extra)


def _fcn(encoder: str, in_channels: int, classes: int) -> nn.Module:
    from casdesk.ml.models.fcn import FCN

    return FCN(in_channels=in_channels, classes=classes)


def _fcn8s(encoder: str, in_channels: int, classes: int) -> nn.Module:
    from casdesk.ml.models.fcn8s import FCN8s

    return FCN8s(in_channels=in_channels, classes=classes)


def _mffenet(encoder: str, in_channels: int, classes: int) -> nn.Module:
    from casdesk.ml.models.mffenet import MFFENet

    return MFFENet(encoder, in_channels, classes)


RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")

REGISTRY: dict[str, ModelSpec] = {
    "fcn": ModelSpec(
        "fcn", "FCN of the paper's authors (5 transposed convs, skips pool4..pool1), VGG16", "vgg16", _fcn,
        reference="Aizu0/Code- FCN/fcn.py (FCNs), the authors' FCN for the CAS dataset",
        encoders=("vgg16",), reference_params={"vgg16": 18_640_000},
    ),
    "unet": ModelSpec(
        "unet", "U-Net (smp), ResNet50 encoder", "resnet50", _smp_builder("Unet"),
        reference="Ronneberger et al. 2015 via segmentation_models_pytorch (the authors' U-Net code is not public)",
        smp_arch="Unet",
    ),
    "deeplabv3plus": ModelSpec(
        "deeplabv3plus", "DeepLabV3+ (smp), ResNet50, output stride 16, ASPP 6/12/18", "resnet50",
        _smp_builder("DeepLabV3Plus", decoder_atrous_rates=PAPER_ASPP_RATES, encoder_output_stride=16),
        reference="Chen et al. 2018 via segmentation_models_pytorch, ASPP rates of the authors' DeepLab code",
        smp_arch="DeepLabV3Plus",
    ),
    "mffenet": ModelSpec(
        "mffenet", "MFFENet (Xu et al. 2022): dense gated decoder, ResNet50 at output stride 16", "resnet50",
        _mffenet,
        reference="xupine/LandslideNet MFFENet/modeling (re-implemented, no code copied)",
        encoders=RESNETS, reference_params={"resnet50": 52_360_000, "resnet101": 71_360_000},
    ),
    "fcn8s": ModelSpec(
        "fcn8s", "Classic FCN-8s, VGG16 (reduced fc6/fc7; not the paper's FCN)", "vgg16", _fcn8s,
        reference="Long et al. 2015 (fc6/fc7 reduced to 1024 channels)", encoders=("vgg16",),
    ),
}

PAPER_MODELS = ("fcn", "unet", "deeplabv3plus", "mffenet")
SMP_DEFAULT_ENCODER = "resnet34"


def smp_architectures() -> list[str]:
    import segmentation_models_pytorch as smp

    return sorted(c.__name__ for c in smp.MODEL_ARCHITECTURES_MAPPING.values())


def list_models() -> list[dict[str, str]]:
    """Models for menus: name, description, default encoder, reference (registry, then smp)."""
    out = [
        {"name": s.name, "description": s.description, "default_encoder": s.default_encoder,
         "reference": s.reference}
        for s in REGISTRY.values()
    ]
    out += [
        {"name": f"smp:{a}", "description": f"{a} (segmentation_models_pytorch)",
         "default_encoder": SMP_DEFAULT_ENCODER, "reference": "segmentation_models_pytorch"}
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
            return ModelSpec(f"smp:{candidate}", candidate, SMP_DEFAULT_ENCODER, _smp_builder(candidate),
                             reference="segmentation_models_pytorch", smp_arch=candidate)
    raise ModelError(
        f"unknown model {name!r}",
        hint=f"use one of {', '.join(REGISTRY)} or smp:<Arch> ({', '.join(smp_architectures())})",
    )


def _check_encoder(spec: ModelSpec, encoder: str) -> None:
    if spec.encoders is not None and encoder not in spec.encoders:
        raise ModelError(
            f"{spec.name} is built on {' or '.join(spec.encoders)}, not {encoder!r}",
            hint=f"omit --encoder for {spec.default_encoder}",
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
    ``"imagenet"`` (found in the torch hub / Hugging Face caches, else downloaded once;
    offline with nothing cached: :class:`~casdesk.ml.models.weights.WeightsUnavailable`
    naming the file to fetch), or the path of a local weight file (a torchvision state
    dict such as ``resnet50-0676ba61.pth`` or ``vgg16-397923af.pth``, ``.pth``/``.pt``/
    ``.safetensors``). With other than 3 bands the pretrained first convolution is adapted
    (RGB filters summed for 1 band, cycled and rescaled for more).
    """
    spec = resolve_spec(name)
    if in_channels < 1:
        raise ModelError(f"a model needs at least one input band, not {in_channels}")
    if classes < 1:
        raise ModelError(f"classes must be 1 (sigmoid) or more (softmax), not {classes}")
    enc = encoder or spec.default_encoder
    _check_encoder(spec, enc)
    source: Path | None = None
    if encoder_weights is not None and str(encoder_weights).lower() == "imagenet":
        if not W.has_imagenet_file(enc):  # timm ("tu-") encoders: smp/timm download
            return _smp_imagenet(spec, enc, in_channels, classes)
        source = W.imagenet_file(enc)
    elif encoder_weights is not None and str(encoder_weights).lower() != "none":
        source = Path(encoder_weights).expanduser()
        if not source.is_file():
            raise ModelError("encoder weight file not found", source, "check the path")
    try:
        if source is None:
            return spec.build(enc, in_channels, classes)
        state = W.read_state_dict(source)
        model = spec.build(enc, 3, classes)
    except KeyError as exc:  # smp: wrong encoder name
        raise ModelError(f"cannot build {spec.name} with encoder {enc!r}: {exc}") from exc
    W.load_into(encoder_of(model), state, source)
    set_in_channels(model, in_channels)
    return model


def _smp_imagenet(spec: ModelSpec, encoder: str, in_channels: int, classes: int) -> nn.Module:
    if spec.smp_arch is None:
        raise ModelError(f"no ImageNet weights for {spec.name} with encoder {encoder!r}")
    try:
        return _smp_create(spec.smp_arch, encoder, in_channels, classes, "imagenet")
    except KeyError as exc:
        raise ModelError(f"cannot build {spec.name} with encoder {encoder!r}: {exc}") from exc
    except (OSError, RuntimeError, ValueError) as exc:  # offline, proxy, hub errors
        raise W.offline_error(encoder, exc) from exc


def unwrap(model: nn.Module) -> nn.Module:
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def encoder_of(model: nn.Module) -> nn.Module:
    """The pretrained part of a model (every registry model has ``.encoder``)."""
    enc = getattr(unwrap(model), "encoder", None)
    if not isinstance(enc, nn.Module):
        raise ModelError(f"{type(model).__name__} has no encoder")
    return enc


def set_in_channels(model: nn.Module, in_channels: int) -> None:
    """Adapt the first convolution of a (pretrained) model to ``in_channels`` bands."""
    if in_channels == 3:
        return
    enc = encoder_of(model)
    adapt = getattr(enc, "set_in_channels", None)
    if not callable(adapt):
        raise ModelError(f"cannot adapt {type(enc).__name__} to {in_channels} bands")
    if "pretrained" in inspect.signature(adapt).parameters:
        adapt(in_channels, pretrained=True)
    else:
        adapt(in_channels)


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(encoder parameters, head parameters) of a model (DDP-wrapped or not), trainable only.

    The head is everything outside ``model.encoder`` (decoder, ASPP, classifier): the part
    the authors' DeepLab/MFFENet code trains with 10x the learning rate.
    """
    net = unwrap(model)
    enc_ids = {id(p) for p in encoder_of(net).parameters()}
    encoder = [p for p in net.parameters() if p.requires_grad and id(p) in enc_ids]
    head = [p for p in net.parameters() if p.requires_grad and id(p) not in enc_ids]
    return encoder, head


def parameter_groups(model: nn.Module, lr: float, head_lr_mult: float = 1.0) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the encoder at ``lr``, the head at ``lr * head_lr_mult``."""
    encoder, head = split_parameters(model)
    if head_lr_mult == 1.0:
        return [{"params": encoder + head, "lr": lr}]
    return [{"params": encoder, "lr": lr}, {"params": head, "lr": lr * head_lr_mult}]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def parameter_count(name: str, encoder: str | None = None, in_channels: int = REFERENCE_BANDS,
                    classes: int = REFERENCE_CLASSES) -> int:
    """Parameters of a model, counted on the meta device (no memory, no weights, fast)."""
    spec = resolve_spec(name)
    enc = encoder or spec.default_encoder
    _check_encoder(spec, enc)
    with torch.device("meta"):
        model = spec.build(enc, in_channels, classes)
    return count_parameters(model)


def describe_models(include_smp: bool = False) -> list[dict[str, Any]]:
    """What ``casdesk models`` shows: name, description, default encoder, parameters (3
    bands, 2 classes, default encoder), the reference followed and its parameter counts."""
    out = []
    specs = list(REGISTRY.values())
    if include_smp:
        specs += [resolve_spec(f"smp:{a}") for a in smp_architectures()]
    for spec in specs:
        try:
            params: int | None = parameter_count(spec.name)
        except Exception:  # noqa: BLE001 - an smp architecture that needs another encoder
            params = None
        variants = {
            enc: {"parameters": parameter_count(spec.name, enc), "reference_parameters": ref}
            for enc, ref in spec.reference_params.items()
        }
        out.append({
            "name": spec.name,
            "description": spec.description,
            "default_encoder": spec.default_encoder,
            "parameters": params,
            "reference": spec.reference,
            "reference_parameters": spec.reference_params.get(spec.default_encoder),
            "variants": variants,
            "paper_model": spec.name in PAPER_MODELS,
        })
    return out


def model_summary(name: str, encoder: str | None) -> dict[str, Any]:
    spec = resolve_spec(name)
    return {"model": spec.name, "encoder": encoder or spec.default_encoder}
