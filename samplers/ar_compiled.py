"""Text generation with one compiled decode step of fixed shapes (sampler "ar_compiled").

The eager sampler (samplers/ar.py) attends to the cache up to its current length, so every step
brings new shapes and Python ints. It is simple, but for the 124M shape on an H200 it took about
7 ms a token at every context from 256 to 4096, with and without the cache: the time goes to
per-step overhead, not to attention. Here each new token attends to the whole preallocated cache
under a mask of the positions written so far, so one compiled step serves every position of a
generation; on a GPU it is compiled for CUDA graphs (mode "reduce-overhead"). Its first GPU run (H200,
seventeenth session) failed inside SDPA's masked kernel; the step now attends through SingleQueryAttention.
On the H200 (eighteenth session, GPT-2-124M shape, bf16, batch 1) it gives the eager sampler's greedy tokens
and takes 0.83 / 0.78 ms a token at contexts 256 / 1024 against the eager sampler's 8.95 / 10.61 ms.
The prompt is prefilled by the eager path. Greedy decoding gives the eager sampler's tokens (tested).

Measured on the project's 2-core CPU ("small" shape, batch 1, `scripts/scaling_seqlen.py --size small
--cost-contexts 256,1024 --backends sdpa,sdpa_compiled`): no faster than the eager sampler at context
256 (7.5 vs 7.3 ms a token; 8.8 vs 5.8 in another run) and slower at 1024 (19.6 vs 8.5; 18.1 vs 7.3).
With SingleQueryAttention, two runs on a day when the eager sampler itself ran slower: 16.3 / 16.8 against
19.1 / 17.4 ms at 256, 22.6 / 23.8 against 16.7 / 18.8 at 1024.
"""
from __future__ import annotations

import weakref

import torch

from core.attention import AttentionBackend, Prepared
from core.config import ConfigError
from core.kv_cache import KVCache
from samplers import SAMPLERS
from samplers.ar import left_pad, next_tokens, real_token_positions


class StaticKVCache(KVCache):
    """Prefill writes by slicing at Python positions (``index`` None); a decode step writes at
    ``index``, a one-element tensor that the caller updates in place, and sees the whole buffer."""

    def __init__(self, *args):
        super().__init__(*args)
        # masked keys still enter the product with weight 0, and 0 * NaN from uninitialised memory
        # is NaN: start from zeros
        self.k.zero_()
        self.v.zero_()
        self.index: torch.Tensor | None = None

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.index is None:
            return super().append(layer, k, v)
        self.k[layer].index_copy_(2, self.index, k.to(self.k.dtype))
        self.v[layer].index_copy_(2, self.index, v.to(self.v.dtype))
        return self.k[layer], self.v[layer]


class SingleQueryAttention(AttentionBackend):
    """One query per row against the whole cache under a boolean mask, as explicit products and a softmax
    in float32. On CUDA the SDPA kernel that takes a mask refused the query that compiled code hands it
    (its size-1 query dimension gets stride 1: "query is not correctly aligned (strideM)", H200)."""

    def attend(self, q, k, v, visible, dropout_p=0.0):
        scores = (q.float() @ k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5
        weights = scores.masked_fill(~visible, float("-inf")).softmax(-1)
        return (weights @ v.float()).to(v.dtype)


class _Decoder:
    """The cache, masks and compiled step for one (model, batch, length): built once, reused."""

    def __init__(self, model, batch: int, max_len: int):
        self.model = model
        self.cache = model.new_cache(batch, max_len, StaticKVCache)
        device = self.cache.k.device
        self.index = torch.zeros(1, dtype=torch.long, device=device)
        self.key_valid = torch.zeros(batch, max_len, dtype=torch.bool, device=device)
        self.keys = torch.arange(max_len, device=device)
        for t in (self.cache.k, self.cache.v, self.index, self.key_valid, self.keys):
            torch._dynamo.mark_static_address(t)  # CUDA graphs may keep pointing at them
        mode = "reduce-overhead" if device.type == "cuda" else None
        self.step = torch.compile(self._step, mode=mode, dynamic=False)

    def _step(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """tokens (B, 1), pos (B, 1, 3) of the token at ``index`` -> its next-token logits (B, V)."""
        m = self.model
        visible = (self.keys <= self.index) & self.key_valid
        prepared = Prepared(SingleQueryAttention(), visible[:, None, None, :])
        h = m.text.embed_tokens(tokens)
        rope = m.backbone.rotary(pos)
        for i, blk in enumerate(m.backbone.blocks):
            h = blk(h, rope, prepared, None, self.cache, i)
        return m.text.logits(h)[:, -1]


_DECODERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _decoder(model, batch: int, max_len: int) -> _Decoder:
    p = next(model.parameters())
    dtype = torch.get_autocast_dtype(p.device.type) if torch.is_autocast_enabled(p.device.type) else p.dtype
    per_model = _DECODERS.setdefault(model, {})
    key = (batch, max_len, dtype, p.device)
    if key not in per_model:
        per_model[key] = _Decoder(model, batch, max_len)
    return per_model[key]


@SAMPLERS.register("ar_compiled")
@torch.no_grad()
def generate_compiled(model, prompts: list[list[int]], max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
                      top_p: float = 1.0, use_cache: bool = True, pad_id: int = 0, eos_id: int | None = None,
                      generator: torch.Generator | None = None) -> list[list[int]]:
    """The eager sampler's interface; the first call for a batch size and total length compiles,
    later ones reuse the step."""
    if not use_cache:
        raise ConfigError("the ar_compiled sampler always decodes through its KV cache; use the ar sampler without one")
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    vocab = model.text.vocab_size
    device = next(model.parameters()).device
    tokens, valid = left_pad(prompts, pad_id, device)
    b, p = tokens.shape
    total = p + max_new_tokens
    dec = _decoder(model, b, total)
    dec.key_valid[:, :p] = valid
    dec.key_valid[:, p:] = True
    pos = real_token_positions(dec.key_valid)
    dec.cache.index = None
    dec.cache.truncate(0)
    with torch.compiler.set_stance("force_eager"):  # prompt lengths vary: the prefill stays eager
        logits = model("text", tokens=tokens, pos=pos[:, :p], key_valid=None if bool(valid.all()) else valid,
                       cache=dec.cache)[:, -1]
    dec.cache.index = dec.index
    new: list[torch.Tensor] = []
    done = torch.zeros(b, dtype=torch.bool, device=device)
    for j in range(max_new_tokens):
        nxt = next_tokens(logits[:, :vocab], temperature, top_k, top_p, generator, eos_id, done)
        new.append(nxt)
        if j == max_new_tokens - 1 or (eos_id is not None and bool(done.all())):
            break
        dec.index.fill_(p + j)
        logits = dec.step(nxt[:, None].clone(), pos[:, p + j:p + j + 1].clone())
    return torch.stack(new, 1).tolist()
