"""Run configuration: dataclasses, filled from defaults <- YAML file <- ``key=value`` overrides.

Every key is checked: an unknown one is an error that names the closest valid key.
The ``objective`` section's fields come from the registered objective's own dataclass.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    pass


@dataclass
class ModelConfig:
    size: str = "tiny"  # a registered size; the fields below override it when set
    n_layer: int | None = None
    n_head: int | None = None
    d_model: int | None = None
    mlp_ratio: float = 4.0
    qk_norm: bool = True
    # compute the fused q/k/v and gate/up projections as one matmul per slice of their weights (same
    # weights, same function): the backward then writes each gradient on its own instead of through a
    # concatenation, whose generated kernel reads every input once per output half
    split_projections: bool = False
    # the text loss with its head's gradients computed in the forward pass (core/linear_cross_entropy.py):
    # one pass over the logits for the loss and their gradient, and no logits kept for the backward
    fused_cross_entropy: bool = False
    # QK-norm and RoPE as one kernel over the fused q/k/v projection (core/qk_norm_rope.py; Triton on
    # CUDA): the backward writes the q/k/v gradients into one buffer, so no concatenation follows
    fused_qk_norm_rope: bool = False
    # SwiGLU's activation as one operator over the fused gate/up projection (core/fused_swiglu.py; Triton
    # on CUDA): its backward writes both halves of the projection's gradient, no concatenation
    fused_swiglu: bool = False
    dropout: float = 0.0
    rope_base: float = 10000.0
    init_std: float = 0.02
    tie_embeddings: bool = True
    attn_backend: str = "auto"  # auto | sdpa | flex | flash_attn | xformers
    # interleaved sequences: an image is also modulated (adaLN) by the mean input embedding of the text
    # before it, the caption as one vector, besides attending to it
    prefix_condition: bool = False


@dataclass
class DataConfig:
    path: str = ""  # empty: the objective's embedded default data
    # text
    tokenizer: str = "sentencepiece"  # sentencepiece | byte
    vocab_size: int = 1024  # sentencepiece pieces (before special tokens)
    tokenizer_path: str = ""  # an existing sentencepiece .model instead of training one
    seq_len: int = 256
    val_fraction: float = 0.1
    # images
    image_size: int = 0  # 0: the dataset's own size
    patch_size: int = 2
    image_pad_value: float = -1.0  # background used when padding up to image_size (in [-1, 1])
    # streaming (mixed runs)
    text_path: str = ""  # text-only shards (.txt members) mixed into image-text batches
    text_ratio: float = 0.0  # share of batches drawn from text_path
    text_eval_path: str = ""  # a UTF-8 file whose last val_fraction gives validation bits per byte
    eval_path: str = ""  # labelled images (.npz / folder) for class metrics; empty with no --data: digits
    num_workers: int = 0
    shuffle_buffer: int = 1000


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    lr_decay_steps: int = 0  # 0: decay over all steps
    schedule: str = "cosine"  # cosine | constant
    # steps: decay over lr_decay_steps. time: also end the decay at time_limit, whichever comes first, so
    # that a time-limited run anneals (its lr then depends on wall time: resume is not bitwise)
    decay_by: str = "steps"
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    # Adam's eps, added to sqrt(v): where a weight's gradients are this small its update is damped. IMM's small
    # kernel loss leaves 48-67% of the weights with sqrt(v) under 1e-7 on the H200's MNIST recipe, yet eps
    # 1e-10 and 1e-12 trained no better (4 / 8-step FID 2.50 / 1.96 against 2.45-2.71 / 1.95-2.06;
    # results/gpu_2026-11-30_session22)
    adam_eps: float = 1e-8
    grad_clip: float = 1.0
    ema: float = 0.0  # EMA decay; 0 turns EMA off
    compile: bool = False
    compile_mode: str = "regional"  # regional: each block once (fast to compile) | full: the whole loss
    # coordinate-descent search of the generated kernels' block sizes: a slower compile for faster
    # normalisation, rotary and cross-entropy kernels (scripts/bench_ar.py measures it)
    compile_tuning: bool = False
    # with compile_mode=regional, also compile the image codec's heads and the IMM loss: image
    # training on a GPU waits on the host, and these are its many small operations
    compile_heads: bool = False
    # with compile: run each compiled region as a CUDA graph (torch.compile's reduce-overhead mode), one
    # launch instead of dozens of kernels. Image and mixed steps wait on the host on a GPU; no effect on a CPU
    cuda_graphs: bool = False
    dtype: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16
    device: str = "auto"
    # intra-op CPU threads of a process that drives a GPU (0: torch's default). Batches are assembled
    # from tensors just over torch's parallel grain; a thread pool contending with the data-loader
    # workers for the cores made those few ops cost ~25 ms a mixed step on the H200 host
    host_threads: int = 1
    seed: int = 0
    time_limit: float = 0.0  # seconds of training; 0 = no limit
    # the first this many steps of each process (each start or resume) do not count as training time:
    # they compile and capture CUDA graphs, which took 4-5 s with a warm compile cache and 25-28 s with a
    # cold one in the H200's MNIST recipes, so a time-limited run on a fresh machine made ~9% fewer steps
    untimed_steps: int = 0
    log_every: int = 10
    eval_every: int = 200
    eval_batches: int = 20
    sample_every: int = 0  # 0: sample at every evaluation
    ckpt_every: int = 500
    keep_ckpts: int = 2
    distributed: str = "ddp"  # ddp | fsdp (under torchrun)
    profile_steps: int = 0  # profile this many steps after the first log interval: profile.md in the run dir


@dataclass
class SampleConfig:
    sampler: str = ""  # empty: the objective's default sampler
    num_samples: int = 4
    prompt: str = ""
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    steps: int = 4
    guidance: float = 1.0
    seed: int = 0
    eval_images: int = 500  # samples scored at each evaluation of image runs
    inception_path: str = ""  # TorchScript Inception-v3 for FID; empty: the project's classifier features


@dataclass
class Config:
    objective: Any = None  # the registered objective's config dataclass (has ``name``)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if annotation is Any:
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} expects a list, got {value!r}")
        (inner,) = typing.get_args(annotation) or (Any,)
        return [_coerce(v, inner, key) for v in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 2e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    else:
        return value
    raise ConfigError(f"{key} expects {getattr(annotation, '__name__', annotation)}, got {value!r}")


def _all_keys(obj: Any, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            keys += _all_keys(v, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def _unknown(key: str, root: Any) -> ConfigError:
    valid = _all_keys(root)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if not close:  # compare the last part too: "train.stpes" vs "steps"
        leaf = key.split(".")[-1]
        close = [k for k in valid if k.split(".")[-1] in difflib.get_close_matches(leaf, [v.split(".")[-1] for v in valid], n=1)]
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown config key {key!r}.{hint} (see configs/*.yaml for the valid keys)")


def set_key(root: Any, dotted: str, value: Any) -> None:
    obj, parts = root, dotted.split(".")
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(obj) or part not in {f.name for f in dataclasses.fields(obj)}:
            raise _unknown(dotted, root)
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(getattr(obj, part)):
                if not isinstance(value, dict):
                    raise ConfigError(f"{dotted} is a section; give it a mapping, not {value!r}")
                for k, v in value.items():
                    set_key(root, f"{dotted}.{k}", v)
                return
            hints = typing.get_type_hints(type(obj))
            setattr(obj, part, _coerce(value, hints[part], dotted))
        else:
            obj = getattr(obj, part)


def apply_mapping(root: Any, mapping: dict, prefix: str = "") -> None:
    for k, v in mapping.items():
        key = f"{prefix}{k}"
        set_key(root, key, v)


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. train.steps=100")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else ""


def build_config(objective_name: str, objective_config_cls: type, files: list[Path], overrides: list[str]) -> Config:
    """defaults <- each YAML file in order <- overrides. The files' objective name must agree."""
    cfg = Config(objective=objective_config_cls())
    for path in files:
        try:
            mapping = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
        if not isinstance(mapping, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        obj = dict(mapping.get("objective") or {})
        named = obj.pop("name", objective_name)
        if named != objective_name:
            raise ConfigError(f"config file {path} is for objective {named!r}, not {objective_name!r}")
        mapping = {**mapping, "objective": obj}
        apply_mapping(cfg, mapping)
    apply_overrides(cfg, overrides)
    return cfg


def apply_overrides(cfg: Config, overrides: list[str]) -> None:
    """``key=value`` strings onto a config (fresh or resumed); the objective itself is not one of them.

    ``model.size=NAME`` brings that size's whole shape: the config file's n_layer / n_head / d_model
    are dropped unless the overrides set them again."""
    parsed = [parse_override(text) for text in overrides]
    keys = {key for key, _ in parsed}
    for key, value in parsed:
        if key == "objective.name":
            raise ConfigError("choose the objective with --objective, not objective.name=")
        set_key(cfg, key, value)
        if key == "model.size":
            for field_name in ("n_layer", "n_head", "d_model"):
                if f"model.{field_name}" not in keys:
                    setattr(cfg.model, field_name, None)


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def config_from_dict(mapping: dict, objective_lookup) -> Config:
    name = mapping["objective"]["name"]
    cfg = Config(objective=objective_lookup(name).Config())
    apply_mapping(cfg, mapping)
    return cfg


def load_saved_config(path: Path, objective_lookup) -> Config:
    """Rebuild a Config from a run directory's config.yaml."""
    return config_from_dict(yaml.safe_load(Path(path).read_text()), objective_lookup)
