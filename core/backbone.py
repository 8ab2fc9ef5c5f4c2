"""The shared transformer: a stack of blocks over embedded tokens, modality-agnostic."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from core import attention
from core.blocks import Block, Modulation
from core.kv_cache import KVCache
from core.layers import swiglu_hidden
from core.masks import AttnMask
from core.rope import Rotary


class Transformer(nn.Module):
    def __init__(self, n_layer, n_head, d_model, mlp_ratio=4.0, qk_norm=True, dropout=0.0, rope_base=10000.0,
                 cond_dim: int | None = None, attn_backend: str = "auto", split_projections: bool = False,
                 fused_qk_norm_rope: bool = False, fused_swiglu: bool = False):
        super().__init__()
        self.n_layer, self.n_head, self.d_model = n_layer, n_head, d_model
        self.head_dim = d_model // n_head
        self.attn_backend = attn_backend
        hidden = swiglu_hidden(d_model, mlp_ratio)
        self.blocks = nn.ModuleList(
            Block(d_model, n_head, hidden, qk_norm, dropout, cond_dim, split_projections, fused_qk_norm_rope,
                  fused_swiglu)
            for _ in range(n_layer)
        )
        self.rotary = Rotary(self.head_dim, rope_base)
        self.reset_parameters()

    def reset_parameters(self, std: float = 0.02) -> None:
        # GPT-2 style: residual projections scaled by depth; adaLN-zero starts every block as identity.
        for blk in self.blocks:
            for lin in (blk.attn.qkv, blk.mlp.gate_up):
                nn.init.normal_(lin.weight, std=std)
            for lin in (blk.attn.proj, blk.mlp.down):
                nn.init.normal_(lin.weight, std=std / math.sqrt(2 * self.n_layer))
            if blk.adaln is not None:
                nn.init.zeros_(blk.adaln.weight)
                nn.init.zeros_(blk.adaln.bias)

    def new_cache(self, batch: int, max_len: int, device, dtype, cache_cls: type[KVCache] = KVCache) -> KVCache:
        return cache_cls(self.n_layer, batch, self.n_head, max_len, self.head_dim, device, dtype)

    def forward(self, h: torch.Tensor, pos: torch.Tensor, mask: AttnMask, mod: Modulation | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        """h (B, L, d) embedded tokens, pos (B or 1, L, 3) -> hidden states (B, L, d), not normalised."""
        b, l, _ = h.shape
        offset = cache.pos if cache is not None else 0
        prepared = attention.prepare(self.attn_backend, mask.shifted(offset), b, l, offset + l, h.device)
        rope = self.rotary(pos)
        for i, blk in enumerate(self.blocks):
            # the layer index only matters with a cache: leaving it out keeps compiled blocks from
            # specialising on it
            h = blk(h, rope, prepared, mod) if cache is None else blk(h, rope, prepared, mod, cache, i)
        if cache is not None:
            cache.advance(l)
        return h
