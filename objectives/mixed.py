"""Mixed text + image: next-token loss on the text of interleaved sequences plus lambda times the IMM
loss on their image spans. Caption -> image rows carry a noised image (IMM); image -> caption rows a
clean one (t = s = 0). Groups of M rows share one direction and one (s, r, t). Text-only batches,
when the data mixes them in, train the next-token loss alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.batch_rng import to_device
from core.config import ConfigError
from objectives import OBJECTIVES
from objectives.image_common import batch_rng
from objectives.imm import CompilableMMD, IMMConfig, curriculum_progress, sample_times, validate
from objectives.paths import Parameterization, ddim, interpolate


@dataclass
class MixedConfig(IMMConfig):
    name: str = "mixed"
    lam: float = 1.0  # weight of the IMM loss
    p_caption_to_image: float = 0.75  # share of image-text groups trained caption -> image
    caption_dropout: float = 0.1  # caption -> image rows with the empty caption (for guidance)
    caption_len: int = 32  # caption tokens kept; longer captions are truncated and counted


def caption_to_image_rows(noised: list[bool], m: int) -> int:
    """How many rows lead the batch as caption -> image (noised) rows, a whole number of groups."""
    n = sum(noised)
    if any(noised[n:]) or n % m:
        raise ValueError(f"a mixed batch must hold its caption -> image rows first, in whole groups of M={m}")
    return n


@OBJECTIVES.register("mixed")
class MixedObjective(CompilableMMD):
    Config = MixedConfig
    task = "mixed"
    default_sampler = "caption_to_image"
    flops_multiplier = 4 / 3

    def __init__(self, cfg: MixedConfig, spec=None):
        validate(cfg)
        if not 0 <= cfg.p_caption_to_image <= 1 or not 0 <= cfg.caption_dropout < 1 or cfg.lam < 0:
            raise ConfigError("need 0 <= p_caption_to_image <= 1, 0 <= caption_dropout < 1 and lam >= 0")
        if cfg.caption_len < 1:
            raise ConfigError(f"objective.caption_len must be >= 1, got {cfg.caption_len}")
        if cfg.label_groups:
            raise ConfigError("objective.label_groups is for --objective imm: the mixed objective's image rows come "
                              "from caption shards, which have no class labels to group by")
        self.cfg = cfg
        self.param = Parameterization(cfg.schedule, cfg.output, cfg.second_time, cfg.sigma_d)
        self.null_label = None

    def validate_batch(self, batch_size: int) -> None:
        validate(self.cfg, batch_size)

    def __call__(self, model, batch: dict) -> dict:
        if batch["kind"] == "text":
            loss = model("text", tokens=batch["tokens"], targets=batch["targets"])
            return {"loss": loss, "ar_loss": loss.detach()}
        cfg, m = self.cfg, self.cfg.M
        x = batch["images"]
        b, dev = x.shape[0], x.device
        # caption -> image rows come first (a host list, the same every step): selecting them is a
        # slice, with no device-to-host sync and nothing for torch.compile to recompile on
        n = caption_to_image_rows(batch["noised"], m)
        rng = batch_rng(batch, dev)
        s_g, r_g, t_g = (to_device(v, dev) for v in sample_times(n // m, cfg, rng, curriculum_progress(batch, cfg)))
        clean = torch.zeros(b - n, dtype=torch.float64, device=dev)  # image -> caption rows: t = s = 0
        s, r, t = (torch.cat([v.repeat_interleave(m), clean]) for v in (s_g, r_g, t_g))
        eps = rng.normal_like(x) * cfg.sigma_d
        x_t = interpolate(x, eps, t, cfg.schedule)
        text_loss, g = self._forward(model, batch, x_t, s, t, batch["targets"])
        out = {"ar_loss": text_loss.detach()}
        imm = torch.zeros((), device=dev)
        if n:
            s_n, r_n, t_n, x_tn = s[:n], r[:n], t[:n], x_t[:n]
            y_t = self.param.combine(x_tn, g[:n], s_n, t_n)
            x_r = ddim(x_tn, x[:n], t_n, r_n, cfg.schedule)
            with torch.no_grad():
                sub = {k: v[:n] for k, v in batch.items() if torch.is_tensor(v) and v.dim() > 0 and k != "images"}
                _, g_r = self._forward(model, sub, x_r, s_n, r_n, None)
                y_r = self.param.combine(x_r, g_r, s_n, r_n)
            imm, _ = self.mmd_loss(y_t, y_r, s_g, t_g, cfg)
            out["imm_loss"] = imm.detach()
        return {"loss": text_loss + cfg.lam * imm, **out}

    def _forward(self, model, batch, x_t, s, t, targets):
        x_in, nt, ns = self.param.network_inputs(x_t, s, t)
        return model("mixed", tokens=batch["tokens"], pos=batch["pos"], span_ids=batch["span_ids"],
                     key_valid=batch["key_valid"], image_start=batch["image_start"], images=x_in, noise_t=nt,
                     noise_s=ns, targets=targets)
