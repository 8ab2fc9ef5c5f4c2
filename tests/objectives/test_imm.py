import pytest
import torch

from core.config import ConfigError, ModelConfig
from core.model import Model, ModelSpec
from objectives.imm import IMMConfig, IMMObjective, group_mmd, k_at, r_from, sample_times, validate
from objectives.paths import eta, eta_inverse, pushforward_grid

SPEC = ModelSpec(image_channels=1, image_size=4, patch_size=2, num_classes=3)


def model():
    torch.manual_seed(0)
    m = Model(ModelConfig(size="tiny", n_layer=1, d_model=32, n_head=2), SPEC)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return m


def test_r_lies_between_s_and_t_and_moves_towards_t_as_k_grows():
    g = torch.Generator().manual_seed(0)
    prev = None
    for k in (4, 8, 12, 16):
        cfg = IMMConfig(k=k, min_gap=0.0)
        s, r, t = sample_times(4000, cfg, torch.Generator().manual_seed(1))
        assert s.dtype == torch.float64 and (s <= r).all() and (r <= t).all()
        assert (s >= cfg.eps_t).all() and (t <= cfg.T).all()
        if prev is not None:
            assert (r >= prev - 1e-15).all()  # a smaller decrement keeps r closer to t
        prev = r
    del g
    cfg = IMMConfig(k=20, min_gap=1e-4)
    s, r, t = sample_times(4000, cfg, torch.Generator().manual_seed(2))
    ok = (t - s) >= 1e-4
    assert ((t - r)[ok] >= 1e-4 - 1e-15).all()  # the low-precision gap


def test_stratified_time_sampling_covers_the_times_evenly_with_the_same_distribution():
    n = 512
    cfg = IMMConfig(k=8, min_gap=0.0, time_sampling="stratified")
    s, r, t = sample_times(n, cfg, torch.Generator().manual_seed(1))
    strata = ((t - cfg.eps_t) / (cfg.T - cfg.eps_t) * n).floor().long()
    assert sorted(strata.tolist()) == list(range(n))  # one group in each of n strata of [eps_t, T]
    share = (s - cfg.eps_t) / (t - cfg.eps_t)  # s's share of [eps_t, t], stratified the same way
    assert sorted((share * n).floor().long().tolist()) == list(range(n))
    assert (s <= r).all() and (r <= t).all()
    plain_t = sample_times(n, IMMConfig(k=8, min_gap=0.0), torch.Generator().manual_seed(1))[2]
    assert len(set(((plain_t - cfg.eps_t) / (cfg.T - cfg.eps_t) * n).floor().long().tolist())) < n
    # the same law: pooled over many batches the mean of t is U(eps_t, T)'s
    pooled = torch.cat([sample_times(64, cfg, torch.Generator().manual_seed(i))[2] for i in range(200)])
    assert float(pooled.mean()) == pytest.approx((cfg.eps_t + cfg.T) / 2, abs=0.005)
    with pytest.raises(ConfigError, match="time_sampling"):
        validate(IMMConfig(time_sampling="sobol"))


def test_r_is_the_eta_decrement():
    cfg = IMMConfig(k=10, min_gap=0.0)
    t = torch.tensor([0.5], dtype=torch.float64)
    d = 160 / 2 ** 10
    expected = (1.0 - d) / (1 + 1.0 - d)  # eta(0.5) = 1 for OT-FM
    assert float(r_from(torch.tensor([0.0], dtype=torch.float64), t, cfg)) == pytest.approx(expected, abs=1e-15)
    near_zero = r_from(torch.tensor([0.001], dtype=torch.float64), torch.tensor([0.002], dtype=torch.float64), cfg)
    assert float(near_zero) == 0.001  # eta(t) - d < 0 is clamped, then r = max(s, 0) = s


