"""Samplers that drive a KV cache run eagerly even on a compiled model: each step brings new
positions, layer indices and lengths as Python ints, which would recompile the blocks again and again."""
from __future__ import annotations

import functools

import torch


def eager(fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with torch.compiler.set_stance("force_eager"):
            return fn(*args, **kwargs)

    return run
