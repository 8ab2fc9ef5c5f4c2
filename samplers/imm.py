"""IMM samplers: pushforward (x_{i-1} = f(x_i; t_{i-1}, t_i)) and restart (jump to eps_t, re-noise).

Time grids follow the paper: 1 step T -> eps_t; 2 steps through eta = 1.4; >= 4 steps uniform in t
(or EDM rho = 7 spacing in eta); or an explicit grid (``times``), to study where a few-step sampler
loses quality. All time arithmetic is float64.
"""
from __future__ import annotations

import torch

from core.batch_rng import to_device
from core.config import ConfigError
from objectives.paths import alpha_sigma, ddim_clean, eta, eta_inverse, pushforward_grid
from samplers import SAMPLERS
from samplers.image_common import ImageSample, evals_per_step, model_noise, serves


def _time_values(times) -> list:
    return times.split("/") if isinstance(times, str) else list(times)


def grid_steps(times) -> int:
    """The step count of an explicit grid: one fewer than its times."""
    return len(_time_values(times)) - 1


def grid_options(spacing: str | None = None, times: str | None = None) -> dict:
    """The time-grid options that were given (command-line flags left at None are left out)."""
    return {k: v for k, v in (("spacing", spacing), ("times", times)) if v is not None}


def explicit_times(times, steps: int) -> torch.Tensor:
    """An explicit grid: N + 1 strictly decreasing times in (0, 1), as numbers or as text "0.994/0.5/0.006"."""
    try:
        values = [float(v) for v in _time_values(times)]
    except (TypeError, ValueError):
        raise ConfigError(f"times must be numbers, e.g. 0.994/0.5/0.006, got {times!r}") from None
    if len(values) != steps + 1:
        raise ConfigError(f"{steps} steps need {steps + 1} times, got {len(values)}: {times!r}")
    grid = torch.tensor(values, dtype=torch.float64)
    if not ((grid > 0) & (grid < 1)).all() or not (grid[1:] < grid[:-1]).all():
        raise ConfigError(f"times must decrease strictly and lie in (0, 1), got {times!r}")
    return grid


def imm_times(steps: int, T: float, eps_t: float, schedule: str, spacing: str = "uniform", times=None) -> torch.Tensor:
    """Decreasing float64 times t_N = T > ... > t_0 = eps_t (N + 1 values), or the explicit ``times``."""
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    if times is not None:
        return explicit_times(times, steps)
    if spacing not in ("uniform", "edm"):  # checked here too: 1 and 2 steps do not use it
        raise ConfigError(f"unknown spacing {spacing!r}; choose uniform or edm")
    if steps <= 2 or spacing == "uniform":
        return pushforward_grid(steps, T, eps_t, schedule)
    lo, hi, rho = float(eta(eps_t, schedule)), float(eta(T, schedule)), 7.0  # edm: rho = 7 in eta
    i = torch.arange(steps + 1, dtype=torch.float64) / steps
    e = (hi ** (1 / rho) + i * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    return eta_inverse(e, schedule)


def finish(x_s: torch.Tensor, x_t: torch.Tensor, s: torch.Tensor, t: torch.Tensor, cfg) -> torch.Tensor:
    """The sampler's output after its last jump t -> s = eps_t: with ``cfg.final_clean`` the clean
    estimate that jump implies (DDIM solved for x), else x_s itself."""
    return ddim_clean(x_s, x_t, t, s, cfg.schedule) if cfg.final_clean else x_s


def per_sample(v: torch.Tensor, n: int) -> torch.Tensor:
    """One grid time (a 0-d device tensor) as n per-sample times."""
    return v.reshape(1).expand(n).clone()


def device_times(model, steps: int, cfg, spacing: str, times=None) -> torch.Tensor:
    """The time grid on the model's device, so no step copies times from the host."""
    return to_device(imm_times(steps, cfg.T, cfg.eps_t, cfg.schedule, spacing, times), next(model.parameters()).device)


@SAMPLERS.register("imm_pushforward")
@serves("imm")
@torch.no_grad()
def pushforward(model, objective, labels, n: int, steps: int, guidance: float = 1.0, generator=None,
                spacing: str = "uniform", times=None) -> ImageSample:
    cfg = objective.cfg
    grid = device_times(model, steps, cfg, spacing, times)
    x = model_noise(model, n, cfg.sigma_d, generator)
    for i in range(steps):
        t, s = per_sample(grid[i], n), per_sample(grid[i + 1], n)
        x, x_t = objective.f(model, x, s, t, labels, guidance), x
    return ImageSample(finish(x, x_t, s, t, cfg), steps * evals_per_step(guidance, labels))


@SAMPLERS.register("imm_restart")
@serves("imm")
@torch.no_grad()
def restart(model, objective, labels, n: int, steps: int, guidance: float = 1.0, generator=None,
            spacing: str = "uniform", times=None) -> ImageSample:
    cfg = objective.cfg
    host_grid = imm_times(steps, cfg.T, cfg.eps_t, cfg.schedule, spacing, times)  # for the re-noising scalars
    grid = to_device(host_grid, next(model.parameters()).device)
    x = model_noise(model, n, cfg.sigma_d, generator)
    eps_t = per_sample(grid[-1], n)
    for i in range(steps):
        t = per_sample(grid[i], n)
        clean = objective.f(model, x, eps_t, t, labels, guidance)
        if i == steps - 1:
            x = finish(clean, x, eps_t, t, cfg)
        else:
            a, s = alpha_sigma(host_grid[i + 1], cfg.schedule)
            x = float(a) * clean + float(s) * model_noise(model, n, cfg.sigma_d, generator)
    return ImageSample(x, steps * evals_per_step(guidance, labels))
