"""Low-level statistics of uint8 image sets, and a pixel-value histogram match.

Used to ask *where* a sample set differs from the data when two feature spaces disagree (for
example Inception FID against the project classifier's FID): in the marginal distribution of pixel
values (grey levels, saturation), or in edges (sharpness), rather than in shapes and classes.
"""
from __future__ import annotations

import torch


def histogram(images_uint8: torch.Tensor) -> torch.Tensor:
    """Normalised 256-bin histogram of all pixel values (float64, sums to 1)."""
    counts = torch.bincount(images_uint8.reshape(-1).long(), minlength=256).double()
    return counts / counts.sum()


def edge_energy(images_uint8: torch.Tensor) -> float:
    """Root-mean-square difference between horizontally and vertically adjacent pixels, in grey
    levels: higher for sharp strokes, lower for blurred ones (a mean absolute difference would not
    tell them apart: blurring a step spreads it without changing its total rise)."""
    x = images_uint8.double()
    dx2 = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()
    dy2 = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()
    return float(((dx2 + dy2) / 2).sqrt())


def pixel_stats(images_uint8: torch.Tensor, reference_uint8: torch.Tensor | None = None) -> dict:
    """Mean grey level, fraction of pixels at 0, at 255 and in between, edge energy; with a
    reference, the total-variation distance between the two pixel-value histograms (0..1)."""
    h = histogram(images_uint8)
    out = {"mean": float((h * torch.arange(256, dtype=torch.float64)).sum()), "frac_0": float(h[0]),
           "frac_255": float(h[255]), "frac_mid": float(h[1:255].sum()), "edge_energy": edge_energy(images_uint8)}
    if reference_uint8 is not None:
        out["hist_tv"] = float((h - histogram(reference_uint8)).abs().sum() / 2)
    return out


def match_histogram(images_uint8: torch.Tensor, reference_uint8: torch.Tensor) -> torch.Tensor:
    """Remap pixel values by one monotone lookup table so that the set's value histogram follows the
    reference's (quantile matching). Shapes, positions and ranks of grey levels stay as they were:
    only the marginal distribution of pixel values changes."""
    src = histogram(images_uint8)
    ref_cdf = torch.cumsum(histogram(reference_uint8), 0)
    # each source level -> the lowest reference level whose CDF reaches the source level's mid-CDF
    mid = torch.cumsum(src, 0) - src / 2
    table = torch.searchsorted(ref_cdf, mid.clamp(max=float(ref_cdf[-1]))).clamp(max=255).to(torch.uint8)
    return table[images_uint8.long()]
