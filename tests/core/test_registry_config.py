import pytest

from core.config import ConfigError, build_config, parse_override, set_key
from core.registry import Registry, RegistryError
from objectives import get_objective
from objectives.ar import ARConfig


def test_registry_miss_lists_known_names_and_suggests():
    reg = Registry("widget")
    reg.register("alpha")(1)
    reg.register("beta")(2)
    with pytest.raises(RegistryError) as e:
        reg.get("alpah")
    msg = str(e.value)
    assert "alpha, beta" in msg and "Did you mean 'alpha'" in msg


def test_unknown_objective_lists_registered():
    with pytest.raises(RegistryError) as e:
        get_objective("diffusionn")
    assert "ar" in str(e.value)


def test_unknown_key_names_nearest():
    with pytest.raises(ConfigError) as e:
        build_config("ar", ARConfig, [], ["train.stpes=3"])
    assert "train.steps" in str(e.value)
    with pytest.raises(ConfigError) as e:
        build_config("ar", ARConfig, [], ["modle.d_model=3"])
    assert "model.d_model" in str(e.value)


def test_precedence_defaults_file_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("objective:\n  name: ar\ntrain:\n  steps: 7\n  lr: 0.5\n")
    cfg = build_config("ar", ARConfig, [f], ["train.lr=0.25"])
    assert cfg.train.steps == 7 and cfg.train.lr == 0.25 and cfg.train.batch_size == 32


def test_size_override_brings_its_whole_shape(tmp_path):
    from core.sizes import resolve_shape

    f = tmp_path / "c.yaml"
    f.write_text("objective:\n  name: ar\nmodel:\n  size: tiny\n  n_layer: 4\n  d_model: 192\n")
    assert resolve_shape(build_config("ar", ARConfig, [f], []).model) == dict(n_layer=4, n_head=4, d_model=192)
    big = build_config("ar", ARConfig, [f], ["model.size=gpt2-124m"]).model
    assert resolve_shape(big) == dict(n_layer=12, n_head=12, d_model=768)
    deep = build_config("ar", ARConfig, [f], ["model.n_layer=2", "model.size=gpt2-124m"]).model
    assert resolve_shape(deep) == dict(n_layer=2, n_head=12, d_model=768)


def test_type_errors_are_reported():
    cfg = build_config("ar", ARConfig, [], [])
    with pytest.raises(ConfigError, match="train.steps expects int"):
        set_key(cfg, "train.steps", "many")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("train.steps")
    set_key(cfg, "train.lr", 1)  # ints are fine for floats
    assert isinstance(cfg.train.lr, float)


def test_file_for_other_objective_is_refused(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("objective:\n  name: imm\n")
    with pytest.raises(ConfigError, match="for objective 'imm'"):
        build_config("ar", ARConfig, [f], [])
