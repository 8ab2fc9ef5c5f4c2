"""How large Adam's eps (1e-8) is against sqrt(v), the second-moment estimate of each weight's gradient, in a
run's checkpoints: IMM's loss and gradients are small (grad norm 0.015-0.05 over 22M weights on the MNIST recipe),
and where sqrt(v) is near eps the update is damped. Usage: python adam_state.py RUN_DIR"""
import sys
from pathlib import Path

import torch

from core.checkpoint import list_checkpoints, load_tensors

EPS = 1e-8
for ckpt in list_checkpoints(Path(sys.argv[1]) / "ckpt"):
    tensors = load_tensors(ckpt / "optim.safetensors")
    steps = {k.rsplit("::", 1)[0]: float(v) for k, v in tensors.items() if k.endswith("::step")}
    roots = []
    for key, v in tensors.items():
        if key.endswith("::exp_avg_sq"):
            name = key.rsplit("::", 1)[0]
            bias = 1 - 0.99 ** steps.get(name, 1e9)  # beta2 of the recipes
            roots.append((v.float() / bias).sqrt().flatten())
    r = torch.cat(roots)
    q = torch.quantile(r[torch.randperm(r.numel())[:1_000_000]], torch.tensor([0.01, 0.1, 0.5, 0.9]))
    print(f"{ckpt.name}: {r.numel():,} weights; sqrt(v) quantiles 1/10/50/90%: "
          + " / ".join(f"{x:.2e}" for x in q.tolist())
          + f"; share with eps >= 10% of sqrt(v): {(r < 10 * EPS).float().mean():.4f}, >= sqrt(v): {(r < EPS).float().mean():.4f}")