def test_eta_ratio_floor_keeps_r_above_s_at_small_t_and_leaves_large_t_alone():
    plain, floored = IMMConfig(k=8, min_gap=0.0), IMMConfig(k=8, min_gap=0.0, min_eta_ratio=0.5)
    s = torch.full((3,), 0.006, dtype=torch.float64)
    t = torch.tensor([0.25, 0.5, 0.9], dtype=torch.float64)  # eta 1/3, 1, 9; d = 160 / 2^8 = 0.625
    r0, r1 = r_from(s, t, plain), r_from(s, t, floored)
    assert float(r0[0]) == 0.006  # eta(t) < d: without the floor r falls to s
    assert float(r1[0]) == pytest.approx((1 / 6) / (1 + 1 / 6), abs=1e-15)  # eta(r) = eta(t) / 2
    assert float(r1[1]) == pytest.approx(0.5 / 1.5, abs=1e-15)  # 1 - 0.625 < 1 / 2: the floor binds
    assert float(r0[1]) == pytest.approx(0.375 / 1.375, abs=1e-15)
    assert float(r1[2]) == float(r0[2])  # eta(t) > d / (1 - ratio): the constant decrement
    big_s = r_from(torch.tensor([0.2], dtype=torch.float64), torch.tensor([0.25], dtype=torch.float64), floored)
    assert float(big_s) == 0.2  # r never goes below s
    with pytest.raises(ConfigError, match="min_eta_ratio"):
        validate(IMMConfig(min_eta_ratio=1.0))


def test_eta_ratio_cap_makes_the_gap_relative_near_T_and_leaves_small_t_alone():
    plain = IMMConfig(k=8, min_gap=0.0, min_eta_ratio=0.5)
    capped = IMMConfig(k=8, min_gap=0.0, min_eta_ratio=0.5, max_eta_ratio=0.9)
    s = torch.full((3,), 0.006, dtype=torch.float64)
    t = torch.tensor([0.99, 0.9, 0.5], dtype=torch.float64)  # eta 99, 9, 1; d = 0.625, crossover eta 6.25
    r0, r1 = r_from(s, t, plain), r_from(s, t, capped)
    assert float(r1[0]) == pytest.approx(89.1 / 90.1, abs=1e-14)  # eta(r) = 0.9 eta(t)
    assert float(r0[0]) == pytest.approx(98.375 / 99.375, abs=1e-14)  # the constant decrement
    assert float(r1[1]) == pytest.approx(8.1 / 9.1, abs=1e-14)  # 9 - 0.625 > 8.1: the cap binds
    assert float(r1[2]) == float(r0[2])  # eta(t) < d / (1 - ratio): the decrement (and the floor) as before
    assert (t - r1 >= t - r0).all()
    # a ratio of 1 (the default) changes no r at all, floor or not: the mapping without a cap, written out
    g = torch.Generator().manual_seed(5)
    t = 0.006 + 0.988 * torch.rand(20000, dtype=torch.float64, generator=g)
    s = 0.006 + (t - 0.006) * torch.rand(20000, dtype=torch.float64, generator=g)
    eta_t = eta(t, "ot_fm")
    for ratio in (0.0, 0.5):
        uncapped = eta_inverse(torch.maximum(eta_t - 160 / 2 ** 8, ratio * eta_t), "ot_fm")
        uncapped = torch.maximum(s, torch.minimum(uncapped, t - 1e-4))  # min_gap 1e-4, then r >= s
        assert torch.equal(r_from(s, t, IMMConfig(k=8, min_eta_ratio=ratio, max_eta_ratio=1.0)), uncapped)
    for bad in (dict(max_eta_ratio=1.1), dict(max_eta_ratio=0.0), dict(min_eta_ratio=0.5, max_eta_ratio=0.5)):
        with pytest.raises(ConfigError, match="max_eta_ratio"):
            validate(IMMConfig(**bad))


def test_grid_aligned_s_is_the_pushforward_grid_time_just_below_t():
    cfg = IMMConfig(k=8, min_gap=0.0, min_eta_ratio=0.5, s_grid_share=1.0, s_grid_steps=[4, 2])
    s, r, t = sample_times(4000, cfg, torch.Generator().manual_seed(4))
    four = pushforward_grid(4, cfg.T, cfg.eps_t, cfg.schedule).flip(0)  # eps_t, 0.253, 0.5, 0.747, T
    two = pushforward_grid(2, cfg.T, cfg.eps_t, cfg.schedule).flip(0)  # eps_t, eta^-1(1.4) = 0.5833, T
    on_four = (s[:, None] == four).any(1)
    on_two = (s[:, None] == two).any(1)
    assert (on_four | on_two).all() and (s < t).all() and (s <= r).all() and (r <= t).all()
    for grid, rows in ((four, on_four & ~on_two), (two, on_two & ~on_four)):
        below = grid[(grid[None, :] < t[rows, None]).sum(1) - 1]  # the last grid time under t
        assert torch.equal(s[rows], below)
    upper = t > two[1]  # there the 2-step grid gives s = 0.5833, the 4-step grid 0.5 or 0.747
    assert 0.45 < (s[upper] == two[1]).double().mean() < 0.55  # each grid is picked for about half of the groups
    assert float(pushforward_grid(2, cfg.T, cfg.eps_t, cfg.schedule)[1]) == pytest.approx(1.4 / 2.4, abs=1e-15)


