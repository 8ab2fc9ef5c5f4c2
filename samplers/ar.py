"""Autoregressive text generation: temperature, top-k, top-p, batched prompts, preallocated KV cache.

Prompts of different lengths are left-padded; padding keys are masked out and each row's positions
start at its first real token, so a padded row computes exactly what it would alone.
"""
from __future__ import annotations

import torch

from core.config import ConfigError
from core.rope import N_AXES
from samplers import SAMPLERS
from samplers.eager import eager


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Mask all but the top-k logits and the smallest set whose probability reaches top_p."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= top_p  # keep the token that crosses top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


def pick_next(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
              generator: torch.Generator | None) -> torch.Tensor:
    """(B, V) logits -> (B,) token ids. temperature 0 is greedy."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = filter_logits(logits.float() / temperature, top_k, top_p).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts right-aligned in one (B, L) tensor, and which entries are real tokens."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ConfigError("every prompt needs at least one token (use the BOS token for unconditional samples)")
    width = max(len(p) for p in prompts)
    tokens = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    valid = torch.zeros((len(prompts), width), dtype=torch.bool, device=device)
    for i, p in enumerate(prompts):
        tokens[i, width - len(p):] = torch.tensor(p, device=device)
        valid[i, width - len(p):] = True
    return tokens, valid


def next_tokens(logits: torch.Tensor, temperature: float, top_k: int, top_p: float, generator,
                eos_id: int | None, done: torch.Tensor) -> torch.Tensor:
    """(B, V) logits -> (B,) next tokens; rows that have emitted eos_id repeat it (``done``, a (B,)
    bool tensor, is updated in place)."""
    nxt = pick_next(logits, temperature, top_k, top_p, generator)
    if eos_id is not None:
        nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
        done |= nxt == eos_id
    return nxt


def real_token_positions(valid: torch.Tensor) -> torch.Tensor:
    """(B, L) validity -> (B, L, 3) positions counting real tokens only."""
    pos = (valid.long().cumsum(-1) - 1).clamp(min=0)
    return pos.unsqueeze(-1).expand(*pos.shape, N_AXES)


@SAMPLERS.register("ar")
@torch.no_grad()
@eager
def generate(model, prompts: list[list[int]], max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, use_cache: bool = True, pad_id: int = 0, eos_id: int | None = None,
             generator: torch.Generator | None = None) -> list[list[int]]:
    """Continue each prompt by up to max_new_tokens tokens; returns only the new tokens."""
    vocab = model.text.vocab_size
    device = next(model.parameters()).device
    tokens, valid = left_pad(prompts, pad_id, device)
    ragged = not bool(valid.all())
    b, p = tokens.shape
    # every generated token is real: validity and positions of the whole sequence are known up front
    valid = torch.cat([valid, torch.ones((b, max_new_tokens), dtype=torch.bool, device=device)], 1)
    pos = real_token_positions(valid)
    cache = model.new_cache(b, p + max_new_tokens) if use_cache else None
    new: list[torch.Tensor] = []
    done = torch.zeros(b, dtype=torch.bool, device=device)
    step_tokens, end = tokens, p
    for _ in range(max_new_tokens):
        key_valid = valid[:, :end] if ragged else None
        if use_cache:
            logits = model("text", tokens=step_tokens, pos=pos[:, end - step_tokens.shape[1]:end], key_valid=key_valid,
                           cache=cache)
        else:
            logits = model("text", tokens=tokens, pos=pos[:, :end], key_valid=key_valid)
        nxt = next_tokens(logits[:, -1, :vocab], temperature, top_k, top_p, generator, eos_id, done)
        new.append(nxt)
        step_tokens = nxt[:, None]
        if not use_cache:
            tokens = torch.cat([tokens, step_tokens], 1)
        end += 1
        if eos_id is not None and bool(done.all()):
            break
    out = torch.stack(new, 1)
    return out.tolist()
