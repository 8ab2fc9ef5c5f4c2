"""Inductive Moment Matching (Zhou, Ermon, Song 2025), as specified in docs: groups of M particles
share (s, r, t); y_t = f(x_t; s, t) with gradients, y_r = f(x_r; s, r) without (same weights, not an
EMA); the loss is a kernel MMD between the two particle sets of each group, weighted by w(s, t).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from core.batch_rng import to_device, uniform64
from core.config import ConfigError
from objectives import OBJECTIVES
from objectives.image_common import batch_rng, drop_labels
from objectives.paths import (Parameterization, ddim, eta, eta_inverse, imm_weight, interpolate, pushforward_grid,
                              skip_out)


@dataclass
class IMMConfig:
    name: str = "imm"
    schedule: str = "ot_fm"  # ot_fm | cosine
    output: str = "simple_edm"  # simple_edm | euler_fm (ot_fm only)
    second_time: str = "stride"  # identity (s) | stride (t - s); stride suits bf16
    sigma_d: float = 0.5
    M: int = 4  # particles per group
    k: int = 12  # r: constant decrement d = (eta_max - eta_min) / 2^k in eta
    # a curriculum (not in the paper): k rises linearly from k to k_end over the training budget, so the
    # gaps t - r shrink geometrically as training goes, as consistency training shrinks its steps; None: fixed k.
    # On the H200's 4-minute MNIST recipe it hurt: 4-step FID 4.2 (k 8 -> 12) and 10.1 (8 -> 16) against 3.0-3.2
    k_end: float | None = None
    # not in the paper: r's eta is at least this share of t's eta (0 turns it off). With a large
    # decrement (small k) eta(t) - d falls below 0 wherever eta(t) < d, so r = s there and the
    # target is the data's own x_s: a regression onto a random point. The floor keeps r between s and
    # t at small t (a relative gap) and leaves the constant decrement wherever eta(t) > d / (1 - ratio).
    # On the H200's MNIST recipe (k = 8, a = 1.5) 0.5 took the 4-step FID from 2.93 to 2.38-2.76 (six runs),
    # 0.3 and 0.7 gave 2.78 and 3.41; on the CPU digits (1,500 steps) it hurt: 26.6 -> 33.6
    # (results/cpu_eta_floor_2026-11-30)
    min_eta_ratio: float = 0.0
    # not in the paper: r's eta is at most this share of t's eta (1 turns it off). The constant decrement
    # d is tiny against eta near T (eta(0.994) = 166, d = 0.625 at k = 8), so the induction from T down
    # to mid t runs through hundreds of gaps t - r of ~1e-5; a cap makes the gap relative there (a
    # constant step in log eta, i.e. in log-SNR) wherever eta(t) > d / (1 - ratio), and leaves the
    # constant decrement below. On the H200's MNIST recipe 0.9 and 0.95 gave 4-step FID 2.87 and 2.91,
    # against 2.46-2.76 without (results/gpu_2026-11-30_session16)
    max_eta_ratio: float = 1.0
    # not in the paper: this share of the groups takes t = T exactly. Every pushforward sampler starts its
    # first jump at T, which t ~ U(eps_t, T) never draws, and on the H200's MNIST recipe the first 4-step
    # jump loses the most quality (splitting it gains 0.3 FID; results/gpu_2026-11-30_session15 and 20).
    # The other groups keep t ~ U(eps_t, T); s ~ U(eps_t, t) for all. 0 turns it off (and draws nothing more).
    # On the H200's MNIST recipe it hurt, the more the worse: 4 / 8-step FID 2.80 / 2.05 (0.1) and 3.62 / 2.73
    # (0.3) against 2.38-2.71 / 1.93-2.08 (results/gpu_2026-11-30_session20)
    t_at_T_share: float = 0.0
    # not in the paper: this share of the groups takes s from a pushforward grid (one of s_grid_steps's,
    # the samplers' default grids, drawn per group): s is the grid time just below t, so the group trains
    # the jump that a sampler of that many steps makes from t's segment, as multistep consistency models
    # train fixed segments. The other groups keep s ~ U(eps_t, t). 0 turns it off (and draws nothing more).
    # On the H200's MNIST recipe it hurt: share 0.5 gave 4-step FID 3.06 ([4]) and 2.87 ([4, 8]) against
    # 2.38-2.71 (results/gpu_2026-11-30_session18)
    s_grid_share: float = 0.0
    s_grid_steps: list[int] = field(default_factory=lambda: [4])
    eta_max: float = 160.0
    eta_min: float = 0.0
    T: float = 0.994  # t ~ U(eps_t, T); 0.994 for ot_fm, 0.996 for cosine
    eps_t: float = 0.006  # 0.006 for pixels, 0 for latents
    # low-precision variant: r <= t - min_gap (0 turns it off). Gaps under ~1.6e-3 (t >= 0.95 at k = 8) lie below
    # bf16's rounding of y_t - y_r (scripts/imm_precision.py), yet on the H200's MNIST recipe neither min_gap 0.01
    # (4 / 8-step FID 2.79 / 2.02 against 2.45-2.58 / 1.95-2.02) nor TF32 training at equal steps did better
    # (results/gpu_2026-11-30_session21)
    min_gap: float = 1e-4
    # not in the paper: "stratified" draws the groups' t (and s's share of [eps_t, t]) one per stratum of the
    # batch (a Latin hypercube), so each step's few groups (B / M) cover the times evenly: less variance from
    # the time draws, the same distribution. "uniform": independent draws, as the paper. On the H200's MNIST
    # recipe it was no better: 4 / 8-step FID 2.63 / 2.05 against 2.45-2.71 / 1.95-2.06
    # (results/gpu_2026-11-30_session22)
    time_sampling: str = "uniform"
    a: float = 1.0  # weighting exponent on alpha_t (1 or 2)
    b: float = 4.0  # weighting shift (5 CIFAR, 4 ImageNet)
    kernel: str = "laplace"  # laplace | rbf
    # v: every pair (IMM.md's V-statistic); u: pairs j != k only, the unbiased MMD^2 of independent
    # particles, without the pull of y_t^j towards its own y_r^j (x_r shares x_t's x and eps)
    estimator: str = "v"
    label_dropout: float = 0.1
    # not in the paper: the M particles of a group share one class label (the data draws one image per
    # group for the class, then M images of that class), so a group's MMD compares two samples of one
    # class-conditional distribution instead of two mixtures of M classes. Needs labelled data. On the H200's
    # MNIST recipe it hurt: 4 / 8-step FID 2.75 / 2.14 against 2.38-2.71 / 1.91-2.08
    # (results/gpu_2026-11-30_session19); on the CPU digits its classifier FID (15.8 against 13.8) lies inside
    # the default's seed spread (14.9-18.6, results/gpu_2026-11-30_session20)
    label_groups: bool = False
    # samplers: return the clean estimate implied by the last jump (0 extra NFE) instead of x at eps_t,
    # whose sigma_d * eps_t noise shows on flat backgrounds; false gives the paper's x_{eps_t}
    final_clean: bool = True


def validate(cfg: IMMConfig, batch_size: int | None = None) -> None:
    if cfg.M < 1:
        raise ConfigError(f"objective.M must be >= 1, got {cfg.M}")
    if not 1 <= cfg.k <= 40:
        raise ConfigError(f"objective.k must be in [1, 40] (12-15 in the paper), got {cfg.k}")
    if cfg.k_end is not None and not 1 <= cfg.k_end <= 40:
        raise ConfigError(f"objective.k_end must be in [1, 40] (or null for a fixed k), got {cfg.k_end}")
    if not 0 <= cfg.eps_t < cfg.T < 1:
        raise ConfigError(f"need 0 <= objective.eps_t < objective.T < 1, got eps_t={cfg.eps_t}, T={cfg.T}")
    if not 0 <= cfg.min_eta_ratio < 1:
        raise ConfigError(f"objective.min_eta_ratio must be in [0, 1) (0 turns it off), got {cfg.min_eta_ratio}")
    if not cfg.min_eta_ratio < cfg.max_eta_ratio <= 1:
        raise ConfigError(f"objective.max_eta_ratio must be in (min_eta_ratio, 1] (1 turns it off), "
                          f"got {cfg.max_eta_ratio} with min_eta_ratio={cfg.min_eta_ratio}")
    if not 0 <= cfg.t_at_T_share <= 1:
        raise ConfigError(f"objective.t_at_T_share must be in [0, 1] (0 turns it off), got {cfg.t_at_T_share}")
    if not 0 <= cfg.s_grid_share <= 1:
        raise ConfigError(f"objective.s_grid_share must be in [0, 1] (0 turns it off), got {cfg.s_grid_share}")
    if not cfg.s_grid_steps or any(not isinstance(n, int) or n < 1 for n in cfg.s_grid_steps):
        raise ConfigError(f"objective.s_grid_steps must be a non-empty list of step counts >= 1, e.g. [4, 8], "
                          f"got {cfg.s_grid_steps!r}")
    if cfg.eta_max <= cfg.eta_min or cfg.eta_min < 0:
        raise ConfigError(f"need 0 <= eta_min < eta_max, got {cfg.eta_min}, {cfg.eta_max}")
    if cfg.time_sampling not in ("uniform", "stratified"):
        raise ConfigError(f"objective.time_sampling={cfg.time_sampling!r}: choose uniform or stratified")
    if cfg.kernel not in ("laplace", "rbf"):
        raise ConfigError(f"objective.kernel={cfg.kernel!r}: choose laplace or rbf")
    if cfg.estimator not in ("v", "u"):
        raise ConfigError(f"objective.estimator={cfg.estimator!r}: choose v (every pair) or u (pairs j != k)")
    if cfg.estimator == "u" and cfg.M < 2:
        raise ConfigError("objective.estimator=u needs objective.M >= 2 (it leaves out each particle's pair with itself)")
    if not 0 <= cfg.label_dropout < 1:
        raise ConfigError(f"objective.label_dropout must be in [0, 1), got {cfg.label_dropout}")
    if batch_size is not None and batch_size % cfg.M:
        raise ConfigError(f"the per-process batch ({batch_size}) must be a multiple of objective.M={cfg.M}: "
                          f"groups of M particles share their times")
    try:
        Parameterization(cfg.schedule, cfg.output, cfg.second_time, cfg.sigma_d)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def k_at(cfg: IMMConfig, progress: float | None) -> float:
    """k at this point of training; ``progress`` is the share of the training budget used (None outside
    training: the final value)."""
    if cfg.k_end is None:
        return cfg.k
    p = 1.0 if progress is None else min(max(progress, 0.0), 1.0)
    return cfg.k + (cfg.k_end - cfg.k) * p


def curriculum_progress(batch: dict, cfg: IMMConfig) -> float | None:
    """The batch's training progress, read only by a curriculum: a compiled loss that never reads the
    float (fixed k) never guards on it, so it is not recompiled when the float changes."""
    return batch.get("progress") if cfg.k_end is not None else None


def _uniform_rows(n_groups: int, rng, stratified: bool = False) -> torch.Tensor:
    """Two rows of float64 U[0, 1), one value per group, from a BatchRNG, a torch.Generator or None."""
    if hasattr(rng, "uniform"):
        return rng.uniform(n_groups, rows=2, stratified=stratified)
    return uniform64((2, n_groups), rng, stratified)


def sample_times(n_groups: int, cfg: IMMConfig, rng=None, progress: float | None = None):
    """(s, r, t) per group in float64: t ~ U(eps_t, T) (a share at T exactly, if asked), s ~ U(eps_t, t),
    r by the eta decrement. ``rng``: a BatchRNG (or a torch.Generator, or None for the global generator);
    ``progress``: see k_at."""
    u = _uniform_rows(n_groups, rng, cfg.time_sampling == "stratified")
    t = cfg.eps_t + (cfg.T - cfg.eps_t) * u[0]
    if cfg.t_at_T_share > 0:
        t = t.masked_fill(_uniform_rows(n_groups, rng)[0] < cfg.t_at_T_share, cfg.T)
    s = cfg.eps_t + (t - cfg.eps_t) * u[1]
    if cfg.s_grid_share > 0:
        v = _uniform_rows(n_groups, rng)
        on_grid = v[0] < cfg.s_grid_share
        s = torch.where(on_grid, grid_s(t, cfg, v[1]), s)
    return s, r_from(s, t, cfg, k_at(cfg, progress)), t


def grid_s(t: torch.Tensor, cfg: IMMConfig, pick: torch.Tensor) -> torch.Tensor:
    """Per group, the largest time below t of the pushforward grid whose step count ``pick`` (U[0, 1))
    selects from cfg.s_grid_steps: the end of the jump a sampler of that many steps makes from t's segment."""
    out = torch.empty_like(t)
    which = (pick * len(cfg.s_grid_steps)).long()
    for i, steps in enumerate(cfg.s_grid_steps):
        ascending = pushforward_grid(steps, cfg.T, cfg.eps_t, cfg.schedule).flip(0)
        below = (torch.searchsorted(ascending, t) - 1).clamp(min=0)  # ascending[below] < t <= ascending[below + 1]
        out = torch.where(which == i, ascending[below], out)
    return out


