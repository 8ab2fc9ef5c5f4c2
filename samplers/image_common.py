"""Shared by the image samplers: the starting noise, NFE accounting, and which objective each serves."""
from __future__ import annotations

from dataclasses import dataclass

import torch


class SamplerMismatch(ValueError):
    pass


@dataclass
class ImageSample:
    images: torch.Tensor  # (N, C, H, W) in model space (pixels in [-1, 1] times spec.image_scale)
    nfe: int  # network evaluations per image (guidance counts twice)


def serves(*objectives: str):
    """Mark a sampler with the objectives whose networks it knows how to run."""
    def mark(fn):
        fn.objectives = set(objectives)
        return fn

    return mark


def check_compatible(name: str, sampler, objective_name: str) -> None:
    allowed = getattr(sampler, "objectives", None)
    if allowed is not None and objective_name not in allowed:
        raise SamplerMismatch(
            f"sampler {name!r} runs models trained with {sorted(allowed)}, but this run was trained with "
            f"{objective_name!r}; choose one of its samplers instead"
        )


def model_noise(model, n: int, sigma: float, generator) -> torch.Tensor:
    """sigma * N(0, I) shaped like n of the model's images, on the model's device."""
    spec = model.spec
    shape = (n, spec.image_channels, spec.image_size, spec.image_size)
    return torch.randn(shape, device=next(model.parameters()).device, generator=generator) * sigma


def evals_per_step(guidance: float, labels) -> int:
    return 2 if (labels is not None and guidance != 1.0) else 1