def test_grid_share_mixes_grid_groups_into_the_uniform_draws():
    plain = IMMConfig(k=8, min_gap=0.0)
    s0, _, t0 = sample_times(4000, plain, torch.Generator().manual_seed(5))
    s1, _, t1 = sample_times(4000, IMMConfig(k=8, min_gap=0.0, s_grid_share=0.25), torch.Generator().manual_seed(5))
    assert torch.equal(t0, t1)  # the grid draws come after (s, t): t is unchanged
    moved = s0 != s1
    grid = pushforward_grid(4, plain.T, plain.eps_t, plain.schedule)
    assert (s1[moved][:, None] == grid).any(1).all()
    assert 0.2 < moved.double().mean() < 0.3


def test_t_at_T_share_puts_that_share_of_groups_at_T_exactly():
    cfg = IMMConfig(k=8, min_gap=0.0, t_at_T_share=0.3)
    s, r, t = sample_times(4000, cfg, torch.Generator().manual_seed(5))
    at_T = t == cfg.T
    assert 0.27 < at_T.double().mean() < 0.33
    assert (t[~at_T] < cfg.T).all()  # the rest is the uniform draw, which never reaches T
    assert (s <= t).all() and (s >= cfg.eps_t).all() and (r >= s).all() and (r <= t).all()
    # s stays uniform below T in the groups at T: its mean is the interval's middle
    assert float(s[at_T].mean()) == pytest.approx((cfg.eps_t + cfg.T) / 2, abs=0.03)
    _, _, t_all = sample_times(4000, IMMConfig(k=8, min_gap=0.0, t_at_T_share=1.0), torch.Generator().manual_seed(5))
    assert (t_all == cfg.T).all()
    # off (the default) draws nothing more: the plain draws are unchanged
    s0, _, t0 = sample_times(4000, IMMConfig(k=8, min_gap=0.0), torch.Generator().manual_seed(5))
    s1, _, t1 = sample_times(4000, IMMConfig(k=8, min_gap=0.0, t_at_T_share=0.0), torch.Generator().manual_seed(5))
    assert torch.equal(t0, t1) and torch.equal(s0, s1)


def test_k_curriculum_moves_r_towards_t_as_training_goes():
    cfg = IMMConfig(k=8, k_end=12, min_gap=0.0)
    assert [k_at(cfg, p) for p in (-1.0, 0.0, 0.5, 1.0, 2.0, None)] == [8, 8, 10, 12, 12, 12]
    assert k_at(IMMConfig(k=8), 0.3) == 8  # no curriculum: k
    prev = None
    for p, k in ((0.0, 8), (0.25, 9), (0.5, 10), (1.0, 12)):  # at progress p, the times of a fixed k = k_at(p)
        got = sample_times(1000, cfg, torch.Generator().manual_seed(3), progress=p)
        ref = sample_times(1000, IMMConfig(k=k, min_gap=0.0), torch.Generator().manual_seed(3))
        for a, b in zip(got, ref):
            assert torch.equal(a, b)
        if prev is not None:
            assert (got[1] >= prev).all() and (got[1] > prev).any()
        prev = got[1]
    # outside training (no k given) r is the finished run's: the curriculum's final k
    s, t = got[0], got[2]
    assert torch.equal(r_from(s, t, cfg), r_from(s, t, cfg, 12)) and not torch.equal(r_from(s, t, cfg), r_from(s, t, cfg, 8))


def test_objective_reads_the_training_progress():
    from core.batch_rng import BatchRNG

    obj = IMMObjective(IMMConfig(M=4, k=4, k_end=12, label_dropout=0.0), SPEC)
    m = model()
    targets = []
    m.register_forward_pre_hook(lambda mod, args, kw: targets.append(kw["noise_t"].clone()) if not torch.is_grad_enabled() else None,
                                with_kwargs=True)
    batch = {"images": torch.randn(8, 1, 4, 4) * 0.5, "labels": torch.zeros(8, dtype=torch.long)}
    ks = [obj(m, {**batch, "rng": BatchRNG(0, 1, 0), "progress": p})["k"] for p in (0.0, 1.0)]
    assert ks == [4, 12]
    assert (targets[1] >= targets[0]).all() and (targets[1] > targets[0]).any()  # r closer to t at the end


