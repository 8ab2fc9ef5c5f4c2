"""The model: one shared Transformer plus the codecs of the modalities a run uses.

``forward(mode, ...)`` is the single entry point (so DDP/FSDP/compile see every call):
- ``"text"``:  token ids -> logits (causal, optional KV cache and padding mask)
- ``"image"``: image + noise levels + labels -> network output G (bidirectional over patches)
- ``"mixed"``: interleaved text and image spans (see modalities/mixed_sequence.py)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from core.backbone import Transformer
from core.blocks import Modulation
from core.config import ModelConfig
from core.kv_cache import KVCache
from core.masks import AttnMask
from core.rope import grid_positions, text_positions
from core.sizes import resolve_shape
from modalities.image_codec import ImageCodec
from modalities.text_codec import TextCodec


@dataclass
class ModelSpec:
    """What the data dictates about the model (saved with every run)."""

    vocab_size: int = 0  # 0: no text
    image_channels: int = 0  # 0: no images
    image_size: int = 0
    patch_size: int = 2
    num_classes: int = 0
    image_scale: float = 1.0  # pixels in [-1, 1] times this give data std ~ sigma_d

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        return cls(**json.loads(text))


class Model(nn.Module):
    def __init__(self, cfg: ModelConfig, spec: ModelSpec):
        super().__init__()
        self.cfg, self.spec = cfg, spec
        shape = resolve_shape(cfg)
        d = shape["d_model"]
        has_image = spec.image_channels > 0
        self.backbone = Transformer(
            shape["n_layer"], shape["n_head"], d, cfg.mlp_ratio, cfg.qk_norm, cfg.dropout, cfg.rope_base,
            cond_dim=d if has_image else None, attn_backend=cfg.attn_backend, split_projections=cfg.split_projections,
            fused_qk_norm_rope=cfg.fused_qk_norm_rope, fused_swiglu=cfg.fused_swiglu,
        )
        self.backbone.reset_parameters(cfg.init_std)
        self.text = (TextCodec(spec.vocab_size, d, cfg.tie_embeddings, cfg.init_std, cfg.fused_cross_entropy)
                     if spec.vocab_size else None)
        self.image = (
            ImageCodec(spec.image_channels, spec.image_size, spec.patch_size, d, spec.num_classes, d, cfg.init_std)
            if has_image else None
        )
        self.embed_drop = nn.Dropout(cfg.dropout)
        self.prefix_cond = None
        if cfg.prefix_condition and self.text is not None and self.image is not None:
            self.prefix_cond = nn.Linear(d, d)
            nn.init.zeros_(self.prefix_cond.weight)  # starts as the model without it
            nn.init.zeros_(self.prefix_cond.bias)

    # --- entry point -------------------------------------------------------------------------
    def forward(self, mode: str, **inputs):
        if mode == "text":
            return self._text(**inputs)
        if mode == "image":
            return self._image(**inputs)
        if mode == "mixed":
            return self._mixed(**inputs)
        raise ValueError(f"unknown forward mode {mode!r}; use text, image or mixed")

    def compile_regions(self, mode: str | None = None, image_heads: bool = False) -> None:
        """Compile each block (one compilation shared by all) and the text head: much faster to
        compile than the whole graph, at nearly the same speed. ``mode``: torch.compile's mode.
        ``image_heads``: also the image codec's patch embedding, conditioning and output head, whose
        many small operations otherwise each cost the host a dispatch (train.compile_heads)."""
        # one block code serves text, image and mixed batches, with and without gradients (IMM's
        # target pass), each a graph of its own: more than dynamo's default 8 before it falls back
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 32)
        # static shapes: by default a second batch size (the mixed target pass, an evaluation batch)
        # recompiles the blocks with symbolic shapes; static ones get a graph per shape instead
        for blk in self.backbone.blocks:
            blk.compile(mode=mode, dynamic=False)
        if self.text is not None:
            self.text.compile(mode=mode, dynamic=False)
            # compiled, the embedding's backward is one scatter-add instead of eager's sort and
            # segment sums (0.5 ms of a 124M step on an H200); an instance attribute shadows the method
            self.text.embed_tokens = torch.compile(self.text.embed_tokens, mode=mode, dynamic=False)
        if image_heads and self.image is not None:
            for name in ("tokens", "condition", "output"):  # instance attributes shadow the methods
                setattr(self.image, name, torch.compile(getattr(self.image, name), mode=mode, dynamic=False))

    def num_params(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings and self.text is not None:
            n -= self.text.embed.weight.numel()
        return n

    def new_cache(self, batch: int, max_len: int, cache_cls: type[KVCache] = KVCache) -> KVCache:
        p = next(self.parameters())
        dtype = torch.get_autocast_dtype("cuda") if (p.is_cuda and torch.is_autocast_enabled("cuda")) else p.dtype
        return self.backbone.new_cache(batch, max_len, p.device, dtype, cache_cls)

    # --- modes -------------------------------------------------------------------------------
    def _text(self, tokens: torch.Tensor, pos: torch.Tensor | None = None, key_valid: torch.Tensor | None = None,
              cache: KVCache | None = None, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits, or with ``targets`` the mean cross-entropy against them."""
        if self.text is None:
            raise RuntimeError("this model has no text codec (it was built for images only)")
        b, l = tokens.shape
        if pos is None:
            pos = text_positions(l, tokens.device, offset=cache.pos if cache is not None else 0)
        h = self.embed_drop(self.text.embed_tokens(tokens))
        h = self.backbone(h, pos, AttnMask(causal=True, key_valid=key_valid), cache=cache)
        return self.text(h, targets) if targets is not None else self.text.logits(h)

    def _image(self, x: torch.Tensor, noise_t: torch.Tensor, noise_s: torch.Tensor,
               labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.image is None:
            raise RuntimeError("this model has no image codec (it was built for text only)")
        cond = self.image.condition(noise_t, noise_s, labels).unsqueeze(1)
        h = self.embed_drop(self.image.tokens(x))
        pos = grid_positions(self.image.grid, self.image.grid, x.device)
        h = self.backbone(h, pos, AttnMask.full(), mod=Modulation(cond))
        return self.image.output(h, cond)

    def _mixed(self, **inputs):
        from modalities.mixed_forward import mixed_forward

        return mixed_forward(self, **inputs)
