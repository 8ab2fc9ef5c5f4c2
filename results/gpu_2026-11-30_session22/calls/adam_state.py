"""How large Adam's default eps (1e-8) is against sqrt(v), the second-moment estimate of each weight's gradient, in
a run's checkpoints: IMM's loss and gradients are small (grad norm 0.006-0.08 over 22M weights on the MNIST recipe
from step 1,000 on), and where sqrt(v) is near eps the update is damped. beta2 comes from the checkpoint; the
quantiles are of a seeded sample of a million weights. Usage: python adam_state.py RUN_DIR"""
import json
import sys
from pathlib import Path

import torch

from core.checkpoint import list_checkpoints, load_tensors

DEFAULT_EPS = 1e-8  # the question is about the default, whatever eps the run used
for ckpt in list_checkpoints(Path(sys.argv[1]) / "ckpt"):
    tensors = load_tensors(ckpt / "optim.safetensors")
    beta2 = json.loads((ckpt / "optim.json").read_text())["param_groups"][0]["betas"][1]
    steps = {k.rsplit("::", 1)[0]: float(v) for k, v in tensors.items() if k.endswith("::step")}
    roots = []
    for key, v in tensors.items():
        if key.endswith("::exp_avg_sq"):
            name = key.rsplit("::", 1)[0]
            bias = 1 - beta2 ** steps.get(name, 1e9)
            roots.append((v.float() / bias).sqrt().flatten())
    r = torch.cat(roots)
    sample = r[torch.randperm(r.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
    q = torch.quantile(sample, torch.tensor([0.01, 0.1, 0.5, 0.9]))
    print(f"{ckpt.name}: {r.numel():,} weights; sqrt(v) quantiles 1/10/50/90%: "
          + " / ".join(f"{x:.2e}" for x in q.tolist())
          + f"; share with eps >= 10% of sqrt(v): {(r < 10 * DEFAULT_EPS).float().mean():.4f}, "
          + f">= sqrt(v): {(r < DEFAULT_EPS).float().mean():.4f}")
