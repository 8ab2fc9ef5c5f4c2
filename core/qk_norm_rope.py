"""QK-norm and rotary embedding in one pass over the fused q/k/v projection (model.fused_qk_norm_rope).

Compiled as separate operations, the two norms, the rotation and, in the backward pass, the
concatenation of the q/k/v gradients each read and write these activations (3.7 ms of a 66 ms
training step at GPT-2-124M shape on an H200, against 0.9 ms for a plain GPT's concatenation). Here
one kernel reads q and k where the projection wrote them and writes them normed and rotated, laid out
(B, H, L, D) for attention; the backward kernel writes the q and k gradients, and v's beside them,
straight into one buffer shaped like the projection's output, so no concatenation follows.

A custom operator, opaque to torch.compile: Triton kernels on CUDA, the same algebra in PyTorch
elsewhere (the CPU tests check that algebra against autograd of the unfused layers; the GPU benchmark
checks the kernels against it).
"""
from __future__ import annotations

import torch
from torch import Tensor

from core.rope import apply_rotary

try:  # Triton comes with CUDA builds of torch; CPU builds use the PyTorch path below
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the torch build
    triton = None

ROWS_PER_PROGRAM = 64


def fused_qk_norm_rope_supported(head_dim: int) -> bool:
    """The kernels hold half a head in one power-of-two tile."""
    return head_dim >= 4 and head_dim & (head_dim - 1) == 0


def _use_triton(t: Tensor) -> bool:
    return triton is not None and t.is_cuda


