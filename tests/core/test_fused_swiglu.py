"""The SwiGLU operator (model.fused_swiglu): its hand-written backward and its registration."""
import pytest
import torch
import torch.nn.functional as F

from core.fused_swiglu import _backward_torch, _swiglu, swiglu


def test_operator_and_its_backward_match_autograd_of_silu_times_up():
    torch.manual_seed(0)
    gate_up = (torch.randn(3, 5, 16) * 3).requires_grad_()  # wide enough for sigmoid's tails
    grad = torch.randn(3, 5, 8)
    gate, up = gate_up.chunk(2, dim=-1)
    want = F.silu(gate) * up
    (want_grad,) = torch.autograd.grad(want, gate_up, grad)
    got = swiglu(gate_up)
    (got_grad,) = torch.autograd.grad(got, gate_up, grad)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)
    torch.testing.assert_close(_backward_torch(grad, gate_up.detach()), want_grad)
    assert want_grad[..., :8].abs().sum() > 0 and want_grad[..., 8:].abs().sum() > 0


def test_operator_registration_passes_opcheck():
    torch.manual_seed(1)
    torch.library.opcheck(_swiglu, (torch.randn(4, 6, requires_grad=True),))


def test_odd_width_is_refused():
    with pytest.raises(ValueError, match="even"):
        swiglu(torch.randn(2, 5))
