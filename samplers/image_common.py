"""Shared by the image samplers: the starting noise, NFE accounting, and which objective each serves."""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from core.config import ConfigError


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


def check_options(name: str, sampler, options: dict) -> None:
    """Refuse options the sampler does not take (e.g. an explicit IMM time grid given to Euler)."""
    unknown = set(options) - set(inspect.signature(sampler).parameters)
    if unknown:
        raise ConfigError(f"sampler {name!r} takes no option {', '.join(sorted(unknown))}")


def options_text(options: dict) -> str:
    """Sampler options as a table cell: "spacing=edm times=0.994/0.5/0.006"."""
    return " ".join(f"{k}={v}" for k, v in sorted(options.items()))


def options_tag(options: dict) -> str:
    """Sampler options as a file-name suffix: "_times-0.994_0.5_0.006" ("" without options)."""
    return "".join(f"_{k}-{v}".replace("/", "_") for k, v in sorted(options.items()))


def model_noise(model, n: int, sigma: float, generator) -> torch.Tensor:
    """sigma * N(0, I) shaped like n of the model's images, on the model's device."""
    spec = model.spec
    shape = (n, spec.image_channels, spec.image_size, spec.image_size)
    return torch.randn(shape, device=next(model.parameters()).device, generator=generator) * sigma


def evals_per_step(guidance: float, labels) -> int:
    return 2 if (labels is not None and guidance != 1.0) else 1
