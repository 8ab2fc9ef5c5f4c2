"""Exponential moving average of the weights, kept for evaluation and sampling."""
from __future__ import annotations

import copy

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        ema_p = list(self.model.parameters())
        src_p = list(model.parameters())
        torch._foreach_lerp_(ema_p, src_p, 1.0 - self.decay)
