"""Multi-GPU training with ``torchrun``: one process per GPU, DistributedDataParallel.

``casdesk train`` (and ``casdesk predict``) started by ``torchrun --nproc_per_node N``
finds ``WORLD_SIZE`` and ``RANK`` in its environment and joins the process group (NCCL on
GPUs, gloo on CPUs). Rank 0 alone writes files and the catalog; the others only compute.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from casdesk.ml.device import resolve_device
from casdesk.ml.errors import DeviceError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when this context initialised the process group

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any_flag(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when any rank raised ``flag`` (cancel requests)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast_object(self, obj: object) -> object:
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_object(self, obj: object) -> list[object] | None:
        """Every process's ``obj`` on process 0 (in rank order); None on the others."""
        if not self.enabled:
            return [obj]
        out: list[object] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def setup(device_request: str) -> tuple[DistContext, torch.device]:
    """Join the torchrun process group if there is one; return the context and device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), resolve_device(device_request)
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    req = (device_request or "auto").lower()
    if req in ("auto", "cuda", "gpu") and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise DeviceError(
                f"process {local_rank} has no GPU: only {torch.cuda.device_count()} visible",
                hint="use --nproc_per_node at most the number of GPUs",
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = resolve_device(req)
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        owns = True
    return DistContext(rank, world, local_rank, owns), device
