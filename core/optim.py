"""AdamW with decay on matrices only, and the warmup + cosine learning-rate schedule."""
from __future__ import annotations

import math

import torch


def build_optimizer(model: torch.nn.Module, tcfg, device: torch.device) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    seen, decay, no_decay = set(), [], []
    for p in params:  # tied weights appear once
        if id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": tcfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2), fused=device.type == "cuda")


def lr_at(step: int, tcfg) -> float:
    """Linear warmup to lr, then cosine decay to min_lr over lr_decay_steps (default: all steps)."""
    if tcfg.schedule == "constant":
        return tcfg.lr * min(1.0, (step + 1) / max(1, tcfg.warmup))
    if step < tcfg.warmup:
        return tcfg.lr * (step + 1) / tcfg.warmup
    end = tcfg.lr_decay_steps or tcfg.steps
    if step >= end:
        return tcfg.min_lr
    progress = (step - tcfg.warmup) / max(1, end - tcfg.warmup)
    return tcfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (tcfg.lr - tcfg.min_lr)
