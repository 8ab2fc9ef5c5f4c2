"""Data parallelism under torchrun: DDP (default) or FSDP2 (``train.distributed=fsdp``).

Order follows torchtitan: (activation checkpointing) -> compile -> shard; here compile is applied by
the trainer after wrapping, which DDP and FSDP2 both support.
"""
from __future__ import annotations

import torch


def wrap_model(model: torch.nn.Module, mode: str, dist_info, device: torch.device) -> torch.nn.Module:
    if not dist_info.enabled:
        return model
    if mode == "ddp":
        if dist_info.world == 1:
            return model  # one rank has nothing to average: DDP would only add its hooks and bucket copies
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.backbone.blocks:
            fully_shard(block)
        fully_shard(model)
        return model
    raise ValueError(f"train.distributed={mode!r}: choose ddp or fsdp")
