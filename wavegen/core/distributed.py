"""DistributedDataParallel plumbing for runs launched by ``torchrun``.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/PORT) for every process; without
them the run is a single process and nothing here touches torch.distributed. The backend is nccl
for CUDA devices and gloo for the CPU.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .device import resolve_device
from .errors import WavegenError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files and logs."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_info() -> DistInfo:
    """Rank, world size and local rank from torchrun's environment (1 process if unset)."""
    try:
        return DistInfo(
            int(os.environ.get("RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)),
        )
    except ValueError:
        raise WavegenError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (set by torchrun)") from None


def init(device: str | None) -> tuple[DistInfo, torch.device]:
    """Join the process group if launched by torchrun; -> (info, this process's device).

    ``device`` None picks CUDA when available; under DDP on CUDA each process takes
    ``cuda:LOCAL_RANK``.
    """
    info = env_info()
    dev = resolve_device(device)
    if dev.type == "cuda":
        if info.enabled:
            dev = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(dev)
    if info.enabled and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if dev.type == "cuda" else "gloo", rank=info.rank, world_size=info.world_size
        )
    return info, dev


def wrap(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """DDP-wrap ``model`` when distributed (gradients are averaged over ranks in backward)."""
    if not info.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel
    # The mel statistics buffers never change during training: no need to sync them each step.
    quiet = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(ddp).parameters
        else {"broadcast_buffers": False}
    )
    # static_graph: the last layer's residual output conv never reaches the loss (only its skip
    # does), and DDP must be told once instead of searching for unused parameters every step.
    return ddp(model, device_ids=ids, static_graph=True, **quiet)


def shard(items: list, info: DistInfo | None = None) -> list:
    """This rank's share of ``items`` (every world_size-th, from its rank), else everything."""
    info = info or env_info()
    return items[info.rank :: info.world_size]


def broadcast_flag(info: DistInfo, flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank."""
    if not info.enabled:
        return flag
    box = [flag]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def gather(info: DistInfo, value) -> list:
    """Every rank's ``value`` (picklable), in rank order, on every rank; [value] alone."""
    if not info.enabled:
        return [value]
    everyone: list = [None] * info.world_size
    dist.all_gather_object(everyone, value)
    return everyone


def barrier(info: DistInfo) -> None:
    """Wait for every rank (e.g. until rank 0 has written the checkpoint of a stopped run:
    torchrun stops the other ranks as soon as one exits with an error code)."""
    if info.enabled:
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def leave(info: DistInfo) -> None:
    """Wait for every rank, then close the process group on each: a rank that exited with it
    still open aborted ("terminate called without an active exception") while rank 0 was still
    working alone."""
    if info.enabled:
        dist.barrier()
        shutdown()
