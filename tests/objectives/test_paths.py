import math

import pytest
import torch

from objectives.paths import (Parameterization, alpha_sigma, ddim, ddim_clean, eta, eta_inverse, imm_weight, network_f, skip_out)


@pytest.mark.parametrize("schedule", ["ot_fm", "cosine"])
def test_ddim_boundaries_and_path_consistency(schedule):
    torch.manual_seed(0)
    x, eps = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    t = torch.tensor([0.9, 0.5, 0.3, 0.99, 0.1], dtype=torch.float64)
    a_t, s_t = alpha_sigma(t, schedule)
    x_t = a_t[:, None] * x + s_t[:, None] * eps
    torch.testing.assert_close(ddim(x_t, x, t, t, schedule), x_t)  # t -> t: unchanged
    torch.testing.assert_close(ddim(x_t, x, t, torch.zeros_like(t), schedule), x)  # t -> 0: the data
    s = t * 0.4
    a_s, s_s = alpha_sigma(s, schedule)
    torch.testing.assert_close(ddim(x_t, x, t, s, schedule), a_s[:, None] * x + s_s[:, None] * eps)  # same eps
    # ddim_clean solves the same interpolation for x: it recovers the data from any landing point
    torch.testing.assert_close(ddim_clean(ddim(x_t, x, t, s, schedule), x_t, t, s, schedule), x)
    torch.testing.assert_close(ddim_clean(x, x_t, t, torch.zeros_like(t), schedule), x)  # landing at 0 is x


@pytest.mark.parametrize("schedule", ["ot_fm", "cosine"])
def test_eta_inverse_and_log_snr(schedule):
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    torch.testing.assert_close(eta_inverse(eta(t, schedule), schedule), t)
    if schedule == "ot_fm":
        assert abs(float(eta_inverse(1.4, schedule)) - 0.58333333) < 1e-6


def reference_weight(t: float, schedule: str, a: float, b: float) -> float:
    if schedule == "ot_fm":
        al, si, dl = 1 - t, t, 2 / (t * (1 - t))
    else:
        al, si, dl = math.cos(math.pi * t / 2), math.sin(math.pi * t / 2), 2 * math.pi / math.sin(math.pi * t)
    lam = 2 * math.log(al / si)
    return 0.5 / (1 + math.exp(-(b - lam))) * dl * al ** a / (al ** 2 + si ** 2)


@pytest.mark.parametrize("schedule", ["ot_fm", "cosine"])
@pytest.mark.parametrize("a,b", [(1, 4), (2, 5)])
def test_weighting_matches_float64_reference(schedule, a, b):
    for t in (0.006, 0.1, 0.37, 0.5, 0.8, 0.994):
        got = float(imm_weight(torch.tensor(t, dtype=torch.float64), schedule, a, b))
        assert got == pytest.approx(reference_weight(t, schedule, a, b), rel=1e-12)


def test_c_out_is_the_coefficient_of_f():
    _, c_out = skip_out(torch.tensor(0.2, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64), "ot_fm", 0.5, "simple_edm")
    # OT-FM: alpha_s sigma_t - sigma_s alpha_t = t - s
    assert float(c_out) == pytest.approx(-0.5 * 0.5 / math.sqrt(0.3 ** 2 + 0.7 ** 2))


@pytest.mark.parametrize("output,schedule", [("euler_fm", "ot_fm"), ("simple_edm", "ot_fm"), ("simple_edm", "cosine")])
def test_f_at_s_equals_t_is_identity(output, schedule):
    from core.config import ModelConfig
    from core.model import Model, ModelSpec

    torch.manual_seed(0)
    m = Model(ModelConfig(size="tiny", n_layer=1, d_model=32, n_head=2), ModelSpec(image_channels=1, image_size=4, patch_size=2, num_classes=3))
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.3)  # G is far from zero
    param = Parameterization(schedule, output, "identity", 0.5)
    x = torch.randn(4, 1, 4, 4)
    t = torch.tensor([0.9, 0.5, 0.2, 0.6], dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(network_f(m, param, x, t, t, labels), x)
    assert not torch.allclose(network_f(m, param, x, t * 0.5, t, labels), x)
