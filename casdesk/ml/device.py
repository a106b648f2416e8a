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
