"""Fréchet distance (FID) and kernel inception distance (KID) between two feature sets, in float64.

The arithmetic runs in torch on the given device, so features computed on a GPU are scored there
(on the 2-core CPU one 10,000 x 2048 pair takes 3.6 s for FID and 4.7 s for KID).
"""
from __future__ import annotations

import numpy as np
import torch


def _as64(features, device) -> torch.Tensor:
    return torch.as_tensor(features).to(device, torch.float64)


def feature_stats(features, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    f = _as64(features, device)
    return f.mean(0), torch.cov(f.T)


def _sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((a + a.T) / 2)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)); the trace of the square root is taken as
    the sum of square roots of the eigenvalues of C1^(1/2) C2 C1^(1/2), which are real and >= 0."""
    s1 = _sqrtm_psd(cov1)
    m = s1 @ cov2 @ s1
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + cov1.trace() + cov2.trace() - 2 * tr_sqrt)


def fid(features_a, features_b, device="cpu") -> float:
    return frechet_distance(*feature_stats(features_a, device), *feature_stats(features_b, device))


def kid(features_a, features_b, subsets: int = 50, subset_size: int = 1000, seed: int = 0, device="cpu") -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, averaged over random subsets."""
    a, b = _as64(features_a, device), _as64(features_b, device)
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for _ in range(subsets):
        ia = torch.as_tensor(rng.choice(len(a), m, replace=False), device=a.device)
        ib = torch.as_tensor(rng.choice(len(b), m, replace=False), device=a.device)
        x, y = a[ia], b[ib]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        total += ((kxx.sum() - kxx.trace()) + (kyy.sum() - kyy.trace())) / (m * (m - 1)) - 2 * kxy.mean()
    return float(total / subsets)
