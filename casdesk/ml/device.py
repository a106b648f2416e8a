"""Choosing the compute device: automatic (CUDA > MPS > CPU) or explicit, never silently
falling back to the CPU when a GPU was asked for."""

from __future__ import annotations

import torch

from casdesk.ml.errors import DeviceError


def available_devices() -> list[str]:
    """Device names usable here, best first (for the GUI's device menu)."""
    names = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return [*names, "cpu"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(request: str | torch.device | None = "auto") -> torch.device:
    """The torch device for ``request``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    An explicit GPU that is not available is an error, never a quiet CPU run: a user who
    asked for the GPU would otherwise wait hours for a CPU training.
    """
    if isinstance(request, torch.device):
        request = str(request)
    req = (request or "auto").strip().lower()
    if req == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if req == "cpu":
        return torch.device("cpu")
    if req == "gpu":
        req = "cuda"
    if req.startswith("cuda"):
        if not torch.cuda.is_available():
            hint = (
                "this torch build has no CUDA support; install a CUDA build of torch"
                if torch.version.cuda is None
                else "no NVIDIA GPU/driver is visible; check `nvidia-smi` or use --device cpu"
            )
            raise DeviceError(f"device {request!r} was requested but CUDA is not available", hint=hint)
        index = int(req.split(":", 1)[1]) if ":" in req else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {request!r} was requested but only {torch.cuda.device_count()} GPU(s) exist",
                hint=f"use one of {', '.join(available_devices())}",
            )
        return torch.device("cuda", index)
    if req == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' was requested but Apple MPS is not available", hint="use --device cpu")
        return torch.device("mps")
    raise DeviceError(f"unknown device {request!r}", hint="use auto, cpu, cuda, cuda:N or mps")


def describe_device(device: torch.device) -> str:
    """Human-readable name of the device actually used, stored with each run."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


# --------------------------------------------------------------------------- precision
PRECISIONS = ("fp32", "fp16", "bf16")
BF16_MIN_CAPABILITY = (8, 0)  # Ampere: bf16 tensor cores; older cards only emulate bf16


def choose_precision(capability: tuple[int, int] | None, requested: str = "auto") -> str:
    """The compute precision for a device: ``"bf16"``, ``"fp16"`` or ``"fp32"``.

    ``capability``: the CUDA compute capability ``(major, minor)`` of the GPU, or None for
    a CPU/MPS device. ``requested``: ``auto``, ``off``, ``bf16`` or ``fp16`` (the ``amp``
    setting). ``auto`` gives bf16 from capability 8.0 (A100, RTX 30xx and later), fp16
    with a GradScaler below (V100 7.0, T4 7.5: ``torch.cuda.is_bf16_supported()`` also
    says yes there, but bf16 is emulated without tensor cores) and fp32 without CUDA.
    An explicit request the device cannot honour is an error, never silently ignored.
    """
    from casdesk.ml.errors import TrainingError

    req = (requested or "auto").lower()
    if req in ("off", "fp32", "none"):
        return "fp32"
    if req not in ("auto", "bf16", "fp16"):
        raise TrainingError(f"unknown precision {requested!r}", hint="use auto, off, bf16 or fp16")
    if capability is None:
        if req == "auto":
            return "fp32"
        raise TrainingError(f"mixed precision {req} needs a CUDA GPU", hint="use --amp off")
    native_bf16 = tuple(capability) >= BF16_MIN_CAPABILITY
    if req == "bf16" and not native_bf16:
        raise TrainingError(
            f"this GPU (compute capability {capability[0]}.{capability[1]}) has no native bf16",
            hint="use --amp fp16 or --amp auto",
        )
    if req == "auto":
        return "bf16" if native_bf16 else "fp16"
    return req


def device_capability(device: torch.device) -> tuple[int, int] | None:
    """The compute capability of a CUDA device, None for every other device."""
    if device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return int(major), int(minor)


def precision_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a precision name (None: fp32, no autocast)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def device_precision(device: torch.device, requested: str = "auto") -> str:
    """:func:`choose_precision` for an actual device."""
    return choose_precision(device_capability(device), requested)
