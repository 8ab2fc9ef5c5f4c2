"""Model sizes by name. ``model.size=NAME`` picks one; explicit model fields override it."""
from __future__ import annotations

from core.registry import Registry

SIZES: Registry[dict] = Registry("model size")

for _name, _shape in {
    "tiny": dict(n_layer=4, n_head=4, d_model=128),  # CPU smoke runs and tests
    "small": dict(n_layer=6, n_head=6, d_model=384),  # shakespeare-char recipe shape (~10M)
    "dit-s": dict(n_layer=12, n_head=6, d_model=384),  # DiT-S width/depth (~21M with SwiGLU)
    "dit-b": dict(n_layer=12, n_head=12, d_model=768),
    "gpt2-124m": dict(n_layer=12, n_head=12, d_model=768),
    "gpt2-350m": dict(n_layer=24, n_head=16, d_model=1024),
}.items():
    SIZES.register(_name)(_shape)


def resolve_shape(model_cfg) -> dict:
    shape = dict(SIZES.get(model_cfg.size))
    for key in ("n_layer", "n_head", "d_model"):
        if getattr(model_cfg, key) is not None:
            shape[key] = getattr(model_cfg, key)
    return shape
