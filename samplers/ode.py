"""ODE samplers for flow matching: Euler and Heun over a uniform time grid from t = 1 to t = 0.

The velocity is sigma_d G(x_t, t); one Euler step from t to s is the network's own f(x_t; s, t).
Heun corrects every step but the last (which ends at t = 0), so N steps cost 2N - 1 evaluations.
"""
from __future__ import annotations

import torch

from objectives.paths import network_g
from samplers import SAMPLERS
from samplers.image_common import ImageSample, evals_per_step, model_noise, serves


def _velocity(model, objective, x, t: float, labels, guidance):
    n = x.shape[0]
    tt = torch.full((n,), t, dtype=torch.float64, device=x.device)
    g = network_g(model, objective.param, x, tt, tt, labels, guidance, objective.null_label)
    return objective.cfg.sigma_d * g.float()


def _grid(steps: int) -> list[float]:
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()


@SAMPLERS.register("euler")
@serves("fm")
@torch.no_grad()
def euler(model, objective, labels, n: int, steps: int, guidance: float = 1.0, generator=None) -> ImageSample:
    x = model_noise(model, n, objective.cfg.sigma_d, generator)
    ts = _grid(steps)
    for t, s in zip(ts[:-1], ts[1:]):
        x = x - (t - s) * _velocity(model, objective, x, t, labels, guidance)
    return ImageSample(x, steps * evals_per_step(guidance, labels))


@SAMPLERS.register("heun")
@serves("fm")
@torch.no_grad()
def heun(model, objective, labels, n: int, steps: int, guidance: float = 1.0, generator=None) -> ImageSample:
    x = model_noise(model, n, objective.cfg.sigma_d, generator)
    ts = _grid(steps)
    evals = 0
    for t, s in zip(ts[:-1], ts[1:]):
        v = _velocity(model, objective, x, t, labels, guidance)
        x_euler = x - (t - s) * v
        evals += 1
        if s > 0:
            v2 = _velocity(model, objective, x_euler, s, labels, guidance)
            x = x - (t - s) * 0.5 * (v + v2)
            evals += 1
        else:
            x = x_euler
    return ImageSample(x, evals * evals_per_step(guidance, labels))