def r_from(s: torch.Tensor, t: torch.Tensor, cfg: IMMConfig, k: float | None = None) -> torch.Tensor:
    """r for each (s, t); k None: the k a finished run was trained with last (a curriculum's final k)."""
    d = (cfg.eta_max - cfg.eta_min) / 2 ** (k_at(cfg, None) if k is None else k)
    eta_t = eta(t, cfg.schedule)
    # the floor min_eta_ratio * eta(t) is the clamp at 0 that the paper's mapping needs (ratio 0: exactly
    # it); the cap max_eta_ratio * eta(t) is never below eta(t) - d when the ratio is 1 (off)
    eta_r = torch.minimum(torch.maximum(eta_t - d, cfg.min_eta_ratio * eta_t), cfg.max_eta_ratio * eta_t)
    r = eta_inverse(eta_r, cfg.schedule)
    if cfg.min_gap > 0:
        r = torch.minimum(r, t - cfg.min_gap)
    return torch.maximum(s, r)


def pairwise_kernel(a: torch.Tensor, b: torch.Tensor, width: torch.Tensor, kind: str) -> torch.Tensor:
    """a, b (G, M, D), width (G,) -> (G, M, M). Distances from explicit differences (exact near 0);
    max(||a - b||, 1e-8) is taken inside the square root so the gradient at 0 is 0, not NaN."""
    sq = (a[:, :, None, :] - b[:, None, :, :]).pow(2).sum(-1)
    w = width.view(-1, 1, 1)
    if kind == "laplace":
        return torch.exp(-sq.clamp(min=1e-16).sqrt() / w)
    return torch.exp(-sq / (2 * w))


