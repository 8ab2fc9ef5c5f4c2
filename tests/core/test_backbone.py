import pytest
import torch

from core.config import ModelConfig
from core.model import Model, ModelSpec


def test_text_is_causal(tiny_text_model):
    m = tiny_text_model()
    t = torch.randint(0, 97, (2, 16))
    t2 = t.clone()
    t2[:, 10:] = torch.randint(0, 97, (2, 6))
    a, b = m("text", tokens=t), m("text", tokens=t2)
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_kv_cache_matches_full_forward(tiny_text_model):
    m = tiny_text_model()
    t = torch.randint(0, 97, (3, 20))
    full = m("text", tokens=t)
    cache = m.new_cache(3, 20)
    parts = [m("text", tokens=t[:, :7], cache=cache)]  # chunked prefill, then one token at a time
    parts.append(m("text", tokens=t[:, 7:12], cache=cache))
    for i in range(12, 20):
        parts.append(m("text", tokens=t[:, i:i + 1], cache=cache))
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.pos == 20


def image_model(**kw):
    torch.manual_seed(0)
    return Model(ModelConfig(size="tiny", n_layer=2, n_head=4, d_model=64, **kw),
                 ModelSpec(image_channels=1, image_size=8, patch_size=2, num_classes=10)).eval()


def test_image_mode_starts_at_zero_output_adaln_zero():
    m = image_model()
    g = m("image", x=torch.randn(2, 1, 8, 8), noise_t=torch.rand(2) * 1000, noise_s=torch.rand(2) * 1000,
          labels=torch.tensor([1, 2]))
    assert g.shape == (2, 1, 8, 8) and torch.count_nonzero(g) == 0


def test_image_mode_is_bidirectional_and_conditioned():
    m = image_model()
    for p in m.parameters():  # leave the zero-initialised start so every path carries signal
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(1, 1, 8, 8)
    args = dict(noise_t=torch.tensor([500.0]), noise_s=torch.tensor([100.0]), labels=torch.tensor([3]))
    base = m("image", x=x, **args)
    x2 = x.clone()
    x2[..., -2:, -2:] += 1.0  # change the last patch only
    changed = m("image", x=x2, **args)
    assert not torch.allclose(base[..., :2, :2], changed[..., :2, :2])  # the first patch sees the last
    for key, value in (("noise_t", torch.tensor([900.0])), ("noise_s", torch.tensor([0.0])), ("labels", torch.tensor([4]))):
        other = m("image", x=x, **{**args, key: value})
        assert not torch.allclose(base, other), key


@pytest.mark.parametrize("option", ["split_projections", "fused_qk_norm_rope", "fused_swiglu"])
def test_speed_options_compute_the_same_function_and_gradients(option):
    """model.split_projections, fused_qk_norm_rope and fused_swiglu only change how the projections,
    norms, rotations and activations are computed: same weights, same outputs, same gradients (image
    mode, so adaLN and every projection carry signal)."""
    fused, split = image_model(), image_model(**{option: True})
    for p in fused.parameters():
        torch.nn.init.normal_(p, std=0.05)
    split.load_state_dict(fused.state_dict())
    x = torch.randn(3, 1, 8, 8)
    args = dict(noise_t=torch.tensor([500.0, 20.0, 900.0]), noise_s=torch.tensor([100.0, 0.0, 450.0]),
                labels=torch.tensor([3, 0, 9]))
    outs = []
    for m in (fused, split):
        out = m("image", x=x, **args)
        out.square().sum().backward()
        outs.append(out)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)
    assert outs[0].abs().sum() > 0
    for (name, a), b in zip(fused.named_parameters(), split.parameters()):
        assert a.grad is not None and a.grad.abs().sum() > 0, name
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_rms_norm_of_bf16_input_uses_the_weight_in_bf16_and_matches_float32():
    """Under autocast q and k reach QK-norm in bf16 while the weight stays float32: the norm casts the
    weight (so rms_norm keeps its fused path and warns of nothing) and agrees with float32 to bf16 rounding."""
    import warnings

    from core.layers import RMSNorm

    norm = RMSNorm(64)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(4, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rms_norm warns when input and weight dtypes differ
        y = norm(x.bfloat16())
    assert y.dtype == torch.bfloat16
    ref = norm(x)
    assert torch.allclose(y.float(), ref, rtol=2 ** -7, atol=1e-3)
