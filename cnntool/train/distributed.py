"""Multi-process training under ``torchrun``: process group, DDP wrapping, reductions.

``torchrun --nproc_per_node=N -m cnntool train ...`` starts N copies of the command with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set; each trains on its shard of the data
(a ``DistributedSampler``), gradients are averaged by DistributedDataParallel, validation sums
are added up across processes, and only rank 0 writes files and records. NCCL on GPUs, gloo
on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """The layout ``torchrun`` put in the environment (a single process when it is absent).

    Examples
    --------
    >>> env_info().world_size >= 1
    True
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return DistInfo(rank=int(os.environ.get("RANK", "0")), world_size=world,
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")), local_world_size=local_world)


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group ``torchrun`` set up (NCCL for CUDA, gloo otherwise); returns the layout."""
    info = env_info()
    if not info.enabled:
        return info
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" and dist.is_nccl_available() else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def shutdown(info: DistInfo) -> None:
    """Leave the process group (after a last barrier so no rank exits while others still talk)."""
    if not info.enabled:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def process_device(device, info: DistInfo):
    """Each process gets its own GPU (``cuda:LOCAL_RANK``); CPU and MPS are shared."""
    import torch

    if info.enabled and device.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return device


def wrap_model(model, device, info: DistInfo):
    """DistributedDataParallel around ``model`` when distributed; the model itself otherwise."""
    if not info.enabled:
        return model
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    # single-input-channel convolutions get gradients whose (meaningless) size-1 stride differs
    # from DDP's bucket view; PyTorch warns on every run although nothing is slower or wrong
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")

    if device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[device.index])
    return DistributedDataParallel(model)


def all_reduce_sum(tensor, info: DistInfo):
    """Sum ``tensor`` over processes, in place; returns it."""
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every process (picklable plain data only)."""
    if not info.enabled:
        return obj
    import torch.distributed as dist

    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def any_process(flag: bool, info: DistInfo, device) -> bool:
    """True on every process when ``flag`` is true on any (e.g. "stop early")."""
    if not info.enabled:
        return flag
    import torch

    value = torch.tensor([1.0 if flag else 0.0], device=device)
    return bool(all_reduce_sum(value, info).item() > 0)
