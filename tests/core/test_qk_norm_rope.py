"""The fused QK-norm + RoPE operator (model.fused_qk_norm_rope): its hand-written backward against
autograd, its registration as an operator, and the model options around it."""
import pytest
import torch

from core.config import ModelConfig
from core.model import Model, ModelSpec
from core.qk_norm_rope import _backward_torch, _forward_torch, _qk_norm_rope, qk_norm_rope
from core.rope import apply_rotary
from samplers.ar import generate


def rotation(batch: int, length: int, half: int):
    angles = torch.randn(batch, length, 1, half) * 3
    return angles.cos(), angles.sin()


def test_backward_algebra_matches_autograd():
    """The explicit gradients (which the CUDA kernel computes too) against autograd of the forward."""
    torch.manual_seed(0)
    x = torch.randn(2, 9, 3, 16, requires_grad=True)
    w = (torch.rand(16) + 0.5).requires_grad_()
    cos, sin = rotation(2, 9, 8)  # a rotation per batch row, as mixed sequences have
    grad = torch.randn(2, 9, 3, 16)
    want_x, want_w = torch.autograd.grad(_forward_torch(x, w, cos, sin, 1e-6), (x, w), grad)
    got_x, got_w = _backward_torch(x.detach(), w.detach(), cos, sin, 1e-6, grad)
    torch.testing.assert_close(got_x, want_x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_w, want_w, rtol=1e-5, atol=1e-5)
    assert want_w.abs().sum() > 0


def test_operator_equals_rmsnorm_then_rotary_with_gradients():
    torch.manual_seed(1)
    b, l, h, d = 3, 11, 2, 16
    qkv = torch.randn(b, l, 3, h, d, requires_grad=True)
    wq, wk = ((torch.rand(d) + 0.5).requires_grad_() for _ in range(2))
    cos, sin = rotation(1, l, d // 2)  # one rotation broadcast over the batch, as text and images have
    got = qk_norm_rope(qkv, wq, wk, cos, sin, 1e-6)
    q, k, v = qkv.unbind(2)
    norm = torch.nn.functional.rms_norm
    want = (apply_rotary(norm(q, (d,), wq, 1e-6), cos, sin).transpose(1, 2),
            apply_rotary(norm(k, (d,), wk, 1e-6), cos, sin).transpose(1, 2), v.transpose(1, 2))
    cotangents = [torch.randn(b, h, l, d) for _ in range(3)]
    grads_got = torch.autograd.grad(got, (qkv, wq, wk), cotangents)
    grads_want = torch.autograd.grad(want, (qkv, wq, wk), cotangents)
    for g, w in zip(got, want):
        assert g.transpose(1, 2).is_contiguous()  # stored as (B, L, H, D)
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
    for g, w in zip(grads_got, grads_want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_operator_registration_passes_opcheck():
    """Schema, fake (meta) kernels for torch.compile, and the autograd registration."""
    torch.manual_seed(2)
    qkv = torch.randn(2, 5, 3, 2, 8, requires_grad=True)
    wq, wk = (torch.rand(8, requires_grad=True) for _ in range(2))
    cos, sin = rotation(1, 5, 4)
    torch.library.opcheck(_qk_norm_rope, (qkv, wq, wk, cos, sin, 1e-6))


def tiny_text(**kw):
    torch.manual_seed(0)
    m = Model(ModelConfig(size="tiny", n_layer=2, n_head=2, d_model=32, **kw), ModelSpec(vocab_size=61)).eval()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return m


def test_greedy_generation_with_the_fused_operator_and_cache_matches_without():
    fused, plain = tiny_text(fused_qk_norm_rope=True), tiny_text()
    fused.load_state_dict(plain.state_dict())
    prompts = [[1, 2, 3], [5, 8, 13, 21, 34, 55, 4]]
    out = generate(fused, prompts, 12, temperature=0, use_cache=True)
    assert out == generate(plain, prompts, 12, temperature=0, use_cache=False)
    assert len(set(map(tuple, out))) > 1
    one = [[7, 7, 2]]  # batch 1: one token of one sequence per decoding step
    assert generate(fused, one, 12, temperature=0, use_cache=True) == generate(plain, one, 12, temperature=0, use_cache=False)


@pytest.mark.parametrize("kw", [dict(qk_norm=False), dict(d_model=48, n_head=2)])
def test_fused_operator_refuses_what_it_cannot_compute(kw):
    with pytest.raises(ValueError, match="fused_qk_norm_rope"):
        Model(ModelConfig(size="tiny", n_layer=1, **{"n_head": 2, "d_model": 32, **kw}, fused_qk_norm_rope=True),
              ModelSpec(vocab_size=61))
