"""Small building blocks: RMSNorm, SwiGLU, adaLN modulation helpers."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.fused_swiglu import swiglu


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # under autocast, q and k arrive in bf16: a float32 weight would send rms_norm to its unfused path
        weight = self.weight if self.weight.dtype == x.dtype else self.weight.to(x.dtype)
        return F.rms_norm(x, (x.shape[-1],), weight, self.eps)


def swiglu_hidden(d_model: int, mlp_ratio: float, multiple: int = 64) -> int:
    """Hidden width with the parameter count of a plain ``mlp_ratio`` MLP (2/3 for three matrices)."""
    h = int(mlp_ratio * d_model * 2 / 3)
    return multiple * ((h + multiple - 1) // multiple)


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int, split: bool = False, fused: bool = False):
        super().__init__()
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)
        # the fused operator reads gate and up from one projection, so it takes the place of split matmuls
        self.split, self.fused = split and not fused, fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:  # model.fused_swiglu
            return self.down(swiglu(self.gate_up(x)))
        if self.split:  # model.split_projections
            gate, up = (F.linear(x, w) for w in self.gate_up.weight.chunk(2))
        else:
            gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift
