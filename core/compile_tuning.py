"""Inductor's kernel tuning switch, in one place (it is process-global, so benchmarks reset it)."""
from __future__ import annotations


def set_kernel_tuning(on: bool) -> None:
    """Coordinate-descent search of block sizes for the Triton kernels that torch.compile generates.
    Costs compile time once per kernel; pays where a memory-bound kernel got a poor default."""
    import torch._inductor.config as inductor_config

    inductor_config.coordinate_descent_tuning = bool(on)
