"""QK-norm and rotary embedding in one pass over the fused q/k/v projection (model.fused_qk_norm_rope).

Compiled as separate operations, the two norms, the rotation and, in the backward pass, the
concatenation of the q/k/v gradients each read and write these activations (3.7 ms of a 66 ms
training step at GPT-2-124M shape on an H200, against 0.9 ms for a plain GPT's concatenation). Here
one kernel reads q and k where the projection wrote them and writes them normed and rotated (and v
copied) for attention; the backward kernel writes the q and k gradients, and v's beside them, straight
into one buffer shaped like the projection's output, so no concatenation follows.

A custom operator, opaque to torch.compile: Triton kernels on CUDA, the same algebra in PyTorch
elsewhere (the CPU tests check that algebra against autograd of the unfused layers; the GPU benchmark
checks the kernels against it).
"""
from __future__ import annotations

import torch
from torch import Tensor

from core.rope import apply_rotary
from core.triton_support import tl, triton, use_triton

ROWS_PER_PROGRAM = 64


def fused_qk_norm_rope_supported(head_dim: int) -> bool:
    """The kernels hold half a head in one power-of-two tile."""
    return head_dim >= 4 and head_dim & (head_dim - 1) == 0


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
        """Rows of a program in (b, l, h) order: the outputs' memory order, and the input's."""
        rows = (pid * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
        h = rows % H
        bl = rows // H
        return rows, rows < n_rows, bl // L, bl % L, h

    @triton.jit
    def _qk_norm_rope_fwd(x_ptr, w_ptr, cos_ptr, sin_ptr, out_ptr, s_b, s_l, s_h, c_b, c_l, H, L, n_rows, eps,
                          D: tl.constexpr, BLOCK: tl.constexpr, NORM: tl.constexpr):
        """NORM: normalise and rotate (q, k); else copy (v)."""
        rows, live, b, l, h = _rows(tl.program_id(0), H, L, n_rows, BLOCK)
        half = tl.arange(0, D // 2)
        live2 = live[:, None]
        src = x_ptr + (b * s_b + l * s_l + h * s_h)[:, None] + half[None, :]
        dst = out_ptr + rows[:, None] * D + half[None, :]
        x1 = tl.load(src, mask=live2, other=0.0)
        x2 = tl.load(src + D // 2, mask=live2, other=0.0)
        if NORM:
            x1, x2 = x1.to(tl.float32), x2.to(tl.float32)
            r = tl.rsqrt((tl.sum(x1 * x1, 1) + tl.sum(x2 * x2, 1)) / D + eps)[:, None]
            n1 = x1 * r * tl.load(w_ptr + half).to(tl.float32)[None, :]
            n2 = x2 * r * tl.load(w_ptr + D // 2 + half).to(tl.float32)[None, :]
            rot = (b * c_b + l * c_l)[:, None] + half[None, :]
            c = tl.load(cos_ptr + rot, mask=live2, other=0.0)
            s = tl.load(sin_ptr + rot, mask=live2, other=0.0)
            x1, x2 = n1 * c - n2 * s, n2 * c + n1 * s
        tl.store(dst, x1.to(out_ptr.dtype.element_ty), mask=live2)
        tl.store(dst + D // 2, x2.to(out_ptr.dtype.element_ty), mask=live2)

    @triton.jit
    def _qk_norm_rope_bwd(x_ptr, w_ptr, cos_ptr, sin_ptr, g_ptr, dx_ptr, dw_ptr, s_b, s_l, s_h, c_b, c_l,
                          g_b, g_h, g_l, H, L, n_rows, eps, D: tl.constexpr, BLOCK: tl.constexpr, NORM: tl.constexpr):
        """NORM: the gradient of normalise-and-rotate, and this program's share of dweight; else copy."""
        pid = tl.program_id(0)
        rows, live, b, l, h = _rows(pid, H, L, n_rows, BLOCK)
        half = tl.arange(0, D // 2)
        live2 = live[:, None]
        at_x = (b * s_b + l * s_l + h * s_h)[:, None] + half[None, :]
        at_g = g_ptr + (b * g_b + h * g_h + l * g_l)[:, None] + half[None, :]
        g1 = tl.load(at_g, mask=live2, other=0.0)
        g2 = tl.load(at_g + D // 2, mask=live2, other=0.0)
        if NORM:
            x1 = tl.load(x_ptr + at_x, mask=live2, other=0.0).to(tl.float32)
            x2 = tl.load(x_ptr + at_x + D // 2, mask=live2, other=0.0).to(tl.float32)
            r = tl.rsqrt((tl.sum(x1 * x1, 1) + tl.sum(x2 * x2, 1)) / D + eps)[:, None]
            xh1, xh2 = x1 * r, x2 * r
            g1, g2 = g1.to(tl.float32), g2.to(tl.float32)
            rot = (b * c_b + l * c_l)[:, None] + half[None, :]
            c = tl.load(cos_ptr + rot, mask=live2, other=0.0)
            s = tl.load(sin_ptr + rot, mask=live2, other=0.0)
            dn1 = g1 * c + g2 * s
            dn2 = g2 * c - g1 * s
            tl.store(dw_ptr + pid * D + half, tl.sum(dn1 * xh1, 0))
            tl.store(dw_ptr + pid * D + D // 2 + half, tl.sum(dn2 * xh2, 0))
            dxh1 = dn1 * tl.load(w_ptr + half).to(tl.float32)[None, :]
            dxh2 = dn2 * tl.load(w_ptr + D // 2 + half).to(tl.float32)[None, :]
            m = ((tl.sum(dxh1 * xh1, 1) + tl.sum(dxh2 * xh2, 1)) / D)[:, None]
            g1, g2 = r * (dxh1 - xh1 * m), r * (dxh2 - xh2 * m)
        tl.store(dx_ptr + at_x, g1.to(dx_ptr.dtype.element_ty), mask=live2)
        tl.store(dx_ptr + at_x + D // 2, g2.to(dx_ptr.dtype.element_ty), mask=live2)


def _rotation_strides(cos: Tensor) -> tuple[int, int]:
    """cos (B or 1, L, 1, D/2), contiguous (qk_norm_rope makes it so): strides along batch (0 when
    broadcast) and position."""
    return (cos.stride(0) if cos.shape[0] > 1 else 0), cos.stride(1)


def _grid(n_rows: int) -> tuple[int]:
    return (triton.cdiv(n_rows, ROWS_PER_PROGRAM),)


def attention_layout(b: int, l: int, h: int, d: int, like: Tensor) -> Tensor:
    """An empty (B, H, L, D) tensor stored as (B, L, H, D): attention then writes its output in the
    order the output projection reads, and no transposing copy follows."""
    return like.new_empty(b, l, h, d).transpose(1, 2)


def _forward_triton(x: Tensor, weight: Tensor | None, cos: Tensor, sin: Tensor, eps: float) -> Tensor:
    """x (B, L, H, D), a strided view with unit last stride -> (B, H, L, D) in attention_layout, x's
    dtype; weight None: a copy (v)."""
    b, l, h, d = x.shape
    out = attention_layout(b, l, h, d, x)
    n_rows = b * h * l
    _qk_norm_rope_fwd[_grid(n_rows)](x, x if weight is None else weight, cos, sin, out, x.stride(0), x.stride(1),
                                     x.stride(2), *_rotation_strides(cos), h, l, n_rows, eps, D=d,
                                     BLOCK=ROWS_PER_PROGRAM, NORM=weight is not None)
    return out


def _backward_triton(x: Tensor, weight: Tensor | None, cos: Tensor, sin: Tensor, eps: float, grad: Tensor,
                     dx: Tensor) -> Tensor | None:
    """Writes x's gradient into dx (x's shape and strides); returns weight's gradient (None without
    weight: dx is grad, copied). grad (B, H, L, D), any strides with a unit last one."""
    b, l, h, d = x.shape
    n_rows = b * h * l
    grid = _grid(n_rows)
    grad = grad if grad.stride(-1) == 1 else grad.contiguous()
    partial = torch.empty(grid[0] if weight is not None else 1, d, device=x.device, dtype=torch.float32)
    _qk_norm_rope_bwd[grid](x, x if weight is None else weight, cos, sin, grad, dx, partial, x.stride(0),
                            x.stride(1), x.stride(2), *_rotation_strides(cos), grad.stride(0), grad.stride(1),
                            grad.stride(2), h, l, n_rows, eps, D=d, BLOCK=ROWS_PER_PROGRAM, NORM=weight is not None)
    return partial.sum(0) if weight is not None else None


# --- the operator ------------------------------------------------------------------------------------
@torch.library.custom_op("onebackbone::qk_norm_rope", mutates_args=())
def _qk_norm_rope(qkv: Tensor, q_weight: Tensor, k_weight: Tensor, cos: Tensor, sin: Tensor,
                  eps: float) -> tuple[Tensor, Tensor, Tensor]:
    b, l, _, h, d = qkv.shape
    outs = []
    for part, weight in ((0, q_weight), (1, k_weight), (2, None)):
        x = qkv[:, :, part]
        if use_triton(qkv):
            outs.append(_forward_triton(x, weight, cos, sin, eps))
        else:  # a copy for v too: an operator's outputs may not alias its inputs
            y = x if weight is None else _forward_torch(x, weight, cos, sin, eps)
            outs.append(attention_layout(b, l, h, d, qkv).copy_(y.transpose(1, 2)))
    return tuple(outs)


@_qk_norm_rope.register_fake
def _(qkv, q_weight, k_weight, cos, sin, eps):
    b, l, _, h, d = qkv.shape
    return tuple(attention_layout(b, l, h, d, qkv) for _ in range(3))


@torch.library.custom_op("onebackbone::qk_norm_rope_backward", mutates_args=())
def _qk_norm_rope_backward(dq: Tensor, dk: Tensor, dv: Tensor, qkv: Tensor, q_weight: Tensor, k_weight: Tensor,
                           cos: Tensor, sin: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    d_qkv = torch.empty_like(qkv, memory_format=torch.contiguous_format)
    dweights = []  # q's and k's; v has no weight
    for part, weight, grad in ((0, q_weight, dq), (1, k_weight, dk), (2, None, dv)):
        x = qkv[:, :, part]
        if use_triton(qkv):
            dweights.append(_backward_triton(x, weight, cos, sin, eps, grad, d_qkv[:, :, part]))
        elif weight is None:
            d_qkv[:, :, part] = grad.transpose(1, 2)
        else:
            d_qkv[:, :, part], dw = _backward_torch(x, weight, cos, sin, eps, grad.transpose(1, 2))
            dweights.append(dw)
    return d_qkv, dweights[0].to(q_weight.dtype), dweights[1].to(k_weight.dtype)


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
    q, k, v (B, H, L, D), stored as (B, L, H, D), in qkv's dtype: q and k RMS-normed (weights q_weight,
    k_weight, computed in float32) then rotated, v as it was."""
    if qkv.dim() != 5 or qkv.shape[2] != 3:
        raise ValueError(f"qkv must be (B, L, 3, H, D), got {tuple(qkv.shape)}")
    if not fused_qk_norm_rope_supported(qkv.shape[-1]):
        raise ValueError(f"model.fused_qk_norm_rope needs a power-of-two head dimension, got {qkv.shape[-1]}")
    return _qk_norm_rope(qkv.contiguous(), q_weight, k_weight, cos.contiguous(), sin.contiguous(), eps)
