"""The head's cross-entropy with gradients computed in the forward pass equals the plain path."""
import pytest
import torch
import torch.nn.functional as F

from core.config import ModelConfig
from core.linear_cross_entropy import IGNORE_INDEX, linear_cross_entropy
from core.model import Model, ModelSpec


def plain(h, w, targets):
    return F.cross_entropy((h @ w.t()).flatten(0, 1).float(), targets.flatten())


def leaves(seed=0, n_ignored=3):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(2, 7, 16, generator=g, requires_grad=True)
    w = (torch.randn(40, 16, generator=g) * 0.3).requires_grad_()
    targets = torch.randint(0, 40, (2, 7), generator=g)
    targets.view(-1)[:n_ignored] = IGNORE_INDEX
    return h, w, targets


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_loss_and_gradients_match_the_plain_path(scale):
    h, w, targets = leaves()
    (plain(h, w, targets) * scale).backward()
    expected = [h.grad.clone(), w.grad.clone()]
    h.grad = w.grad = None
    loss = linear_cross_entropy(h, w, targets)
    (loss * scale).backward()
    torch.testing.assert_close(loss, plain(h, w, targets))
    for got, want in zip((h.grad, w.grad), expected):
        assert want.abs().sum() > 0
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert h.grad[0, :3].abs().sum() == 0  # ignored rows get no gradient


def test_without_gradients_the_loss_is_the_same():
    h, w, targets = leaves(seed=1, n_ignored=0)
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(h, w, targets), plain(h, w, targets))


def test_model_option_trains_like_the_plain_head():
    """model.fused_cross_entropy: same loss and the same gradient for every parameter (tied embeddings)."""
    spec = ModelSpec(vocab_size=50)
    grads, losses = [], []
    tokens = torch.randint(0, 50, (3, 17), generator=torch.Generator().manual_seed(0))
    for fused in (False, True):
        torch.manual_seed(0)
        m = Model(ModelConfig(size="tiny", n_layer=1, n_head=2, d_model=32, fused_cross_entropy=fused), spec)
        loss = m("text", tokens=tokens[:, :-1], targets=tokens[:, 1:])
        loss.backward()
        losses.append(loss.detach())
        grads.append({k: p.grad for k, p in m.named_parameters()})
    torch.testing.assert_close(losses[1], losses[0])
    for k, g in grads[0].items():
        torch.testing.assert_close(grads[1][k], g, rtol=1e-4, atol=1e-7, msg=k)
