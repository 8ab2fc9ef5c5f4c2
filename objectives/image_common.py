"""Pieces shared by the image objectives."""
from __future__ import annotations

import torch


def drop_labels(labels: torch.Tensor, p: float, null_label: int) -> torch.Tensor:
    """Replace each label by the null label with probability p (for classifier-free guidance)."""
    if p <= 0:
        return labels
    drop = torch.rand(labels.shape, device=labels.device) < p
    return torch.where(drop, torch.full_like(labels, null_label), labels)
