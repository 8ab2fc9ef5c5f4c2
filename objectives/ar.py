"""Autoregressive next-token prediction."""
from __future__ import annotations

from dataclasses import dataclass

from objectives import OBJECTIVES


@dataclass
class ARConfig:
    name: str = "ar"


@OBJECTIVES.register("ar")
class AutoregressiveObjective:
    Config = ARConfig
    task = "text"
    default_sampler = "ar"
    flops_multiplier = 1.0  # forward+backward once per step

    def __init__(self, cfg: ARConfig, spec=None):
        self.cfg = cfg

    def __call__(self, model, batch: dict) -> dict:
        tokens = batch["tokens"]
        return {"loss": model("text", tokens=tokens[:, :-1], targets=tokens[:, 1:])}
