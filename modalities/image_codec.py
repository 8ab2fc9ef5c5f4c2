"""Images <-> patch tokens, and the conditioning (noise levels, class) that modulates them."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.conditioning import LabelEmbedder, ScalarEmbedder
from core.layers import RMSNorm, modulate


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, (H/p)(W/p), C p p), patches in row-major order."""
    b, c, h, w = x.shape
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not divisible by patch size {p}")
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def unpatchify(tokens: torch.Tensor, p: int, c: int, h: int, w: int) -> torch.Tensor:
    b = tokens.shape[0]
    x = tokens.reshape(b, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, h, w)


class ImageCodec(nn.Module):
    def __init__(self, channels: int, image_size: int, patch_size: int, d_model: int, num_classes: int,
                 cond_dim: int, std: float = 0.02):
        super().__init__()
        self.channels, self.image_size, self.patch_size = channels, image_size, patch_size
        self.grid = image_size // patch_size
        patch_dim = channels * patch_size * patch_size
        self.patch_embed = nn.Linear(patch_dim, d_model)
        self.t_embed = ScalarEmbedder(cond_dim)
        self.s_embed = ScalarEmbedder(cond_dim)
        self.label_embed = LabelEmbedder(num_classes, cond_dim) if num_classes else None
        self.norm = RMSNorm(d_model)
        self.final_adaln = nn.Linear(cond_dim, 2 * d_model)
        self.out = nn.Linear(d_model, patch_dim)
        nn.init.normal_(self.patch_embed.weight, std=std)
        nn.init.zeros_(self.patch_embed.bias)
        for lin in (self.final_adaln, self.out):  # adaLN-zero: the network starts by predicting 0
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid

    def condition(self, noise_t: torch.Tensor, noise_s: torch.Tensor, labels: torch.Tensor | None,
                  extra: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) inputs -> SiLU(emb(t) + emb(s) + emb(label) [+ extra]) of shape (B, cond_dim)."""
        c = self.t_embed(noise_t) + self.s_embed(noise_s)
        if extra is not None:
            c = c + extra
        if self.label_embed is not None:
            if labels is None:
                labels = torch.full_like(noise_t, self.label_embed.null, dtype=torch.long)
            c = c + self.label_embed(labels)
        return F.silu(c)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(patchify(x, self.patch_size))

    def output(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """h (B, N, d) image-token states, cond (B, 1 or N, C) -> image (B, C, H, W)."""
        shift, scale = self.final_adaln(cond).chunk(2, dim=-1)
        patches = self.out(modulate(self.norm(h), shift, scale))
        s = self.image_size
        return unpatchify(patches, self.patch_size, self.channels, s, s)
