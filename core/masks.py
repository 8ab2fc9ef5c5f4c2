"""Attention masks: causal, full, and causal with bidirectional spans (interleaved images).

One rule covers all three. Query at absolute position i may see key j when

    (j <= i, or the mask is not causal)  or  (span[i] == span[j] > 0)

and key j is not padding. ``q_offset`` places a chunk of queries after a KV cache.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AttnMask:
    causal: bool = True
    span_ids: torch.Tensor | None = None  # (B, Lk) int, >0 marks a bidirectional span
    key_valid: torch.Tensor | None = None  # (B, Lk) bool, False for padding keys
    q_offset: int = 0

    @classmethod
    def full(cls) -> "AttnMask":
        return cls(causal=False)

    @classmethod
    def spans(cls, span_ids: torch.Tensor, key_valid: torch.Tensor | None = None) -> "AttnMask":
        return cls(causal=True, span_ids=span_ids, key_valid=key_valid)

    def shifted(self, q_offset: int) -> "AttnMask":
        return AttnMask(self.causal, self.span_ids, self.key_valid, q_offset)

    @property
    def is_plain(self) -> bool:
        """True when no dense mask is needed beyond SDPA's own is_causal flag."""
        return self.span_ids is None and self.key_valid is None

    def allowed(self, q_idx: torch.Tensor, k_idx: torch.Tensor, b: torch.Tensor | int = 0) -> torch.Tensor:
        """Elementwise rule on broadcastable index tensors (also used as a FlexAttention mask_mod)."""
        q_abs = q_idx + self.q_offset
        ok = (k_idx <= q_abs) if self.causal else torch.ones_like(k_idx <= q_abs)
        if self.span_ids is not None:
            sq, sk = self.span_ids[b, q_abs], self.span_ids[b, k_idx]
            ok = ok | ((sq == sk) & (sq > 0))
        if self.key_valid is not None:
            # a padding query still sees itself, so its row is never empty (no NaN from softmax)
            ok = ok & (self.key_valid[b, k_idx] | (k_idx == q_abs))
        return ok

    def dense(self, lq: int, lk: int, device: torch.device) -> torch.Tensor:
        """Boolean mask of shape (B or 1, 1, lq, lk); True = may attend."""
        q = torch.arange(lq, device=device).view(1, lq, 1)
        k = torch.arange(lk, device=device).view(1, 1, lk)
        batch = 1
        for t in (self.span_ids, self.key_valid):
            if t is not None:
                batch = t.shape[0]
        b = torch.arange(batch, device=device).view(batch, 1, 1)
        return self.allowed(q, k, b).unsqueeze(1)

    def flex_mask_mod(self):
        def mask_mod(b, h, q_idx, kv_idx):
            return self.allowed(q_idx, kv_idx, b)

        return mask_mod
