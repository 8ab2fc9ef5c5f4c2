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


def near_strokes(images_uint8: torch.Tensor, stroke: int = 128, radius: int = 2) -> torch.Tensor:
    """Boolean mask of the pixels within ``radius`` (Chebyshev distance) of a stroke pixel (>= stroke)."""
    x = images_uint8.reshape(-1, 1, *images_uint8.shape[-2:])
    k = 2 * radius + 1
    return (torch.nn.functional.max_pool2d((x >= stroke).float(), k, 1, radius) > 0).reshape(images_uint8.shape)


def despeckle(images_uint8: torch.Tensor, stroke: int = 128, radius: int = 2) -> torch.Tensor:
    """The images with every pixel farther than ``radius`` from a stroke set to black: what a sample
    set would score without its background specks (a diagnostic, not a post-processing step)."""
    return images_uint8 * near_strokes(images_uint8, stroke, radius).to(torch.uint8)


def spatial_stats(images_uint8: torch.Tensor, stroke: int = 128, radius: int = 2) -> dict:
    """Where the non-black pixels lie, for dark-background sets such as MNIST: ``speck_frac``, the
    fraction of pixels farther than ``radius`` from any stroke that are not black (faint specks in
    the background: about 1e-4 in MNIST), ``speck_level``, their mean grey level (0 without specks),
    and ``edge_mid``, the fraction of all pixels that are mid-grey and near a stroke (soft edges)."""
    near = near_strokes(images_uint8, stroke, radius)
    far = ~near
    mid = (images_uint8 > 0) & (images_uint8 < 255)
    specks = images_uint8[(images_uint8 > 0) & far].double()
    return {"speck_frac": float(len(specks) / far.sum().clamp(min=1).double()),
            "speck_level": float(specks.mean()) if len(specks) else 0.0,
            "edge_mid": float((mid & near).double().mean())}


def pixel_stats(images_uint8: torch.Tensor, reference_uint8: torch.Tensor | None = None) -> dict:
    """Mean grey level, fraction of pixels at 0, at 255 and in between, edge energy, the spatial
    statistics above; with a reference, the total-variation distance between the two pixel-value
    histograms (0..1)."""
    h = histogram(images_uint8)
    out = {"mean": float((h * torch.arange(256, dtype=torch.float64)).sum()), "frac_0": float(h[0]),
           "frac_255": float(h[255]), "frac_mid": float(h[1:255].sum()), "edge_energy": edge_energy(images_uint8),
           **spatial_stats(images_uint8)}
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