def group_mmd(y_t: torch.Tensor, y_r: torch.Tensor, m: int, width: torch.Tensor, kind: str,
              estimator: str = "v") -> torch.Tensor:
    """MMD^2 per group, (G,): the V-statistic (every pair j, k) or the U-statistic (pairs j != k)."""
    g = y_t.shape[0] // m
    a, b = y_t.reshape(g, m, -1).float(), y_r.reshape(g, m, -1).float()
    kxx = pairwise_kernel(a, a, width, kind)
    kyy = pairwise_kernel(b, b, width, kind)
    kxy = pairwise_kernel(a, b, width, kind)
    terms = kxx + kyy - 2 * kxy
    if estimator == "v":
        return terms.mean(dim=(1, 2))
    off_diagonal = ~torch.eye(m, dtype=torch.bool, device=terms.device)
    return (terms * off_diagonal).sum(dim=(1, 2)) / (m * (m - 1))


def imm_loss(y_t: torch.Tensor, y_r: torch.Tensor, s_g: torch.Tensor, t_g: torch.Tensor, cfg: IMMConfig):
    """-> (mean over groups of w(s, t) MMD^2, the MMD^2 of each group). Rows come in groups of M that
    share (s_g, t_g); the kernel width is |c_out(s, t)| times the elements per sample."""
    _, c_out = skip_out(s_g, t_g, cfg.schedule, cfg.sigma_d, cfg.output)
    width = (c_out.abs() * y_t[0].numel()).float()
    mmd = group_mmd(y_t.flatten(1), y_r.flatten(1), cfg.M, width, cfg.kernel, cfg.estimator)
    return (imm_weight(t_g, cfg.schedule, cfg.a, cfg.b).float() * mmd).mean(), mmd


