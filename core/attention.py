"""One attention entry point over several kernels.

A backend turns an ``AttnMask`` into whatever its kernel wants once per forward (``prepare``), then
runs every layer with it (``attend``). Tensors are (B, H, L, D).

- ``sdpa``: PyTorch scaled_dot_product_attention (default; cuDNN/Flash kernels on GPU; a boolean
  mask on CPU, with backward).
- ``flex``: FlexAttention with a block mask (GPU; compiled once per process; by name only).
- ``flash_attn`` / ``xformers``: used only when those packages import; plain causal/full masks only.
"""
from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from core.masks import AttnMask
from core.registry import Registry

BACKENDS: Registry["AttentionBackend"] = Registry("attention backend")


@dataclass
class Prepared:
    backend: "AttentionBackend"
    state: Any


class AttentionBackend:
    name = "base"

    @staticmethod
    def available(device: torch.device) -> bool:
        return True

    def prepare(self, mask: AttnMask, batch: int, lq: int, lk: int, device: torch.device) -> Any:
        raise NotImplementedError

    def attend(self, q, k, v, state, dropout_p: float = 0.0) -> torch.Tensor:
        raise NotImplementedError


@BACKENDS.register("sdpa")
class SDPABackend(AttentionBackend):
    name = "sdpa"

    def prepare(self, mask, batch, lq, lk, device):
        if mask.is_plain:
            if not mask.causal or (lq == 1 and mask.q_offset == lk - 1):
                return (None, False)
            if lq == lk and mask.q_offset == 0:
                return (None, True)
        return (mask.dense(lq, lk, device), False)

    def attend(self, q, k, v, state, dropout_p=0.0):
        attn_mask, is_causal = state
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, dropout_p=dropout_p)


_compiled_flex = None


@BACKENDS.register("flex")
class FlexBackend(AttentionBackend):
    name = "flex"

    @staticmethod
    def available(device):
        return True  # auto picks it on GPU only; on CPU it runs forward-only (used by tests)

    def prepare(self, mask, batch, lq, lk, device):
        return block_mask_from_dense(mask.dense(lq, lk, device), mask.flex_mask_mod())

    def attend(self, q, k, v, state, dropout_p=0.0):
        global _compiled_flex
        from torch.nn.attention.flex_attention import flex_attention

        # flex is no autocast op: give it one dtype, the projections', as autocast does for SDPA
        q, k = q.to(v.dtype), k.to(v.dtype)

        if q.device.type != "cuda":  # eager reference path (no backward on CPU)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return flex_attention(q, k, v, block_mask=state)
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex_attention, dynamic=False)
        return _compiled_flex(q, k, v, block_mask=state)


def block_mask_from_dense(dense: torch.Tensor, mask_mod, block: int = 128):
    """A FlexAttention BlockMask from a (B, 1, Lq, Lk) boolean mask, with tensor ops only:
    create_block_mask evaluates mask_mod under vmap on the host, which cost ~10 ms per mixed
    training step. Blocks are empty, partial (mask_mod applied inside) or full."""
    from torch.nn.attention.flex_attention import BlockMask

    b, h, lq, lk = dense.shape
    nq, nk = -(-lq // block), -(-lk // block)
    padded = torch.zeros(b, h, nq * block, nk * block, dtype=torch.bool, device=dense.device)
    padded[..., :lq, :lk] = dense
    tiles = padded.view(b, h, nq, block, nk, block)
    full = tiles.all(dim=(3, 5))  # a tile reaching past the sequence holds padding: never full
    partial = tiles.any(dim=(3, 5)) & ~full

    def ordered(sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        counts = sel.sum(-1, dtype=torch.int32)
        indices = torch.argsort(sel.to(torch.int8), dim=-1, descending=True, stable=True).to(torch.int32)
        return counts, indices

    kv_num, kv_idx = ordered(partial)
    full_num, full_idx = ordered(full)
    return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=block, mask_mod=mask_mod,
                                    seq_lengths=(lq, lk))


class _PlainMaskOnly(AttentionBackend):
    """Kernels that take only a causal flag; anything else falls back to SDPA."""

    module = ""

    @classmethod
    def available(cls, device):
        return device.type == "cuda" and importlib.util.find_spec(cls.module) is not None

    def prepare(self, mask, batch, lq, lk, device):
        if mask.is_plain and (not mask.causal or (lq == lk and mask.q_offset == 0)):
            return ("native", mask.causal)
        return ("sdpa", SDPABackend().prepare(mask, batch, lq, lk, device))

    def attend(self, q, k, v, state, dropout_p=0.0):
        kind, arg = state
        if kind == "sdpa":
            return SDPABackend().attend(q, k, v, arg, dropout_p)
        return self.native(q, k, v, arg, dropout_p)


@BACKENDS.register("flash_attn")
class FlashAttnBackend(_PlainMaskOnly):
    name, module = "flash_attn", "flash_attn"

    def native(self, q, k, v, causal, dropout_p):
        from flash_attn import flash_attn_func

        out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), dropout_p, causal=causal)
        return out.transpose(1, 2)


@BACKENDS.register("xformers")
class XFormersBackend(_PlainMaskOnly):
    name, module = "xformers", "xformers"

    def native(self, q, k, v, causal, dropout_p):
        from xformers.ops import LowerTriangularMask, memory_efficient_attention

        bias = LowerTriangularMask() if causal else None
        out = memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_bias=bias, p=dropout_p)
        return out.transpose(1, 2)


def resolve_backend(name: str, device: torch.device) -> AttentionBackend:
    """'auto' is SDPA: with the dense span mask it beat the flex block mask on the H200 for the mixed
    MNIST shape (one compiled layer 0.55 vs 0.76 ms; a whole training step 21 ms of device time with
    SDPA against 76 ms with flex in an earlier run). A named backend must be usable here."""
    if name == "auto":
        return SDPABackend()
    cls = BACKENDS.get(name)
    if not cls.available(device):
        usable = [n for n in BACKENDS.names() if BACKENDS.get(n).available(device)]
        raise RuntimeError(
            f"attention backend {name!r} is not usable on {device.type} (not installed or needs a GPU); "
            f"usable here: {', '.join(usable)}"
        )
    return cls()


def prepare(name: str, mask: AttnMask, batch: int, lq: int, lk: int, device: torch.device) -> Prepared:
    backend = resolve_backend(name, device)
    return Prepared(backend, backend.prepare(mask, batch, lq, lk, device))
