"""Exponential moving average of the weights, kept for evaluation and sampling.

The shadow is a list of tensors shaped like the parameters (DTensor shards under FSDP2), keyed by
parameter name; ``state()`` gives full tensors for checkpoints and evaluation models.
"""
from __future__ import annotations

import torch

from core.state import unique_names


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        names = unique_names(model)
        params = self._params(model)
        self.names = [names[id(p)] for p in params]
        self.shadow = [p.detach().clone() for p in params]

    @staticmethod
    def _params(model) -> list:
        return list(model.parameters())  # tied weights once, in a fixed order

    def decay_at(self, step: int) -> float:
        """Warm-up (1 + n) / (10 + n), so short runs are not dominated by their initial weights."""
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self._params(model)], 1.0 - self.decay_at(step))

    def state(self) -> dict:
        """Full tensors on the CPU (under FSDP a collective: every rank must call it)."""
        out = {}
        for n, t in zip(self.names, self.shadow):
            full = t.full_tensor() if hasattr(t, "full_tensor") else t
            out[n] = full.detach().cpu().contiguous()
        return out

    def load_state(self, sd: dict) -> None:
        missing = [n for n in self.names if n not in sd]
        if missing:
            raise KeyError(f"EMA weights missing {missing[:5]}")
        with torch.no_grad():
            for n, t in zip(self.names, self.shadow):
                src = sd[n]
                if hasattr(t, "full_tensor"):  # DTensor shard: take this rank's piece of the full tensor
                    from torch.distributed.tensor import distribute_tensor

                    src = distribute_tensor(src.to(t.device), t.device_mesh, t.placements).to_local()
                    t.to_local().copy_(src)
                else:
                    t.copy_(src)
