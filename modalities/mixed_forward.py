"""The backbone over interleaved sequences (one image span per row), and over an image span alone
that continues a cached prefix (caption -> image sampling)."""
from __future__ import annotations

import torch

from core.blocks import Modulation
from core.masks import AttnMask


def _gather_index(image_start: torch.Tensor, n: int, d: int) -> torch.Tensor:
    idx = image_start[:, None] + torch.arange(n, device=image_start.device)
    return idx[..., None].expand(-1, -1, d)


def prefix_condition(model, tokens: torch.Tensor, in_prefix: torch.Tensor) -> torch.Tensor | None:
    """The text before each image (BOS, caption, BOI) as one conditioning vector: its mean input
    embedding, projected. ``tokens`` (B, L), ``in_prefix`` (B, L) bool. None when the model has no
    prefix conditioning. An empty caption (BOS BOI) is the guidance null."""
    if model.prefix_cond is None:
        return None
    embedded = model.text.embed_tokens(tokens)
    m = in_prefix[..., None].to(embedded.dtype)
    return model.prefix_cond((embedded * m).sum(1) / m.sum(1).clamp(min=1))


def mixed_forward(model, tokens: torch.Tensor | None, pos: torch.Tensor, span_ids: torch.Tensor, images: torch.Tensor,
                  noise_t: torch.Tensor, noise_s: torch.Tensor, key_valid: torch.Tensor | None = None,
                  image_start: torch.Tensor | None = None, targets: torch.Tensor | None = None, cache=None,
                  prefix: torch.Tensor | None = None):
    """-> (text logits, or mean cross-entropy when targets are given, or None; image output G).

    With ``tokens`` the sequence holds text with one image span per row starting at ``image_start``.
    Without, the input is just the image span, appended after whatever ``cache`` holds; ``span_ids`` and
    ``key_valid`` then describe the whole (cached + new) sequence, and ``prefix`` is the cached text's
    ``prefix_condition`` (when the model has one).
    """
    img = model.image.tokens(images)
    b, n, d = img.shape
    if tokens is not None and model.prefix_cond is not None:  # no mask building on the usual path
        in_prefix = torch.arange(tokens.shape[1], device=tokens.device) < image_start[:, None]
        prefix = prefix_condition(model, tokens, in_prefix if key_valid is None else in_prefix & key_valid)
    cond = model.image.condition(noise_t, noise_s, None, prefix)[:, None, :]
    if tokens is None:
        h, mod, idx = img, Modulation(cond), None
    else:
        h = model.text.embed_tokens(tokens)
        idx = _gather_index(image_start, n, d)
        h = h.scatter(1, idx, img.to(h.dtype))
        token_mask = torch.zeros(h.shape[:2], device=h.device, dtype=h.dtype).scatter(1, idx[..., 0], 1.0)
        mod = Modulation(cond, token_mask[..., None])
    h = model.embed_drop(h)
    h = model.backbone(h, pos, AttnMask(causal=True, span_ids=span_ids, key_valid=key_valid), mod=mod, cache=cache)
    img_h = h if idx is None else h.gather(1, idx)
    g = model.image.output(img_h, cond)
    if tokens is None:
        return None, g
    text = model.text(h, targets) if targets is not None else model.text.logits(h)
    return text, g
