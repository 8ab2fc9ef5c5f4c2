"""Flow matching: the time draws (logit-normal, uniform, and a uniform share mixed into logit-normal),
the loss as the regression of G on the velocity, and bad settings."""
import pytest
import torch

from core.batch_rng import BatchRNG
from core.config import ConfigError, ModelConfig
from core.model import Model, ModelSpec
from objectives.fm import FlowMatchingObjective, FMConfig

SPEC = ModelSpec(image_channels=1, image_size=4, patch_size=2, num_classes=3)


def draws(n=20_000, **kw):
    return FlowMatchingObjective(FMConfig(**kw), SPEC).sample_t(n, BatchRNG(0, 7, 0))


def test_uniform_share_replaces_that_share_of_logit_normal_draws():
    plain = draws()
    rng, ref = BatchRNG(0, 7, 0), BatchRNG(0, 7, 0)
    default = FlowMatchingObjective(FMConfig(), SPEC).sample_t(20_000, rng)
    assert torch.equal(default, torch.sigmoid(ref.normal64(20_000)))  # the default: plain logit-normal draws
    assert torch.equal(rng.uniform(8), ref.uniform(8))  # and nothing more, so later draws (label dropout) stay the same
    mixed = draws(uniform_share=0.25)
    replaced = mixed != plain
    assert abs(replaced.double().mean().item() - 0.25) < 0.01
    small = 1 / 64  # below a 128-step Euler grid's second-to-last point
    assert (plain < small).double().mean() < 0.001  # logit-normal t almost never goes there
    assert abs((mixed < small).double().mean().item() - 0.25 * small) < 0.002
    everything = draws(uniform_share=1.0)
    assert abs(everything.mean().item() - 0.5) < 0.01 and abs((everything < 0.1).double().mean().item() - 0.1) < 0.01


def test_loss_is_the_regression_of_g_on_the_velocity():
    torch.manual_seed(0)
    model = Model(ModelConfig(size="tiny", n_layer=1, d_model=32, n_head=2), SPEC)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    seen = []
    model.register_forward_hook(lambda mod, args, kw, out: seen.append((kw["x"], kw["noise_t"], kw["noise_s"], out.detach())),
                                with_kwargs=True)
    obj = FlowMatchingObjective(FMConfig(label_dropout=0.0), SPEC)
    x = torch.randn(6, 1, 4, 4) * 0.5
    loss = obj(model, {"images": x, "labels": torch.tensor([0, 1, 2, 0, 1, 2]), "rng": BatchRNG(0, 1, 0)})["loss"]
    x_in, nt, ns, g = seen[0]
    assert torch.equal(ns, torch.zeros_like(ns))  # s = t: the stride input is 0
    t = (nt / 1000).double().view(-1, 1, 1, 1)
    x_t = x_in.double() * 0.5 * torch.sqrt((1 - t) ** 2 + t ** 2)  # undo c_in(t)
    velocity = ((x_t - (1 - t) * x) / t - x) / 0.5  # eps recovered from x_t = (1 - t) x + t eps
    assert float(loss) == pytest.approx(float(((g.double() - velocity) ** 2).mean()), rel=1e-3)


@pytest.mark.parametrize("kw,match", [
    (dict(t_sampling="beta"), "logit_normal or uniform"),
    (dict(uniform_share=1.5), "uniform_share must be in"),
    (dict(t_sampling="uniform", uniform_share=0.1), "every draw is uniform already"),
])
def test_bad_settings_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        FlowMatchingObjective(FMConfig(**kw), SPEC)
