"""The learning-rate schedule: warmup, cosine decay by steps, and decay_by=time for time-limited runs."""
import math

import pytest
import torch

from core.config import ConfigError, TrainConfig
from core.optim import budget_progress, build_optimizer, check_schedule, lr_at


def cfg(**kw):
    base = dict(lr=1.0, min_lr=0.1, warmup=10, steps=110)
    return TrainConfig(**{**base, **kw})


def cosine(progress, c):
    return c.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (c.lr - c.min_lr)


def test_warmup_then_cosine_by_steps():
    c = cfg()
    assert lr_at(0, c) == pytest.approx(0.1)  # (step + 1) / warmup of lr
    assert lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(10, c) == pytest.approx(1.0)
    assert lr_at(60, c) == pytest.approx(cosine(0.5, c))  # halfway between warmup and the last step
    assert lr_at(110, c) == pytest.approx(0.1)
    assert lr_at(10_000, c) == 0.1


def test_decay_by_steps_ignores_the_clock():
    c = cfg(time_limit=100.0)
    assert lr_at(20, c, seconds=99.0) == lr_at(20, c)


def test_decay_by_time_ends_at_the_time_limit_whichever_budget_runs_out_first():
    c = cfg(time_limit=100.0, decay_by="time", steps=100_000)
    assert lr_at(10, c, seconds=50.0) == pytest.approx(cosine(0.5, c))  # time is the further budget
    assert lr_at(10, c, seconds=25.0) == pytest.approx(cosine(0.25, c))
    assert lr_at(10, c, seconds=100.0) == pytest.approx(c.min_lr)
    assert lr_at(10, c, seconds=250.0) == pytest.approx(c.min_lr)
    assert lr_at(5, c, seconds=90.0) == pytest.approx(0.6)  # warmup is counted in steps either way
    short = cfg(time_limit=100.0, decay_by="time")  # 110 steps: the step budget runs out first
    assert lr_at(60, short, seconds=10.0) == pytest.approx(cosine(0.5, short))


def test_budget_progress_is_the_share_of_the_budget_used():
    c = cfg()
    assert [budget_progress(s, c, seconds=1e9) for s in (0, 55, 110, 500)] == [0.0, 0.5, 1.0, 1.0]  # steps only
    assert budget_progress(11, cfg(lr_decay_steps=22)) == 0.5  # the decay's budget
    t = cfg(time_limit=100.0, decay_by="time", steps=1000)
    assert budget_progress(10, t, seconds=40.0) == pytest.approx(0.4)  # the further budget
    assert budget_progress(800, t, seconds=40.0) == pytest.approx(0.8)
    assert budget_progress(10, t, seconds=300.0) == 1.0


@pytest.mark.parametrize("kw,expected", [
    (dict(schedule="cosin"), "cosine, constant"),
    (dict(decay_by="wallclock"), "steps, time"),
    (dict(decay_by="time"), "set train.time_limit"),
    (dict(adam_eps=0.0), "adam_eps must be > 0"),
])
def test_bad_schedule_settings_are_refused(kw, expected):
    with pytest.raises(ConfigError, match=expected):
        check_schedule(cfg(**kw))
    check_schedule(cfg(decay_by="time", time_limit=1.0))  # the valid combination passes


def test_adam_eps_reaches_the_optimizer_and_sets_how_far_a_tiny_gradient_moves_a_weight():
    moved = {}
    for eps in (1e-8, 1e-12):
        w = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.zeros_(w.weight)
        opt = build_optimizer(w, cfg(adam_eps=eps, weight_decay=0.0), torch.device("cpu"))
        assert all(g["eps"] == eps for g in opt.param_groups)
        w.weight.grad = torch.full_like(w.weight, 1e-9)  # IMM-sized: under the default eps
        opt.step()
        moved[eps] = float(w.weight.abs())
    assert moved[1e-12] == pytest.approx(1.0, rel=1e-2)  # lr 1: Adam's unit step
    assert moved[1e-8] < 0.1  # the default eps damps it to 1e-9 / (1e-9 + 1e-8) of that
