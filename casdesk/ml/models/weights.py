"""Pretrained encoder weights that work offline.

``encoder_weights="imagenet"`` for a torchvision-compatible encoder (ResNet18-152, VGG
11-19; the paper's ResNet50 and VGG16 among them) is resolved in this order:

1. torchvision's file in the torch hub cache (``<torch hub dir>/checkpoints/``, e.g.
   ``resnet50-0676ba61.pth``; ``$TORCH_HOME`` moves it);
2. segmentation_models_pytorch's copy in the Hugging Face cache (``smp-hub/<encoder>.imagenet``),
   when a previous casdesk or smp run downloaded it;
3. a download of torchvision's file into the torch hub cache (1.);
4. otherwise :class:`WeightsUnavailable`, before any training starts, naming the exact
   file, the folder to put it in, and the alternatives (``--encoder-weights FILE``, or
   ``none`` to train from scratch). There is never a silent fallback to random weights.

Other smp encoders (EfficientNet, MobileNet...) take steps 2 and 3 with smp's file on the
Hugging Face hub; ``tu-`` timm encoders use smp/timm's own download. Both fail offline
with the same kind of error.

``encoder_weights=FILE`` reads a local state dict (``.pth``/``.pt``/``.safetensors``):
torchvision's file for the encoder, or an smp/casdesk encoder state dict.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import torch

from casdesk.ml.errors import ModelError

log = logging.getLogger(__name__)

TORCHVISION_ENCODERS = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
)


class WeightsUnavailable(ModelError):
    """ImageNet weights are neither cached nor downloadable (an offline machine)."""


def hub_checkpoints_dir() -> Path:
    """Where torchvision keeps downloaded weight files (``torch.hub.get_dir()/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def torchvision_url(encoder: str) -> str | None:
    """URL of torchvision's ImageNet (V1) file for ``encoder``, or None when it has none."""
    if encoder not in TORCHVISION_ENCODERS:
        return None
    from torchvision.models import get_model_weights

    return str(get_model_weights(encoder)["IMAGENET1K_V1"].url)


def torchvision_file(encoder: str) -> str | None:
    """File name of torchvision's ImageNet weights, e.g. ``resnet50-0676ba61.pth``."""
    url = torchvision_url(encoder)
    return None if url is None else url.rsplit("/", 1)[-1]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.pth``/``.pt``/``.safetensors`` file, wrapper prefixes removed."""
    state: object
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise ModelError(f"cannot read encoder weights ({exc})", path, "is it a torch state dict?") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError("the file holds no state dict of tensors", path,
                         "pass torchvision's weight file of the encoder (e.g. resnet50-0676ba61.pth)")
    return {k.removeprefix("module.").removeprefix("encoder.").removeprefix("backbone."): v
            for k, v in state.items()}


def _smp_settings(encoder: str) -> dict[str, str] | None:
    try:
        import segmentation_models_pytorch.encoders as smp_encoders

        return dict(smp_encoders.encoders[encoder]["pretrained_settings"]["imagenet"])
    except (ImportError, KeyError):
        return None


def _smp_cached(encoder: str) -> Path | None:
    """smp's ImageNet file of ``encoder`` in the Hugging Face cache, without any download."""
    settings = _smp_settings(encoder)
    if settings is None:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(settings["repo_id"], "model.safetensors", revision=settings["revision"])
    except Exception:  # noqa: BLE001 - no usable cache: simply not cached
        return None
    return Path(found) if isinstance(found, str) else None


def _download_torchvision(url: str, folder: Path) -> Path:
    """Download ``url`` into ``folder`` (torch.hub's download: temp file, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / url.rsplit("/", 1)[-1]
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)  # a firewall that drops packets must not hang the start
    try:
        torch.hub.download_url_to_file(url, str(dest), progress=False)
    finally:
        socket.setdefaulttimeout(previous)
    return dest


def _download_smp(encoder: str) -> Path:
    """smp's ImageNet file from the Hugging Face hub (cached there for the next time)."""
    from huggingface_hub import hf_hub_download

    settings = _smp_settings(encoder)
    if settings is None:
        raise KeyError(encoder)
    if not any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        # offline: fail now rather than after the hub client's retries (about 25 s)
        socket.create_connection(("huggingface.co", 443), timeout=10).close()
    return Path(hf_hub_download(settings["repo_id"], filename="model.safetensors", revision=settings["revision"]))


def has_imagenet_file(encoder: str) -> bool:
    """Whether ImageNet weights of ``encoder`` come as one file (torchvision's or smp's)."""
    return torchvision_file(encoder) is not None or _smp_settings(encoder) is not None


def imagenet_file(encoder: str) -> Path:
    """The local file of ``encoder``'s ImageNet weights: cached, else downloaded, else
    :class:`WeightsUnavailable` naming the file to fetch and where to put it."""
    filename = torchvision_file(encoder)
    if filename is not None and (hub_checkpoints_dir() / filename).is_file():
        return hub_checkpoints_dir() / filename
    smp_file = _smp_cached(encoder)
    if smp_file is not None:
        return smp_file
    try:
        if filename is not None:
            log.info("downloading %s into %s", filename, hub_checkpoints_dir())
            return _download_torchvision(str(torchvision_url(encoder)), hub_checkpoints_dir())
        log.info("downloading the ImageNet weights of %s from the Hugging Face hub", encoder)
        return _download_smp(encoder)
    except KeyError as exc:
        raise ModelError(f"no ImageNet weights are known for encoder {encoder!r}") from exc
    except Exception as exc:  # noqa: BLE001 - offline, proxy, disk: all end in the same message
        reason = f"{type(exc).__name__}: {_first_line(exc)}"
        if filename is None:
            raise offline_error(encoder, exc) from exc
    raise WeightsUnavailable(
        f"the ImageNet weights of the {encoder} encoder are not on this computer and cannot be "
        f"downloaded ({reason})",
        hint=f"copy torchvision's file {filename} (from {torchvision_url(encoder)}) into "
        f"{hub_checkpoints_dir()}, or pass that file with --encoder-weights FILE, "
        "or train from scratch with --encoder-weights none",
    )


def offline_error(encoder: str, exc: BaseException) -> WeightsUnavailable:
    """The error for an encoder without a torchvision file whose weights cannot be fetched."""
    settings = _smp_settings(encoder)
    where = (f"the file model.safetensors of the Hugging Face repository {settings['repo_id']}"
             if settings else "the encoder's weight file")
    return WeightsUnavailable(
        f"the ImageNet weights of the {encoder} encoder are not on this computer and cannot be "
        f"downloaded ({type(exc).__name__}: {_first_line(exc)})",
        hint=f"connect to the internet once (the file is then cached), or fetch {where} on "
        "another machine and pass it with --encoder-weights FILE, "
        "or train from scratch with --encoder-weights none",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else "no details"


def load_into(encoder: torch.nn.Module, state: dict[str, torch.Tensor], source: Path | str) -> int:
    """Copy the tensors of ``state`` that ``encoder`` has (same name and shape) into it.

    Extra tensors (a classifier ``fc.*``) are skipped. The file must cover at least 90 % of
    the encoder's tensors, else it is the wrong file and :class:`ModelError` says so.
    Returns the number of tensors loaded.
    """
    own = encoder.state_dict()
    wanted = [k for k in own if not k.endswith("num_batches_tracked")]
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if len([k for k in usable if k in wanted]) < 0.9 * len(wanted):
        raise ModelError(
            f"the weight file matches only {len(usable)} of {len(wanted)} encoder tensors",
            Path(source) if not isinstance(source, Path) else source,
            "pick the weights of the same encoder (e.g. torchvision's resnet50 file for resnet50)",
        )
    encoder.load_state_dict(usable, strict=False)
    return len(usable)
