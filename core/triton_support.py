"""Triton where this build of torch has it: CUDA builds ship it, the CPU build does not. The fused
operators run their Triton kernels on CUDA tensors and the same algebra in PyTorch elsewhere."""
from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the torch build
    triton = tl = None


def use_triton(t: torch.Tensor) -> bool:
    return triton is not None and t.is_cuda
