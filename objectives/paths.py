"""Interpolants x_t = alpha_t x + sigma_t eps (t = 0 data, t = 1 noise) and the IMM network
parameterisation. All time arithmetic is float64 (near t = T the gap t - r is a few float32 ulps).

Functions take float64 tensors (or Python floats) of times and return float64 tensors.
"""
from __future__ import annotations

import math

import torch

SCHEDULES = ("ot_fm", "cosine")


def _t(x):
    return x if torch.is_tensor(x) else torch.tensor(x, dtype=torch.float64)


def alpha_sigma(t, schedule: str):
    t = _t(t)
    if schedule == "ot_fm":
        return 1 - t, t
    if schedule == "cosine":
        return torch.cos(math.pi / 2 * t), torch.sin(math.pi / 2 * t)
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")


def eta(t, schedule: str):
    """eta_t = sigma_t / alpha_t."""
    t = _t(t)
    if schedule == "ot_fm":
        return t / (1 - t)
    return torch.tan(math.pi / 2 * t)


def eta_inverse(e, schedule: str):
    e = _t(e)
    if schedule == "ot_fm":
        return e / (1 + e)
    return 2 / math.pi * torch.atan(e)


def pushforward_grid(steps: int, T: float, eps_t: float, schedule: str) -> torch.Tensor:
    """The paper's pushforward times, decreasing t_N = T > ... > t_0 = eps_t: 1 step T -> eps_t, 2 steps
    through eta = 1.4, more steps uniform in t. Shared by the samplers and by IMM's grid-aligned s."""
    if steps == 1:
        return torch.tensor([T, eps_t], dtype=torch.float64)
    if steps == 2:
        return torch.tensor([T, float(eta_inverse(1.4, schedule)), eps_t], dtype=torch.float64)
    return torch.linspace(T, eps_t, steps + 1, dtype=torch.float64)


def log_snr(t, schedule: str):
    """lambda_t = 2 log(alpha_t / sigma_t)."""
    a, s = alpha_sigma(t, schedule)
    return 2 * torch.log(a / s)


def neg_dlog_snr_dt(t, schedule: str):
    """-d lambda_t / dt."""
    t = _t(t)
    if schedule == "ot_fm":
        return 2 / (t * (1 - t))
    return 2 * math.pi / torch.sin(math.pi * t)


def interpolate(x: torch.Tensor, eps: torch.Tensor, t, schedule: str) -> torch.Tensor:
    """x_t = alpha_t x + sigma_t eps (per-sample float64 t, the result in x's dtype)."""
    a_t, s_t = alpha_sigma(t, schedule)
    return _bcast(a_t, x) * x + _bcast(s_t, eps) * eps


def ddim(x_t: torch.Tensor, x: torch.Tensor, t, s, schedule: str) -> torch.Tensor:
    """Move x_t at time t to time s (s <= t) along the path through the clean estimate x.

    ddim(x_t, x, t -> s) = (alpha_s - sigma_s / sigma_t * alpha_t) x + (sigma_s / sigma_t) x_t
    Source time first, target second: ddim(x_t, x, t, t) = x_t and ddim(x_t, x, t, 0) = x.
    """
    a_t, s_t = alpha_sigma(t, schedule)
    a_s, s_s = alpha_sigma(s, schedule)
    ratio = s_s / s_t
    c_x, c_xt = a_s - ratio * a_t, ratio
    return _bcast(c_x, x) * x + _bcast(c_xt, x_t) * x_t


def ddim_clean(x_s: torch.Tensor, x_t: torch.Tensor, t, s, schedule: str) -> torch.Tensor:
    """The clean estimate x that ``ddim(x_t, x, t -> s)`` would have used to land on x_s (its inverse
    in x; needs s < t): x = (x_s - sigma_s / sigma_t * x_t) / (alpha_s - sigma_s / sigma_t * alpha_t)."""
    a_t, s_t = alpha_sigma(t, schedule)
    a_s, s_s = alpha_sigma(s, schedule)
    ratio = s_s / s_t
    return (x_s - _bcast(ratio, x_t) * x_t) / _bcast(a_s - ratio * a_t, x_s)


def _bcast(coef, like: torch.Tensor) -> torch.Tensor:
    """float64 per-sample coefficient -> like's dtype, shaped to broadcast over its trailing dims."""
    coef = _t(coef).to(device=like.device)
    if coef.dim() == 0:
        return coef.to(like.dtype)
    return coef.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def c_in(t, schedule: str, sigma_d: float):
    a, s = alpha_sigma(t, schedule)
    return 1 / (sigma_d * torch.sqrt(a ** 2 + s ** 2))


