"""Every recipe in configs/ builds: known keys only, a registered objective whose settings validate,
and training settings that the trainer accepts (a time-based decay needs a time limit, CUDA graphs
need compilation). A recipe is only run on the GPU, so a typo there would otherwise surface there."""
from pathlib import Path

import pytest
import yaml

from core.config import build_config
from core.optim import check_schedule
from objectives import get_objective

RECIPES = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_the_recipes_are_found():
    assert {p.stem for p in RECIPES} >= {"ar", "imm", "fm", "mixed", "imm_mnist", "fm_mnist", "mixed_mnist"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_builds_and_validates(path):
    name = (yaml.safe_load(path.read_text()).get("objective") or {}).get("name") or path.stem.split("_")[0]
    cls = get_objective(name)
    cfg = build_config(name, cls.Config, [path], [])
    cls(cfg.objective)  # each objective validates its own settings on construction
    check_schedule(cfg.train)
    assert cfg.train.compile or not cfg.train.cuda_graphs, "train.cuda_graphs needs train.compile"


@pytest.mark.parametrize("name", ["imm", "fm"])
def test_mnist_image_recipes_anneal_inside_their_time_budget(name):
    """The measured GPU recipes end the cosine decay at the time limit, which must come before the steps run out."""
    path = next(p for p in RECIPES if p.stem == f"{name}_mnist")
    train = build_config(name, get_objective(name).Config, [path], []).train
    assert train.decay_by == "time" and train.time_limit == 240
    assert train.steps / 40 > train.time_limit  # at the H200's ~26-40 steps/s the time limit, not the steps, ends the run


def test_mnist_image_recipes_time_the_same_steps():
    """Flow matching and IMM are compared at equal training time: both leave the same compile steps out."""
    untimed = {name: build_config(name, get_objective(name).Config, [next(p for p in RECIPES if p.stem == f"{name}_mnist")],
                                  []).train.untimed_steps for name in ("imm", "fm")}
    assert untimed["imm"] == untimed["fm"] > 0
