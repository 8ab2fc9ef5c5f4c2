"""Samplers for mixed text + image models.

caption_to_image: the caption prefix goes through the KV cache once; each IMM step then runs only the
image span, which attends to the cached prefix and bidirectionally to itself. Guidance mixes the
network output with the one for the empty caption (BOS BOI).
image_to_caption: BOS BOI [clean image] EOI through the cache, then ordinary next-token decoding.
"""
from __future__ import annotations

import torch

from modalities.mixed_forward import prefix_condition
from modalities.mixed_sequence import image_positions, positions
from objectives.paths import guide
from samplers import SAMPLERS
from samplers.ar import left_pad, next_tokens, real_token_positions
from samplers.eager import eager
from samplers.image_common import ImageSample, evals_per_step, model_noise, serves
from samplers.imm import device_times, finish, per_sample


def _prefixes(tok, captions: list[list[int]], device):
    """Left-padded [BOS caption BOI] rows, validity, and text positions counting real tokens only."""
    tokens, valid = left_pad([[tok.bos, *c, tok.boi] for c in captions], tok.pad, device)
    return tokens, valid, real_token_positions(valid), valid.sum(-1)


@SAMPLERS.register("caption_to_image")
@serves("mixed")
@torch.no_grad()
@eager
def caption_to_image(model, objective, captions: list[list[int]], tok, steps: int, guidance: float = 1.0,
                     generator=None, spacing: str = "uniform", times=None) -> ImageSample:
    """IMM pushforward from the captions' prefixes; ``spacing`` and ``times`` (an explicit grid) as in
    samplers/imm.py."""
    cfg, spec, param = objective.cfg, model.spec, objective.param
    device = next(model.parameters()).device
    n = len(captions)
    guided = guidance != 1.0
    rows = captions + ([[]] * n if guided else [])
    tokens, valid, pos, lengths = _prefixes(tok, rows, device)
    grid = spec.image_size // spec.patch_size
    n_img = grid * grid
    p = tokens.shape[1]
    cache = model.new_cache(len(rows), p + n_img)
    model("text", tokens=tokens, pos=pos, key_valid=valid, cache=cache)
    prefix = prefix_condition(model, tokens, valid)
    span = torch.cat([torch.zeros_like(tokens), torch.ones((len(rows), n_img), dtype=torch.long, device=device)], 1)
    key_valid = torch.cat([valid, torch.ones((len(rows), n_img), dtype=torch.bool, device=device)], 1)
    img_pos = image_positions(lengths, grid)
    grid_t = device_times(model, steps, cfg, spacing, times)
    x = model_noise(model, n, cfg.sigma_d, generator)
    for i in range(steps):
        t, s = per_sample(grid_t[i], n), per_sample(grid_t[i + 1], n)
        x_in, nt, ns = param.network_inputs(x, s, t)
        reps = 2 if guided else 1
        _, g = model("mixed", tokens=None, pos=img_pos, span_ids=span, key_valid=key_valid, images=x_in.repeat(reps, 1, 1, 1),
                     noise_t=nt.repeat(reps), noise_s=ns.repeat(reps), cache=cache, prefix=prefix)
        cache.truncate(p)
        g = guide(g, guidance) if guided else g.float()
        x, x_t = param.combine(x, g, s, t), x
    return ImageSample(finish(x, x_t, s, t, cfg), steps * evals_per_step(guidance, captions if guided else None))


@SAMPLERS.register("image_to_caption")
@serves("mixed")
@torch.no_grad()
@eager
def image_to_caption(model, objective, images: torch.Tensor, tok, max_new_tokens: int = 32, temperature: float = 0.0,
                     top_k: int = 0, top_p: float = 1.0, generator=None) -> list[list[int]]:
    """images in model space (pixels times spec.image_scale); returns the caption tokens (EOS cut)."""
    spec, param = model.spec, objective.param
    device = images.device
    b = images.shape[0]
    grid = spec.image_size // spec.patch_size
    n_img = grid * grid
    cut = 2 + n_img + 1
    tokens = torch.full((b, cut), tok.pad, dtype=torch.long, device=device)
    tokens[:, 0], tokens[:, 1], tokens[:, -1] = tok.bos, tok.boi, tok.eoi
    pos_all = positions(torch.tensor([2]), n_img, grid, cut + max_new_tokens)[0].to(device)
    span = torch.zeros((b, cut), dtype=torch.long, device=device)
    span[:, 2:2 + n_img] = 1
    zero = torch.zeros(b, dtype=torch.float64)
    x_in, nt, ns = param.network_inputs(images, zero, zero)
    cache = model.new_cache(b, cut + max_new_tokens)
    logits, _ = model("mixed", tokens=tokens, pos=pos_all[None, :cut].expand(b, -1, -1), span_ids=span,
                      image_start=torch.full((b,), 2, device=device), images=x_in, noise_t=nt, noise_s=ns, cache=cache)
    out = torch.empty((b, 0), dtype=torch.long, device=device)
    done = torch.zeros(b, dtype=torch.bool, device=device)
    vocab = model.text.vocab_size
    for j in range(max_new_tokens):
        nxt = next_tokens(logits[:, -1, :vocab], temperature, top_k, top_p, generator, tok.eos, done)
        out = torch.cat([out, nxt[:, None]], 1)
        if bool(done.all()) or j == max_new_tokens - 1:
            break
        logits = model("text", tokens=nxt[:, None], pos=pos_all[None, cut + j:cut + j + 1].expand(b, -1, -1), cache=cache)
    result = []
    for row in out.tolist():
        result.append(row[:row.index(tok.eos)] if tok.eos in row else row)
    return result
