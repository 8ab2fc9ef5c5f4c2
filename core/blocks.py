"""Pre-norm transformer block: QK-normed rotary attention + SwiGLU, with optional adaLN-zero."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.attention import Prepared
from core.kv_cache import KVCache
from core.layers import RMSNorm, SwiGLU, modulate
from core.qk_norm_rope import fused_qk_norm_rope_supported, qk_norm_rope
from core.rope import apply_rotary


@dataclass
class Modulation:
    """Conditioning for adaLN: ``cond`` (B, 1 or L, C) already passed through SiLU.

    ``token_mask`` (B, L, 1) float marks the tokens that are modulated; the others (text) see a
    plain pre-norm block: shift = scale = 0 and gate = 1.
    """

    cond: torch.Tensor
    token_mask: torch.Tensor | None = None


class Attention(nn.Module):
    def __init__(self, d_model: int, n_head: int, qk_norm: bool, dropout: float, split: bool = False,
                 fused_qk_norm_rope: bool = False):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model={d_model} is not divisible by n_head={n_head}")
        self.n_head, self.head_dim = n_head, d_model // n_head
        if fused_qk_norm_rope and not (qk_norm and fused_qk_norm_rope_supported(self.head_dim)):
            raise ValueError(f"model.fused_qk_norm_rope needs model.qk_norm=true and a power-of-two head dimension "
                             f"(got qk_norm={qk_norm}, head dimension {self.head_dim}); set it to false")
        # the fused kernel reads q/k/v from one projection, so it takes the place of split q/k/v matmuls
        self.split, self.fused = split and not fused_qk_norm_rope, fused_qk_norm_rope
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.dropout = dropout

    def forward(self, x, rope, prepared: Prepared, cache: KVCache | None = None, layer: int = 0):
        b, l, d = x.shape
        cos, sin = rope
        if self.fused:  # model.fused_qk_norm_rope
            qkv = self.qkv(x).view(b, l, 3, self.n_head, self.head_dim)
            q, k, v = qk_norm_rope(qkv, self.q_norm.weight, self.k_norm.weight, cos, sin, self.q_norm.eps)
        else:
            if self.split:  # model.split_projections
                q, k, v = (F.linear(x, w).view(b, l, self.n_head, self.head_dim) for w in self.qkv.weight.chunk(3))
            else:
                q, k, v = self.qkv(x).view(b, l, 3, self.n_head, self.head_dim).unbind(2)
            q = apply_rotary(self.q_norm(q), cos, sin).transpose(1, 2)
            k = apply_rotary(self.k_norm(k), cos, sin).transpose(1, 2)
            v = v.transpose(1, 2)
        if cache is not None:
            k, v = cache.append(layer, k, v)
        p = self.dropout if self.training else 0.0
        y = prepared.backend.attend(q, k, v, prepared.state, p)
        return self.proj(y.transpose(1, 2).reshape(b, l, d))


class Block(nn.Module):
    def __init__(self, d_model, n_head, mlp_hidden, qk_norm=True, dropout=0.0, cond_dim: int | None = None,
                 split_projections: bool = False, fused_qk_norm_rope: bool = False, fused_swiglu: bool = False):
        super().__init__()
        self.norm1 = RMSNorm(d_model)
        self.attn = Attention(d_model, n_head, qk_norm, dropout, split_projections, fused_qk_norm_rope)
        self.norm2 = RMSNorm(d_model)
        self.mlp = SwiGLU(d_model, mlp_hidden, split_projections, fused_swiglu)
        self.drop = nn.Dropout(dropout)
        self.adaln = nn.Linear(cond_dim, 6 * d_model) if cond_dim else None

    def forward(self, x, rope, prepared, mod: Modulation | None = None, cache=None, layer=0):
        if mod is None or self.adaln is None:
            x = x + self.drop(self.attn(self.norm1(x), rope, prepared, cache, layer))
            return x + self.drop(self.mlp(self.norm2(x)))
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaln(mod.cond).chunk(6, dim=-1)
        if mod.token_mask is not None:
            m = mod.token_mask
            shift1, scale1, shift2, scale2 = shift1 * m, scale1 * m, shift2 * m, scale2 * m
            gate1, gate2 = gate1 * m + (1 - m), gate2 * m + (1 - m)
        h = self.attn(modulate(self.norm1(x), shift1, scale1), rope, prepared, cache, layer)
        x = x + gate1 * self.drop(h)
        return x + gate2 * self.drop(self.mlp(modulate(self.norm2(x), shift2, scale2)))