def skip_out(s, t, schedule: str, sigma_d: float, output: str):
    """(c_skip, c_out) of f(x_t; s, t) = c_skip x_t + c_out G. Both forms give f(x_t; t, t) = x_t."""
    s, t = _t(s), _t(t)
    if output == "euler_fm":
        if schedule != "ot_fm":
            raise ValueError("the euler_fm output form needs the ot_fm schedule")
        return torch.ones_like(t), -(t - s) * sigma_d
    if output == "simple_edm":
        a_t, s_t = alpha_sigma(t, schedule)
        a_s, s_s = alpha_sigma(s, schedule)
        norm = a_t ** 2 + s_t ** 2
        return (a_t * a_s + s_t * s_s) / norm, -sigma_d * (a_s * s_t - s_s * a_t) / torch.sqrt(norm)
    raise ValueError(f"unknown output form {output!r}; choose simple_edm or euler_fm")


def imm_weight(t, schedule: str, a: float, b: float):
    """w(s, t) = 0.5 sigmoid(b - lambda_t) (-dlambda/dt) alpha_t^a / (alpha_t^2 + sigma_t^2)."""
    t = _t(t)
    al, si = alpha_sigma(t, schedule)
    return 0.5 * torch.sigmoid(b - log_snr(t, schedule)) * neg_dlog_snr_dt(t, schedule) * al ** a / (al ** 2 + si ** 2)


class Parameterization:
    """How the network output G becomes f(x_t; s, t): schedule, output form, second time input."""

    def __init__(self, schedule: str = "ot_fm", output: str = "euler_fm", second_time: str = "stride",
                 sigma_d: float = 0.5):
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
        if second_time not in ("identity", "stride"):
            raise ValueError(f"unknown second_time {second_time!r}; choose identity or stride")
        skip_out(0.1, 0.2, schedule, sigma_d, output)  # validates the output form
        self.schedule, self.output, self.second_time, self.sigma_d = schedule, output, second_time, sigma_d

    def network_inputs(self, x_t: torch.Tensor, s, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_in(t) x_t, c_noise(t), c_noise(s or t - s)) with c_noise(u) = 1000 u."""
        s, t = _t(s), _t(t)
        second = s if self.second_time == "identity" else t - s
        x_in = _bcast(c_in(t, self.schedule, self.sigma_d), x_t) * x_t
        dev = x_t.device
        return x_in, (1000 * t).float().to(dev), (1000 * second).float().to(dev)

    def combine(self, x_t: torch.Tensor, g: torch.Tensor, s, t) -> torch.Tensor:
        c_skip, c_out = skip_out(s, t, self.schedule, self.sigma_d, self.output)
        return _bcast(c_skip, x_t) * x_t + _bcast(c_out, x_t) * g.float()


def network_g(model, param: Parameterization, x_t, s, t, labels, guidance: float = 1.0, null_label: int | None = None):
    """G(c_in x_t, c_noise(t), c_noise(s), label), with classifier-free guidance when guidance != 1:
    G_w = w G(label) + (1 - w) G(null), both halves in one batch (2 network evaluations per sample)."""
    x_in, nt, ns = param.network_inputs(x_t, s, t)
    if guidance == 1.0 or labels is None:
        return model("image", x=x_in, noise_t=nt, noise_s=ns, labels=labels)
    null = torch.full_like(labels, null_label)
    g = model("image", x=torch.cat([x_in, x_in]), noise_t=torch.cat([nt, nt]), noise_s=torch.cat([ns, ns]),
              labels=torch.cat([labels, null]))
    return guide(g, guidance)


def guide(g: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance from one batch holding the conditional half, then the null half:
    w G(cond) + (1 - w) G(null), in float32."""
    g_cond, g_null = g.float().chunk(2)
    return guidance * g_cond + (1 - guidance) * g_null


def network_f(model, param: Parameterization, x_t, s, t, labels, guidance: float = 1.0, null_label: int | None = None):
    """f(x_t; s, t) = c_skip x_t + c_out G (float32 out)."""
    return param.combine(x_t.float(), network_g(model, param, x_t, s, t, labels, guidance, null_label), s, t)