def test_mmd_properties():
    torch.manual_seed(0)
    a, b = torch.randn(8, 16), torch.randn(8, 16)
    width = torch.tensor([2.0, 0.5])
    for kind in ("laplace", "rbf"):
        same = group_mmd(a, a.clone(), 4, width, kind)
        assert torch.allclose(same, torch.zeros(2), atol=1e-7)
        diff = group_mmd(a, b, 4, width, kind)
        assert (diff > 0).all()
        torch.testing.assert_close(diff, group_mmd(b, a, 4, width, kind))


def test_u_statistic_against_a_float64_loop():
    """estimator=u: the mean over pairs j != k of K(a_j, a_k) + K(b_j, b_k) - 2 K(a_j, b_k), written as a
    plain loop; the V-statistic differs from it exactly by the diagonal pairs 2 - 2 K(a_j, b_j)."""
    torch.manual_seed(1)
    m, width = 4, torch.tensor([3.0, 0.7])
    a, b = torch.randn(2 * m, 5), torch.randn(2 * m, 5)
    lap = lambda x, y, w: torch.exp(-torch.linalg.vector_norm(x - y) / w)
    u, v = group_mmd(a, b, m, width, "laplace", "u"), group_mmd(a, b, m, width, "laplace", "v")
    for g in range(2):
        ga, gb, w = a[g * m:(g + 1) * m].double(), b[g * m:(g + 1) * m].double(), float(width[g])
        pairs = [(j, k) for j in range(m) for k in range(m) if j != k]
        ref = sum(lap(ga[j], ga[k], w) + lap(gb[j], gb[k], w) - 2 * lap(ga[j], gb[k], w) for j, k in pairs) / len(pairs)
        assert float(u[g]) == pytest.approx(float(ref), rel=1e-5, abs=1e-7)
        diagonal = sum(2 - 2 * lap(ga[j], gb[j], w) for j in range(m))
        assert float(v[g]) * m * m == pytest.approx(float(ref) * m * (m - 1) + float(diagonal), rel=1e-5)
    assert torch.allclose(group_mmd(a, a.clone(), m, width, "laplace", "u"), torch.zeros(2), atol=1e-7)


def test_estimator_is_checked():
    with pytest.raises(ConfigError, match="choose v .* or u"):
        validate(IMMConfig(estimator="w"))
    with pytest.raises(ConfigError, match="M >= 2"):
        validate(IMMConfig(estimator="u", M=1))


def test_mmd_gradient_is_finite_with_identical_particles():
    a = torch.randn(4, 8, requires_grad=True)
    loss = group_mmd(a, a.detach().clone(), 4, torch.tensor([1.0]), "laplace").sum()
    loss.backward()
    assert torch.isfinite(a.grad).all()