# --- the algebra in PyTorch ------------------------------------------------------------------------
def _norm(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """float32 x -> (x * r, r) with r = 1 / rms(x) over the last axis."""
    r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return x * r, r


def _forward_torch(x: Tensor, weight: Tensor, cos: Tensor, sin: Tensor, eps: float) -> Tensor:
    """x (B, L, H, D) -> rotate(rmsnorm(x) * weight), float32, (B, L, H, D)."""
    xh, _ = _norm(x.float(), eps)
    return apply_rotary(xh * weight.float(), cos, sin)


def _backward_torch(x: Tensor, weight: Tensor, cos: Tensor, sin: Tensor, eps: float, grad: Tensor):
    """Gradients of ``_forward_torch`` for x (B, L, H, D) and weight, given grad (B, L, H, D)."""
    xh, r = _norm(x.float(), eps)
    dn = apply_rotary(grad.float(), cos, -sin)  # a rotation's transpose turns by the opposite angle
    dweight = (dn * xh).flatten(0, -2).sum(0)
    dxh = dn * weight.float()
    dx = r * (dxh - xh * (dxh * xh).mean(-1, keepdim=True))
    return dx, dweight


# --- the kernels -----------------------------------------------------------------------------------
if triton is not None:

    @triton.jit
    def _rows(pid, H, L, n_rows, BLOCK: tl.constexpr):
        """Rows of a program in (b, h, l) order, the order of the (B, H, L, D) outputs."""
        rows = (pid * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
        l = rows % L
        bh = rows // L
        return rows, rows < n_rows, bh // H, bh % H, l

    @triton.jit
    def _qk_norm_rope_fwd(x_ptr, w_ptr, cos_ptr, sin_ptr, out_ptr, s_b, s_l, s_h, c_b, c_l, H, L, n_rows, eps,
                          D: tl.constexpr, BLOCK: tl.constexpr):
        rows, live, b, h, l = _rows(tl.program_id(0), H, L, n_rows, BLOCK)
        half = tl.arange(0, D // 2)
        live2 = live[:, None]
        src = x_ptr + (b * s_b + l * s_l + h * s_h)[:, None] + half[None, :]
        x1 = tl.load(src, mask=live2, other=0.0).to(tl.float32)
        x2 = tl.load(src + D // 2, mask=live2, other=0.0).to(tl.float32)
        r = tl.rsqrt((tl.sum(x1 * x1, 1) + tl.sum(x2 * x2, 1)) / D + eps)[:, None]
        n1 = x1 * r * tl.load(w_ptr + half).to(tl.float32)[None, :]
        n2 = x2 * r * tl.load(w_ptr + D // 2 + half).to(tl.float32)[None, :]
        rot = (b * c_b + l * c_l)[:, None] + half[None, :]
        c = tl.load(cos_ptr + rot, mask=live2, other=0.0)
        s = tl.load(sin_ptr + rot, mask=live2, other=0.0)
        dst = out_ptr + rows[:, None] * D + half[None, :]
        tl.store(dst, (n1 * c - n2 * s).to(out_ptr.dtype.element_ty), mask=live2)
        tl.store(dst + D // 2, (n2 * c + n1 * s).to(out_ptr.dtype.element_ty), mask=live2)

    @triton.jit
    def _qk_norm_rope_bwd(x_ptr, w_ptr, cos_ptr, sin_ptr, g_ptr, dx_ptr, dw_ptr, s_b, s_l, s_h, c_b, c_l,
                          g_b, g_h, g_l, H, L, n_rows, eps, D: tl.constexpr, BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        rows, live, b, h, l = _rows(pid, H, L, n_rows, BLOCK)
        half = tl.arange(0, D // 2)
        live2 = live[:, None]
        at_x = (b * s_b + l * s_l + h * s_h)[:, None] + half[None, :]
        x1 = tl.load(x_ptr + at_x, mask=live2, other=0.0).to(tl.float32)
        x2 = tl.load(x_ptr + at_x + D // 2, mask=live2, other=0.0).to(tl.float32)
        r = tl.rsqrt((tl.sum(x1 * x1, 1) + tl.sum(x2 * x2, 1)) / D + eps)[:, None]
        xh1, xh2 = x1 * r, x2 * r
        at_g = g_ptr + (b * g_b + h * g_h + l * g_l)[:, None] + half[None, :]
        g1 = tl.load(at_g, mask=live2, other=0.0).to(tl.float32)
        g2 = tl.load(at_g + D // 2, mask=live2, other=0.0).to(tl.float32)
        rot = (b * c_b + l * c_l)[:, None] + half[None, :]
        c = tl.load(cos_ptr + rot, mask=live2, other=0.0)
        s = tl.load(sin_ptr + rot, mask=live2, other=0.0)
        dn1 = g1 * c + g2 * s
        dn2 = g2 * c - g1 * s
        tl.store(dw_ptr + pid * D + half, tl.sum(dn1 * xh1, 0))  # this program's share of dweight
        tl.store(dw_ptr + pid * D + D // 2 + half, tl.sum(dn2 * xh2, 0))
        dxh1 = dn1 * tl.load(w_ptr + half).to(tl.float32)[None, :]
        dxh2 = dn2 * tl.load(w_ptr + D // 2 + half).to(tl.float32)[None, :]
        m = ((tl.sum(dxh1 * xh1, 1) + tl.sum(dxh2 * xh2, 1)) / D)[:, None]
        tl.store(dx_ptr + at_x, (r * (dxh1 - xh1 * m)).to(dx_ptr.dtype.element_ty), mask=live2)
        tl.store(dx_ptr + at_x + D // 2, (r * (dxh2 - xh2 * m)).to(dx_ptr.dtype.element_ty), mask=live2)


def _rotation_strides(cos: Tensor) -> tuple[int, int]:
    """cos (B or 1, L, 1, D/2): strides along batch (0 when broadcast) and position."""
    if cos.stride(-1) != 1:
        raise ValueError("cos/sin must be contiguous along their last axis")
    return (cos.stride(0) if cos.shape[0] > 1 else 0), cos.stride(1)


def _grid(n_rows: int) -> tuple[int]:
    return (triton.cdiv(n_rows, ROWS_PER_PROGRAM),)


def _forward_triton(x: Tensor, weight: Tensor, cos: Tensor, sin: Tensor, eps: float) -> Tensor:
    """x (B, L, H, D), a strided view with unit last stride -> (B, H, L, D) contiguous, x's dtype."""
    b, l, h, d = x.shape
    out = torch.empty(b, h, l, d, device=x.device, dtype=x.dtype)
    n_rows = b * h * l
    _qk_norm_rope_fwd[_grid(n_rows)](x, weight, cos, sin, out, x.stride(0), x.stride(1), x.stride(2),
                                     *_rotation_strides(cos), h, l, n_rows, eps, D=d, BLOCK=ROWS_PER_PROGRAM)
    return out


def _backward_triton(x: Tensor, weight: Tensor, cos: Tensor, sin: Tensor, eps: float, grad: Tensor,
                     dx: Tensor) -> Tensor:
    """Writes x's gradient into dx (x's shape and strides); returns weight's gradient.
    grad (B, H, L, D), any strides with a unit last one."""
    b, l, h, d = x.shape
    n_rows = b * h * l
    grid = _grid(n_rows)
    grad = grad if grad.stride(-1) == 1 else grad.contiguous()
    partial = torch.empty(grid[0], d, device=x.device, dtype=torch.float32)
    _qk_norm_rope_bwd[grid](x, weight, cos, sin, grad, dx, partial, x.stride(0), x.stride(1), x.stride(2),
                            *_rotation_strides(cos), grad.stride(0), grad.stride(1), grad.stride(2), h, l,
                            n_rows, eps, D=d, BLOCK=ROWS_PER_PROGRAM)
    return partial.sum(0)


# --- the operator ------------------------------------------------------------------------------------
@torch.library.custom_op("onebackbone::qk_norm_rope", mutates_args=())
def _qk_norm_rope(qkv: Tensor, q_weight: Tensor, k_weight: Tensor, cos: Tensor, sin: Tensor,
                  eps: float) -> tuple[Tensor, Tensor, Tensor]:
    outs = []
    for part, weight in ((0, q_weight), (1, k_weight)):
        x = qkv[:, :, part]
        if _use_triton(qkv):
            outs.append(_forward_triton(x, weight, cos, sin, eps))
        else:
            outs.append(_forward_torch(x, weight, cos, sin, eps).to(qkv.dtype).transpose(1, 2).contiguous())
    # a copy always: for one token of one sequence the transposed view is contiguous already, and an
    # operator's outputs may not alias its inputs
    outs.append(qkv[:, :, 2].transpose(1, 2).clone(memory_format=torch.contiguous_format))
    return tuple(outs)


@_qk_norm_rope.register_fake
def _(qkv, q_weight, k_weight, cos, sin, eps):
    b, l, _, h, d = qkv.shape
    return tuple(qkv.new_empty(b, h, l, d) for _ in range(3))


@torch.library.custom_op("onebackbone::qk_norm_rope_backward", mutates_args=())
def _qk_norm_rope_backward(dq: Tensor, dk: Tensor, dv: Tensor, qkv: Tensor, q_weight: Tensor, k_weight: Tensor,
                           cos: Tensor, sin: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    d_qkv = torch.empty_like(qkv, memory_format=torch.contiguous_format)
    dweights = []
    for part, weight, grad in ((0, q_weight, dq), (1, k_weight, dk)):
        x = qkv[:, :, part]
        if _use_triton(qkv):
            dw = _backward_triton(x, weight, cos, sin, eps, grad, d_qkv[:, :, part])
        else:
            dx, dw = _backward_torch(x, weight, cos, sin, eps, grad.transpose(1, 2))
            d_qkv[:, :, part] = dx
        dweights.append(dw.to(weight.dtype))
    d_qkv[:, :, 2] = dv.transpose(1, 2)
    return d_qkv, dweights[0], dweights[1]


@_qk_norm_rope_backward.register_fake
def _(dq, dk, dv, qkv, q_weight, k_weight, cos, sin, eps):
    return torch.empty_like(qkv, memory_format=torch.contiguous_format), torch.empty_like(q_weight), torch.empty_like(k_weight)


def _setup_context(ctx, inputs, output):
    qkv, q_weight, k_weight, cos, sin, eps = inputs
    ctx.save_for_backward(qkv, q_weight, k_weight, cos, sin)
    ctx.eps = eps


def _backward(ctx, dq, dk, dv):
    qkv = ctx.saved_tensors[0]
    b, l, _, h, d = qkv.shape
    dq, dk, dv = (g if g is not None else qkv.new_zeros(b, h, l, d) for g in (dq, dk, dv))
    d_qkv, dwq, dwk = _qk_norm_rope_backward(dq, dk, dv, *ctx.saved_tensors, ctx.eps)
    return d_qkv, dwq, dwk, None, None, None


_qk_norm_rope.register_autograd(_backward, setup_context=_setup_context)


def qk_norm_rope(qkv: Tensor, q_weight: Tensor, k_weight: Tensor, cos: Tensor, sin: Tensor,
                 eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """qkv (B, L, 3, H, D); cos, sin (B or 1, L, 1, D/2) float32 ->
    q, k, v (B, H, L, D) contiguous in qkv's dtype: q and k RMS-normed (weights q_weight, k_weight,
    computed in float32) then rotated, v as it was."""
    if qkv.dim() != 5 or qkv.shape[2] != 3:
        raise ValueError(f"qkv must be (B, L, 3, H, D), got {tuple(qkv.shape)}")
    if not fused_qk_norm_rope_supported(qkv.shape[-1]):
        raise ValueError(f"model.fused_qk_norm_rope needs a power-of-two head dimension, got {qkv.shape[-1]}")
    return _qk_norm_rope(qkv.contiguous(), q_weight, k_weight, cos.contiguous(), sin.contiguous(), eps)
