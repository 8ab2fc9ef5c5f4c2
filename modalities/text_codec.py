"""Token embedding in, logits out."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.layers import RMSNorm
from core.linear_cross_entropy import linear_cross_entropy


def padded_vocab(vocab_size: int, multiple: int = 64) -> int:
    """Round the embedding table up for tensor-core friendly shapes; the extra ids are never used."""
    return multiple * ((vocab_size + multiple - 1) // multiple)


class TextCodec(nn.Module):
    def __init__(self, vocab_size: int, d_model: int, tie: bool = True, std: float = 0.02,
                 fused_cross_entropy: bool = False):
        super().__init__()
        self.vocab_size = vocab_size
        self.fused_cross_entropy = fused_cross_entropy
        rows = padded_vocab(vocab_size)
        self.embed = nn.Embedding(rows, d_model)
        self.norm = RMSNorm(d_model)
        self.head = nn.Linear(d_model, rows, bias=False)
        nn.init.normal_(self.embed.weight, std=std)
        if tie:
            self.head.weight = self.embed.weight
        else:
            nn.init.normal_(self.head.weight, std=std)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Logits over the padded table; callers slice ``[..., :vocab_size]`` where it matters."""
        return self.head(self.norm(h))

    def forward(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy in float32. A module call of its own so that compiling it
        fuses the upcast and log-softmax instead of writing float32 logits to memory."""
        if self.fused_cross_entropy:  # model.fused_cross_entropy
            return linear_cross_entropy(self.norm(h), self.head.weight, targets)
        logits = self.logits(h)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
