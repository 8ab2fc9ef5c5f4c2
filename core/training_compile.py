"""What train.compile / compile_mode / compile_heads / cuda_graphs / compile_tuning do to a model and
its objective: one place, used by the trainer and by the benchmarks that compare these settings."""
from __future__ import annotations

import torch

from core.compile_tuning import set_kernel_tuning
from core.config import ConfigError


def compile_for_training(model, objective, tcfg):
    """Compile the model's regions (and the objective's, with compile_heads) in place, or the whole
    loss; returns the loss function to call as ``loss_fn(model, batch)``."""
    if tcfg.cuda_graphs and not tcfg.compile:
        raise ConfigError("train.cuda_graphs=true runs the compiled regions as CUDA graphs: set train.compile=true too, "
                          "or train.cuda_graphs=false (the MNIST recipes turn graphs on for the GPU)")
    if not tcfg.compile:
        return objective
    if tcfg.compile_mode not in ("regional", "full"):
        raise ConfigError(f"train.compile_mode={tcfg.compile_mode!r}: choose regional or full")
    set_kernel_tuning(tcfg.compile_tuning)
    mode = "reduce-overhead" if tcfg.cuda_graphs else None
    if tcfg.compile_mode == "full":
        return torch.compile(objective.__call__, mode=mode)
    model.compile_regions(mode, image_heads=tcfg.compile_heads)
    if tcfg.compile_heads and hasattr(objective, "compile_regions"):
        objective.compile_regions(mode)
    return objective
