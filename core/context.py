"""What evaluation and sampling code needs to know about the run: device, precision, config, rank."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.device import autocast


@dataclass
class RunContext:
    cfg: object
    device: torch.device
    dtype: torch.dtype
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        return autocast(self.device, self.dtype)
