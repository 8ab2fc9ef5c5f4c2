"""Flow matching (OT path, velocity prediction): the diffusion baseline on the same backbone.

x_t = (1 - t) x + t eps, eps ~ N(0, sigma_d^2); the network's f(x_t; s, t) = x_t - (t - s) sigma_d G
is the Euler step of the velocity sigma_d G, trained by regression on (eps - x). s is wired into the
network as for IMM but always equals t here, so one backbone serves both objectives.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.batch_rng import to_device
from core.config import ConfigError
from objectives import OBJECTIVES
from objectives.image_common import batch_rng, drop_labels
from objectives.paths import Parameterization


@dataclass
class FMConfig:
    name: str = "fm"
    sigma_d: float = 0.5
    second_time: str = "stride"  # what the second time input carries (t - s = 0, or s = t)
    t_sampling: str = "logit_normal"  # logit_normal | uniform
    logit_mean: float = 0.0
    logit_std: float = 1.0
    # logit_normal only: this share of the t draws is uniform instead, so that the ends of [0, 1] are trained
    # too. Logit-normal t alone almost never draws t < 1/64, where a 128-step Euler grid evaluates the network
    uniform_share: float = 0.0
    label_dropout: float = 0.1


@OBJECTIVES.register("fm")
class FlowMatchingObjective:
    Config = FMConfig
    task = "image"
    default_sampler = "euler"
    flops_multiplier = 1.0

    def __init__(self, cfg: FMConfig, spec=None):
        if cfg.t_sampling not in ("logit_normal", "uniform"):
            raise ConfigError(f"objective.t_sampling={cfg.t_sampling!r}: choose logit_normal or uniform")
        if not 0 <= cfg.uniform_share <= 1:
            raise ConfigError(f"objective.uniform_share must be in [0, 1], got {cfg.uniform_share}")
        if cfg.uniform_share > 0 and cfg.t_sampling != "logit_normal":
            raise ConfigError("objective.uniform_share mixes uniform draws into t_sampling=logit_normal; "
                              "with t_sampling=uniform every draw is uniform already")
        self.cfg = cfg
        try:
            self.param = Parameterization("ot_fm", "euler_fm", cfg.second_time, cfg.sigma_d)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.null_label = spec.num_classes if spec is not None and spec.num_classes else None

    def sample_t(self, n: int, rng) -> torch.Tensor:
        if self.cfg.t_sampling == "uniform":
            return rng.uniform(n)
        t = torch.sigmoid(self.cfg.logit_mean + self.cfg.logit_std * rng.normal64(n))
        if self.cfg.uniform_share > 0:  # drawn only then: without it the draws stay those of plain logit-normal t
            pick, value = rng.uniform(n, rows=2)
            t = torch.where(pick < self.cfg.uniform_share, value, t)
        return t

    def __call__(self, model, batch: dict) -> dict:
        from objectives.paths import network_g

        x, labels = batch["images"], batch.get("labels")
        rng = batch_rng(batch, x.device)
        t = to_device(self.sample_t(x.shape[0], rng), x.device)
        eps = rng.normal_like(x) * self.cfg.sigma_d
        tt = t.float().view(-1, *[1] * (x.dim() - 1))
        x_t = (1 - tt) * x + tt * eps
        if labels is not None and self.null_label is not None:
            labels = drop_labels(labels, self.cfg.label_dropout, self.null_label, rng)
        g = network_g(model, self.param, x_t, t, t, labels)
        target = (eps - x) / self.cfg.sigma_d
        return {"loss": (g.float() - target).pow(2).mean()}

    def f(self, model, x_t, s, t, labels, guidance: float = 1.0):
        from objectives.paths import network_f

        return network_f(model, self.param, x_t, s, t, labels, guidance, self.null_label)
