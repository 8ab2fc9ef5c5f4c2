"""Interleaved text + image sequences: text, BOI, image patches, EOI, text.

Two directions:
  caption -> image:  BOS caption BOI [patches of the noised image] EOI EOS
  image -> caption:  BOS BOI [patches of the clean image] EOI caption EOS
Rows are right-padded to one length. Text positions count up one per token; the patches of an image
take (p0, p0 + row, p0 + col) with p0 the first patch's index, and text after the image resumes at
p0 + grid. Next-token targets exist only where both the token and the next one are text.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from core.rope import N_AXES
from modalities.tokenizers import Tokenizer

IGNORE = -100
CAPTION_TO_IMAGE, IMAGE_TO_CAPTION = "c2i", "i2c"


@dataclass
class MixedLayout:
    caption_len: int  # caption tokens kept (longer captions are truncated and counted)
    grid: int  # patches per image side

    @property
    def n_image(self) -> int:
        return self.grid * self.grid

    @property
    def seq_len(self) -> int:
        return self.caption_len + self.n_image + 4  # BOS, BOI, EOI, EOS


def prefix_tokens(tok: Tokenizer, caption: list[int], direction: str) -> tuple[list[int], list[int]]:
    """(text before the image, text after it)."""
    if direction == CAPTION_TO_IMAGE:
        return [tok.bos, *caption, tok.boi], [tok.eoi, tok.eos]
    return [tok.bos, tok.boi], [tok.eoi, *caption, tok.eos]


@lru_cache(maxsize=1024)
def positions(n_before: int, n_image: int, n_after: int, grid: int, total: int) -> torch.Tensor:
    """(total, 3) positions for [text * n_before, image, text * n_after, padding]. Cached (a few
    caption lengths recur in every batch): callers must not write into the result."""
    pos = torch.zeros(total, N_AXES, dtype=torch.long)
    pos[:n_before] = torch.arange(n_before)[:, None]
    r, c = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    p0 = n_before
    pos[p0:p0 + n_image, 0] = p0
    pos[p0:p0 + n_image, 1] = p0 + r.reshape(-1)
    pos[p0:p0 + n_image, 2] = p0 + c.reshape(-1)
    after = p0 + grid + torch.arange(total - p0 - n_image)
    pos[p0 + n_image:] = after[:, None]
    return pos


def pack_row(tok: Tokenizer, caption: list[int], direction: str, layout: MixedLayout) -> dict:
    before, after = prefix_tokens(tok, caption[:layout.caption_len], direction)
    n, total = layout.n_image, layout.seq_len
    used = len(before) + n + len(after)
    tokens = torch.full((total,), tok.pad, dtype=torch.long)
    tokens[:len(before)] = torch.tensor(before)
    tokens[len(before) + n:used] = torch.tensor(after)
    is_text = torch.zeros(total, dtype=torch.bool)
    is_text[:len(before)] = True
    is_text[len(before) + n:used] = True
    targets = torch.full((total,), IGNORE, dtype=torch.long)
    both = is_text[:-1] & is_text[1:]
    targets[:-1][both] = tokens[1:][both]
    span = torch.zeros(total, dtype=torch.long)
    span[len(before):len(before) + n] = 1
    valid = torch.zeros(total, dtype=torch.bool)
    valid[:used] = True
    return {"tokens": tokens, "targets": targets, "span_ids": span, "key_valid": valid,
            "pos": positions(len(before), n, total - len(before) - n, layout.grid, total),
            "image_start": torch.tensor(len(before))}


def pack_batch(tok: Tokenizer, captions: list[list[int]], directions: list[str], layout: MixedLayout) -> dict:
    rows = [pack_row(tok, c, d, layout) for c, d in zip(captions, directions)]
    out = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    out["noised"] = [d == CAPTION_TO_IMAGE for d in directions]  # stays on the host
    return out
