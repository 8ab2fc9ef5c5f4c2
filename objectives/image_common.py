"""Pieces shared by the image objectives."""
from __future__ import annotations

import torch


def drop_labels(labels: torch.Tensor, p: float, null_label: int, rng) -> torch.Tensor:
    """Replace each label by the null label with probability p (for classifier-free guidance)."""
    if p <= 0:
        return labels
    drop = rng.bernoulli(labels.shape[0], p, labels.device)
    return torch.where(drop, torch.full_like(labels, null_label), labels)


def batch_rng(batch: dict, device):
    from core.batch_rng import BatchRNG

    return batch.get("rng") or BatchRNG.from_global(device)
