"""AdamW with decay on matrices only, and the warmup + cosine learning-rate schedule."""
from __future__ import annotations

import math

import torch

from core.config import ConfigError


def build_optimizer(model: torch.nn.Module, tcfg, device: torch.device) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    seen, decay, no_decay = set(), [], []
    for p in params:  # tied weights appear once
        if id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": tcfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2), eps=tcfg.adam_eps,
                             fused=device.type == "cuda")


SCHEDULES = ("cosine", "constant")
DECAY_BUDGETS = ("steps", "time")


def check_schedule(tcfg) -> None:
    """Refuse schedule settings that would otherwise fall back silently to the default."""
    if tcfg.schedule not in SCHEDULES:
        raise ConfigError(f"train.schedule={tcfg.schedule!r}: choose one of {', '.join(SCHEDULES)}")
    if tcfg.decay_by not in DECAY_BUDGETS:
        raise ConfigError(f"train.decay_by={tcfg.decay_by!r}: choose one of {', '.join(DECAY_BUDGETS)}")
    if tcfg.decay_by == "time" and tcfg.time_limit <= 0:
        raise ConfigError("train.decay_by=time decays the learning rate over train.time_limit: set train.time_limit "
                          "(seconds) too, or use train.decay_by=steps")
    if tcfg.untimed_steps < 0:
        raise ConfigError(f"train.untimed_steps must be >= 0 (0 times every step), got {tcfg.untimed_steps}")
    if not tcfg.adam_eps > 0:
        raise ConfigError(f"train.adam_eps must be > 0 (a weight whose gradients are all zero would divide 0 by 0), "
                          f"got {tcfg.adam_eps}")


def budget_progress(step: int, tcfg, seconds: float = 0.0) -> float:
    """The share of the training budget used, in [0, 1]: steps over the decay's steps, or with
    decay_by=time the larger of that and seconds over time_limit (what objectives' curricula read)."""
    progress = step / max(1, tcfg.lr_decay_steps or tcfg.steps)
    if tcfg.decay_by == "time" and tcfg.time_limit > 0:
        progress = max(progress, seconds / tcfg.time_limit)
    return min(1.0, progress)


def lr_at(step: int, tcfg, seconds: float = 0.0) -> float:
    """Linear warmup to lr, then cosine decay to min_lr over lr_decay_steps (default: all steps).
    With decay_by=time the decay also ends at time_limit seconds of training, whichever budget runs out
    first: a time-limited run that stops part-way through its steps would otherwise never anneal."""
    if tcfg.schedule == "constant":
        return tcfg.lr * min(1.0, (step + 1) / max(1, tcfg.warmup))
    if step < tcfg.warmup:
        return tcfg.lr * (step + 1) / tcfg.warmup
    end = tcfg.lr_decay_steps or tcfg.steps
    if step >= end:
        return tcfg.min_lr
    progress = (step - tcfg.warmup) / max(1, end - tcfg.warmup)
    if tcfg.decay_by == "time":
        progress = max(progress, seconds / tcfg.time_limit)
        if progress >= 1:
            return tcfg.min_lr
    return tcfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (tcfg.lr - tcfg.min_lr)
