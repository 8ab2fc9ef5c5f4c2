"""Autoregressive next-token prediction."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

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
        logits = model("text", tokens=tokens[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())
        return {"loss": loss}
