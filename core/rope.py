"""Rotary position embedding over three position axes (sequence, row, column).

Frequency i rotates by the position along axis ``i % 3``. Text tokens use the same value on all
three axes, which makes this exactly standard 1D RoPE; image patches use (p0, p0 + row, p0 + col),
so each axis gets frequencies spread over the whole spectrum.
"""
from __future__ import annotations

import torch

N_AXES = 3


def text_positions(length: int, device=None, offset: int = 0) -> torch.Tensor:
    """(1, L, 3) positions for a plain text sequence."""
    p = torch.arange(offset, offset + length, device=device)
    return p.view(1, -1, 1).expand(1, length, N_AXES)


def grid_positions(height: int, width: int, device=None, offset: int = 0) -> torch.Tensor:
    """(1, H*W, 3) positions for a row-major grid of patches starting at sequence position offset."""
    r, c = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    r, c = r.reshape(-1), c.reshape(-1)
    return torch.stack([torch.zeros_like(r), r, c], -1).unsqueeze(0) + offset


class Rotary(torch.nn.Module):
    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
        half = head_dim // 2
        inv_freq = base ** (-torch.arange(half, dtype=torch.float64) / half)
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)
        self.register_buffer("axis", torch.arange(half) % N_AXES, persistent=False)

    def forward(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pos (B, L, 3) integer -> cos, sin of shape (B, L, 1, head_dim/2), float32."""
        angles = pos[..., self.axis].float() * self.inv_freq
        return angles.cos().unsqueeze(2), angles.sin().unsqueeze(2)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, L, H, D): rotate the pairs (x[:D/2], x[D/2:])."""
    x1, x2 = x.float().chunk(2, dim=-1)
    out = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    return out.type_as(x)