def test_two_passes_second_without_gradient_and_groups_share_times():
    m = model()
    calls = []

    def hook(module, args, kwargs):
        calls.append((torch.is_grad_enabled(), kwargs["noise_t"].clone(), kwargs["noise_s"].clone()))

    m.register_forward_pre_hook(hook, with_kwargs=True)
    obj = IMMObjective(IMMConfig(M=4, label_dropout=0.0), SPEC)
    x = torch.randn(8, 1, 4, 4) * 0.5
    out = obj(m, {"images": x, "labels": torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])})
    assert [c[0] for c in calls] == [True, False]  # y_t with gradients, y_r without (same weights)
    for _, nt, ns in calls:
        for group in (nt[:4], nt[4:], ns[:4], ns[4:]):
            assert torch.equal(group, group[:1].expand(4))  # one (s, r, t) per group of M
        assert nt[0] != nt[4]
    assert calls[0][1][0] > calls[1][1][0]  # t > r
    out["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_target_is_detached():
    m = model()
    obj = IMMObjective(IMMConfig(M=2, label_dropout=0.0), SPEC)
    x = torch.randn(4, 1, 4, 4) * 0.5
    torch.manual_seed(5)
    loss = obj(m, {"images": x, "labels": torch.tensor([0, 1, 2, 0])})["loss"]
    grads = torch.autograd.grad(loss, list(m.parameters()), allow_unused=True)
    # recompute by hand with y_r detached: must give the same gradient
    from objectives.imm import group_mmd as gm
    from objectives.paths import alpha_sigma, ddim, imm_weight, skip_out
    torch.manual_seed(5)
    from core.batch_rng import BatchRNG
    rng = BatchRNG.from_global()
    s_g, r_g, t_g = sample_times(2, obj.cfg, rng)
    s, r, t = (v.repeat_interleave(2) for v in (s_g, r_g, t_g))
    eps = rng.normal_like(x) * 0.5
    a_t, sig_t = alpha_sigma(t, "ot_fm")
    x_t = a_t.float().view(-1, 1, 1, 1) * x + sig_t.float().view(-1, 1, 1, 1) * eps
    x_r = ddim(x_t, x, t, r, "ot_fm")
    labels = torch.tensor([0, 1, 2, 0])
    y_t = obj.f(m, x_t, s, t, labels)
    y_r = obj.f(m, x_r, s, r, labels).detach()
    width = (skip_out(s_g, t_g, "ot_fm", 0.5, obj.cfg.output)[1].abs() * 16).float()
    ref = (imm_weight(t_g, "ot_fm", 1.0, 4.0).float() * gm(y_t.flatten(1), y_r.flatten(1), 2, width, "laplace")).mean()
    torch.testing.assert_close(loss, ref)
    ref_grads = torch.autograd.grad(ref, list(m.parameters()), allow_unused=True)
    for g1, g2 in zip(grads, ref_grads):
        if g1 is None:
            assert g2 is None
        else:
            torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("field,value,match", [
    ("k", 0, "objective.k"), ("k", 50, "objective.k"), ("T", 1.0, "objective.T"), ("T", 0.001, "objective.T"),
    ("M", 0, "objective.M"), ("kernel", "gauss", "laplace or rbf"), ("output", "x0", "output form"),
    ("k_end", 0.5, "objective.k_end"), ("k_end", 41.0, "objective.k_end"),
    ("s_grid_share", 1.5, "s_grid_share"), ("t_at_T_share", -0.1, "t_at_T_share"), ("t_at_T_share", 1.1, "t_at_T_share"),
    ("s_grid_steps", [], "s_grid_steps"), ("s_grid_steps", [4, 0], "s_grid_steps"),
])
def test_bad_settings_are_refused(field, value, match):
    with pytest.raises(ConfigError, match=match):
        validate(IMMConfig(**{field: value}))


def test_batch_must_be_a_multiple_of_m():
    with pytest.raises(ConfigError, match="multiple of objective.M"):
        validate(IMMConfig(M=4), batch_size=30)
    with pytest.raises(ConfigError, match="multiple of objective.M"):
        IMMObjective(IMMConfig(M=4), SPEC)(model(), {"images": torch.randn(6, 1, 4, 4), "labels": torch.zeros(6, dtype=torch.long)})


def test_compiled_heads_and_mmd_loss_give_the_eager_loss_and_gradients():
    """train.compile_heads: the image codec's methods and the MMD loss become compiled graphs."""
    from core.batch_rng import BatchRNG

    spec = ModelSpec(image_channels=1, image_size=8, patch_size=2, num_classes=10, image_scale=1.0)
    torch.manual_seed(0)
    model = Model(ModelConfig(size="tiny", n_layer=1, d_model=32, n_head=2), spec)
    for p in model.image.parameters():  # past adaLN-zero, so the heads shape the output
        torch.nn.init.normal_(p, std=0.1)
    obj = IMMObjective(IMMConfig(k=8), spec)
    batch = {"images": torch.randn(8, 1, 8, 8) * 0.5, "labels": torch.randint(0, 10, (8,))}

    def loss_and_grad():
        model.zero_grad()
        loss = obj(model, {**batch, "rng": BatchRNG(0, 1, 0)})["loss"]
        loss.backward()
        return loss.detach(), model.image.t_embed.mlp[0].weight.grad.clone()

    eager_loss, eager_grad = loss_and_grad()
    torch._dynamo.reset()
    model.compile_regions(image_heads=True)
    obj.compile_regions()
    assert {"tokens", "condition", "output"} <= set(vars(model.image)) and "mmd_loss" in vars(obj)
    loss, grad = loss_and_grad()
    torch._dynamo.reset()
    assert eager_loss > 0 and eager_grad.abs().sum() > 0
    torch.testing.assert_close(loss, eager_loss, rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(grad, eager_grad, rtol=1e-3, atol=1e-8)