class CompilableMMD:
    """The kernel MMD and its weighting: a few dozen small operations, one graph when compiled."""

    mmd_loss = staticmethod(imm_loss)

    def compile_regions(self, mode: str | None = None) -> None:
        """train.compile_heads: the loss's small operations as one graph (fewer host dispatches)."""
        self.mmd_loss = torch.compile(imm_loss, mode=mode, dynamic=False)


@OBJECTIVES.register("imm")
class IMMObjective(CompilableMMD):
    Config = IMMConfig
    task = "image"
    default_sampler = "imm_pushforward"
    flops_multiplier = 4 / 3  # forward+backward (3 units) plus one no-grad forward (1 unit)

    def __init__(self, cfg: IMMConfig, spec=None):
        validate(cfg)
        self.cfg = cfg
        self.param = Parameterization(cfg.schedule, cfg.output, cfg.second_time, cfg.sigma_d)
        self.null_label = spec.num_classes if spec is not None and spec.num_classes else None

    def validate_batch(self, batch_size: int) -> None:
        validate(self.cfg, batch_size)

    def __call__(self, model, batch: dict) -> dict:
        cfg, m = self.cfg, self.cfg.M
        x, labels = batch["images"], batch.get("labels")
        b = x.shape[0]
        if b % m:
            raise ConfigError(f"batch of {b} is not a multiple of objective.M={m}")
        rng = batch_rng(batch, x.device)
        # times are drawn on the CPU, moved once, and the float64 arithmetic stays on the device
        progress = curriculum_progress(batch, cfg)
        s_g, r_g, t_g = (to_device(v, x.device) for v in sample_times(b // m, cfg, rng, progress))
        eps = rng.normal_like(x) * cfg.sigma_d
        if labels is not None and self.null_label is not None:
            labels = drop_labels(labels, cfg.label_dropout, self.null_label, rng)
        loss, mmd, _, _ = self.pair_loss(model, x, eps, labels, s_g, r_g, t_g)
        out = {"loss": loss, "mmd": mmd.detach().mean()}
        if cfg.k_end is not None:
            out["k"] = k_at(cfg, progress)
        return out

    def pair_loss(self, model, x, eps, labels, s_g, r_g, t_g):
        """One batch's loss once its draws are made ((s, r, t) per group, the noise, the labels after dropout)
        -> (loss, the MMD^2 of each group, y_t, y_r)."""
        cfg = self.cfg
        s, r, t = (v.repeat_interleave(cfg.M) for v in (s_g, r_g, t_g))
        x_t = interpolate(x, eps, t, cfg.schedule)
        x_r = ddim(x_t, x, t, r, cfg.schedule)
        y_t = self.f(model, x_t, s, t, labels)
        with torch.no_grad():
            y_r = self.f(model, x_r, s, r, labels)
        loss, mmd = self.mmd_loss(y_t, y_r, s_g, t_g, cfg)
        return loss, mmd, y_t, y_r

    def f(self, model, x_t, s, t, labels, guidance: float = 1.0):
        from objectives.paths import network_f

        return network_f(model, self.param, x_t, s, t, labels, guidance, self.null_label)
