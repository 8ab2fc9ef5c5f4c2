"""Inception-v3 pool features for FID, from a TorchScript file given by path.

Protocol: uint8 images -> x / 128 - 1 -> grayscale repeated to 3 channels -> bilinear resize to
299x299 (align_corners=False) -> (N, 2048) features.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F


class InceptionFeatures:
    def __init__(self, path: str, device):
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"Inception TorchScript file {p} does not exist")
        self.device = torch.device(device)
        self.net = torch.jit.load(str(p), map_location=self.device).float().eval()

    @torch.no_grad()
    def __call__(self, images_uint8: torch.Tensor, batch: int = 500) -> torch.Tensor:
        out = []
        for i in range(0, len(images_uint8), batch):
            x = images_uint8[i:i + batch].to(self.device).float() / 128 - 1
            if x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(self.net(x).float())
        return torch.cat(out)  # on the device: FID and KID are computed there
