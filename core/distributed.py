"""torchrun integration: process group from the environment, rank-aware helpers."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


class DistributedError(RuntimeError):
    pass


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1 or "RANK" in os.environ

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def start_process_group() -> DistInfo:
    """Under torchrun, join the process group early (before the run directory is decided): NCCL when
    GPUs are visible, gloo otherwise, or TRAIN_DIST_BACKEND. Without torchrun, nothing."""
    if "RANK" not in os.environ:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if dist.is_initialized():
        return info
    backend = os.environ.get("TRAIN_DIST_BACKEND", "nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl" and not torch.cuda.is_available():
        raise DistributedError("the nccl backend needs CUDA GPUs, and none is visible; use gloo (TRAIN_DIST_BACKEND=gloo)")
    if backend not in ("nccl", "gloo") or not dist.is_backend_available(backend):
        raise DistributedError(f"distributed backend {backend!r} is not available here; use gloo or nccl")
    device_id = None
    if backend == "nccl":
        device_id = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device_id)
    # one rank has no peers: no eager NCCL communicator (and no collectives, see _peers) at world 1
    dist.init_process_group(backend, device_id=device_id if info.world > 1 else None)
    return info


def broadcast_object(obj, src: int = 0):
    """rank src's object on every rank (identity without a process group)."""
    if not _peers():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Start the process group when launched by torchrun; pick this rank's device."""
    from core.device import pick_device

    if "RANK" not in os.environ:
        return DistInfo(), pick_device(device_name)
    info = start_process_group()
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if dist.get_backend() == "nccl" and device.type != "cuda":
        raise DistributedError("train.device is the CPU but the process group uses nccl; use gloo (TRAIN_DIST_BACKEND=gloo)")
    return info, device


def _peers() -> bool:
    """A process group with other ranks in it: only then do the helpers below communicate."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if _peers():
        dist.barrier()


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    if _peers():
        x = x.clone()
        nccl = dist.get_backend() == "nccl"  # gloo has no AVG
        dist.all_reduce(x, op=dist.ReduceOp.AVG if nccl else dist.ReduceOp.SUM)
        if not nccl:
            x /= dist.get_world_size()
    return x


def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    if _peers():
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.MAX)
    return x


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        # meet first, so no rank destroys the group while a peer still talks to it (the process then
        # ends without finalization: train.py's leave_torchrun_rank)
        barrier()
        dist.destroy_process_group()


def gather_rng(rank: int) -> dict:
    """Every rank's RNG states, merged on rank 0 (others get their own)."""
    from core.checkpoint import rng_state

    mine = rng_state(rank)
    if not _peers():
        return mine
    parts = [None] * dist.get_world_size() if rank == 0 else None
    dist.gather_object(mine, parts, dst=0)
    if rank != 0:
        return mine
    return {k: v for part in parts for k, v in part.items()}
