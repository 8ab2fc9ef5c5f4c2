import pytest
import torch

from core.config import ModelConfig
from core.model import Model, ModelSpec
from objectives.fm import FlowMatchingObjective, FMConfig
from objectives.imm import IMMConfig, IMMObjective
from samplers import get_sampler
from samplers.image_common import SamplerMismatch, check_compatible
from samplers.imm import imm_times

SPEC = ModelSpec(image_channels=1, image_size=4, patch_size=2, num_classes=3)


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = Model(ModelConfig(size="tiny", n_layer=1, d_model=32, n_head=2), SPEC).eval()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return m


def count_calls(m):
    calls = []
    m.register_forward_pre_hook(lambda mod, a, kw: calls.append(kw["x"].shape[0]), with_kwargs=True)
    return calls


@pytest.mark.parametrize("name,objective,steps,expected", [
    ("imm_pushforward", "imm", 4, 4), ("imm_restart", "imm", 8, 8), ("imm_pushforward", "imm", 1, 1),
    ("euler", "fm", 16, 16), ("heun", "fm", 8, 15), ("heun", "fm", 1, 1),
])
@pytest.mark.parametrize("guidance", [1.0, 1.5])
def test_nfe_is_reported_and_true(model, name, objective, steps, expected, guidance):
    obj = IMMObjective(IMMConfig(), SPEC) if objective == "imm" else FlowMatchingObjective(FMConfig(), SPEC)
    calls = count_calls(model)
    labels = torch.tensor([0, 1, 2, 0])
    res = get_sampler(name)(model, obj, labels, 4, steps, guidance, generator=torch.Generator().manual_seed(0))
    per_eval = 2 if guidance != 1.0 else 1
    assert res.nfe == expected * per_eval
    assert sum(calls) == 4 * res.nfe  # network evaluations actually run, per image
    assert res.images.shape == (4, 1, 4, 4) and torch.isfinite(res.images).all()


@pytest.mark.parametrize("name,objective", [("imm_pushforward", "imm"), ("imm_restart", "imm"), ("euler", "fm"), ("heun", "fm")])
def test_deterministic_under_a_seed(model, name, objective):
    obj = IMMObjective(IMMConfig(), SPEC) if objective == "imm" else FlowMatchingObjective(FMConfig(), SPEC)
    run = lambda seed: get_sampler(name)(model, obj, torch.tensor([0, 1]), 2, 4, 1.5, generator=torch.Generator().manual_seed(seed)).images
    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def test_imm_time_grids():
    assert imm_times(1, 0.994, 0.006, "ot_fm").tolist() == [0.994, 0.006]
    two = imm_times(2, 0.994, 0.006, "ot_fm")
    assert abs(float(two[1]) - 1.4 / 2.4) < 1e-12 and two.dtype == torch.float64
    four = imm_times(4, 0.994, 0.006, "ot_fm")
    assert torch.allclose(four[:-1] - four[1:], torch.full((4,), (0.994 - 0.006) / 4, dtype=torch.float64))
    edm = imm_times(8, 0.994, 0.006, "ot_fm", "edm")
    assert (edm[:-1] > edm[1:]).all() and abs(float(edm[0]) - 0.994) < 1e-12 and abs(float(edm[-1]) - 0.006) < 1e-12


@pytest.mark.parametrize("name", ["imm_pushforward", "imm_restart"])
def test_explicit_time_grid_is_the_grid_the_sampler_runs(model, name):
    obj = IMMObjective(IMMConfig(), SPEC)
    run = lambda steps=4, **kw: get_sampler(name)(model, obj, torch.tensor([0, 1]), 2, steps, 1.0,
                                                  generator=torch.Generator().manual_seed(0), **kw)
    uniform = run().images
    assert torch.equal(run(times="0.994/0.747/0.5/0.253/0.006").images, uniform)
    assert torch.equal(run(times=[0.994, 0.747, 0.5, 0.253, 0.006]).images, uniform)
    assert not torch.equal(run(times="0.994/0.7/0.45/0.2/0.006").images, uniform)
    assert run(5, times="0.994/0.747/0.5/0.253/0.13/0.006").nfe == 5  # one jump split in two
    for bad, match in (("0.994/0.5/0.006", "4 steps need 5 times"), ("0.994/0.5/0.6/0.2/0.006", "decrease strictly"),
                       ("1.2/0.7/0.45/0.2/0.006", "lie in"), ("0.994/a/0.45/0.2/0.006", "must be numbers")):
        with pytest.raises(ValueError, match=match):
            run(times=bad)


def test_sampler_objective_mismatch_is_refused():
    with pytest.raises(SamplerMismatch, match="trained with 'fm'"):
        check_compatible("imm_pushforward", get_sampler("imm_pushforward"), "fm")
    with pytest.raises(SamplerMismatch, match="trained with 'imm'"):
        check_compatible("heun", get_sampler("heun"), "imm")
    check_compatible("euler", get_sampler("euler"), "fm")


@pytest.mark.parametrize("name", ["imm_pushforward", "imm_restart"])
def test_final_clean_returns_the_estimate_implied_by_the_last_jump(model, name):
    """final_clean=False returns x at eps_t (the paper); True returns the x that the last jump's DDIM
    interpolation implies, which differs from it by that jump's share of the noise and costs no NFE."""
    from objectives.paths import ddim_clean

    labels, steps = torch.tensor([0, 1, 2]), 2
    run = lambda final_clean: get_sampler(name)(model, IMMObjective(IMMConfig(final_clean=final_clean), SPEC), labels, 3,
                                                steps, 1.0, generator=torch.Generator().manual_seed(0))
    raw, clean = run(False), run(True)
    assert raw.nfe == clean.nfe == steps
    cfg = IMMConfig()
    t1 = imm_times(steps, cfg.T, cfg.eps_t, cfg.schedule)[-2]
    # the input of the last jump: for pushforward the first jump's output, for restart the re-noised estimate
    g = torch.Generator().manual_seed(0)
    obj = IMMObjective(IMMConfig(final_clean=False), SPEC)
    one = lambda v: torch.full((3,), float(v), dtype=torch.float64)
    if name == "imm_pushforward":
        from samplers.image_common import model_noise
        x1 = obj.f(model, model_noise(model, 3, cfg.sigma_d, g), one(t1), one(cfg.T), labels)
        torch.testing.assert_close(clean.images, ddim_clean(raw.images, x1, one(t1), one(cfg.eps_t), cfg.schedule))
    assert not torch.allclose(raw.images, clean.images)
