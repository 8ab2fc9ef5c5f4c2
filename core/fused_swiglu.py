"""SwiGLU's activation over the fused gate/up projection as one operator (model.fused_swiglu).

silu(gate) * up is cheap, but compiled, its backward writes the gate and up gradients through a
concatenation into the projection's gradient, which took 3.5 ms of a 64 ms training step at
GPT-2-124M shape on an H200 (1.9 ms when the two halves are separate matmuls, which cost more matmul
time instead). Here the backward kernel writes both halves of one gradient buffer itself.

A custom operator, opaque to torch.compile: a Triton kernel on CUDA, the same algebra in PyTorch
elsewhere (the CPU tests check it against autograd; the GPU benchmark checks the kernel against it).
"""
from __future__ import annotations

import torch
from torch import Tensor

from core.triton_support import tl, triton, use_triton

ELEMENTS_PER_PROGRAM = 1024


def _halves(gate_up: Tensor) -> tuple[Tensor, Tensor]:
    return gate_up.float().chunk(2, dim=-1)


def _forward_torch(gate_up: Tensor) -> Tensor:
    gate, up = _halves(gate_up)
    return torch.nn.functional.silu(gate) * up


def _backward_torch(grad: Tensor, gate_up: Tensor) -> Tensor:
    gate, up = _halves(gate_up)
    sig = torch.sigmoid(gate)
    grad = grad.float()
    # d silu(g) / dg = s (1 + g (1 - s)) with s = sigmoid(g)
    return torch.cat([grad * up * sig * (1 + gate * (1 - sig)), grad * gate * sig], dim=-1)


if triton is not None:

    @triton.jit
    def _swiglu_kernel(gu_ptr, g_ptr, out_ptr, n, H, BLOCK: tl.constexpr, BACKWARD: tl.constexpr):
        """Elements idx of the (N, H) activation; gate at [row, j], up at [row, H + j] of (N, 2H).
        BACKWARD: g_ptr is the activation's gradient and out_ptr the (N, 2H) gradient of gate_up."""
        idx = (tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
        live = idx < n
        at_gate = (idx // H) * 2 * H + idx % H
        gate = tl.load(gu_ptr + at_gate, mask=live, other=0.0).to(tl.float32)
        up = tl.load(gu_ptr + at_gate + H, mask=live, other=0.0).to(tl.float32)
        sig = tl.sigmoid(gate)
        if BACKWARD:
            grad = tl.load(g_ptr + idx, mask=live, other=0.0).to(tl.float32)
            tl.store(out_ptr + at_gate, (grad * up * sig * (1 + gate * (1 - sig))).to(out_ptr.dtype.element_ty), mask=live)
            tl.store(out_ptr + at_gate + H, (grad * gate * sig).to(out_ptr.dtype.element_ty), mask=live)
        else:
            tl.store(out_ptr + idx, (gate * sig * up).to(out_ptr.dtype.element_ty), mask=live)


def _launch(gate_up: Tensor, grad: Tensor | None, out: Tensor) -> Tensor:
    hidden = gate_up.shape[-1] // 2
    n = gate_up.numel() // 2
    grid = (triton.cdiv(n, ELEMENTS_PER_PROGRAM),)
    _swiglu_kernel[grid](gate_up, gate_up if grad is None else grad, out, n, hidden, BLOCK=ELEMENTS_PER_PROGRAM,
                         BACKWARD=grad is not None)
    return out


@torch.library.custom_op("onebackbone::swiglu", mutates_args=())
def _swiglu(gate_up: Tensor) -> Tensor:
    if use_triton(gate_up):
        return _launch(gate_up, None, gate_up.new_empty(*gate_up.shape[:-1], gate_up.shape[-1] // 2))
    return _forward_torch(gate_up).to(gate_up.dtype)


@_swiglu.register_fake
def _(gate_up):
    return gate_up.new_empty(*gate_up.shape[:-1], gate_up.shape[-1] // 2)


@torch.library.custom_op("onebackbone::swiglu_backward", mutates_args=())
def _swiglu_backward(grad: Tensor, gate_up: Tensor) -> Tensor:
    if use_triton(gate_up):
        return _launch(gate_up, grad.contiguous(), torch.empty_like(gate_up))
    return _backward_torch(grad, gate_up).to(gate_up.dtype)


@_swiglu_backward.register_fake
def _(grad, gate_up):
    return torch.empty_like(gate_up)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _backward(ctx, grad):
    return _swiglu_backward(grad, ctx.saved_tensors[0])


_swiglu.register_autograd(_backward, setup_context=_setup_context)


def swiglu(gate_up: Tensor) -> Tensor:
    """gate_up (..., 2H) -> silu(gate) * up (..., H), computed in float32, in gate_up's dtype."""
    if gate_up.shape[-1] % 2:
        raise ValueError(f"gate_up's last axis holds gate and up, so it must be even; got {gate_up.shape[-1]}")
    return _swiglu(gate_up.contiguous())
