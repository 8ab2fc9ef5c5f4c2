"""Rebuild a trained model from a run directory (or one of its checkpoints) for sampling/evaluation."""
from __future__ import annotations

from pathlib import Path

import torch

from core import checkpoint as ckpt_lib
from core.config import load_saved_config
from core.model import Model, ModelSpec
from core.run_dir import RunDirError
from objectives import get_objective


def find_checkpoint(run_dir: Path, ckpt: Path | None = None) -> Path:
    if ckpt is not None:
        ckpt_lib.verify(ckpt)
        return Path(ckpt)
    found = ckpt_lib.list_checkpoints(Path(run_dir) / "ckpt")
    if not found:
        raise RunDirError(f"{run_dir} has no checkpoints yet (ckpt/step_*)")
    ckpt_lib.verify(found[-1])
    return found[-1]


def uses_ema(ckpt: Path, use_ema: bool = True) -> bool:
    """Whether load_run takes a checkpoint's EMA weights: asked for, and saved (train.ema > 0)."""
    return use_ema and (Path(ckpt) / "ema.safetensors").is_file()


def load_run(run_dir: Path | None = None, ckpt: Path | None = None, device: str | torch.device = "cpu",
             use_ema: bool = True):
    """-> (cfg, spec, model in eval mode, checkpoint path). Either run_dir or ckpt must be given."""
    if run_dir is None:
        if ckpt is None:
            raise RunDirError("give a run directory or a checkpoint")
        run_dir = Path(ckpt).resolve().parent.parent
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "spec.json").is_file():
        raise RunDirError(f"{run_dir} is not a run directory (config.yaml and spec.json are needed)")
    cfg = load_saved_config(run_dir / "config.yaml", get_objective)
    spec = ModelSpec.from_json((run_dir / "spec.json").read_text())
    path = find_checkpoint(run_dir, ckpt)
    model = Model(cfg.model, spec)
    ckpt_lib.load_weights(model, path / ("ema.safetensors" if uses_ema(path, use_ema) else "model.safetensors"))
    return cfg, spec, model.to(device).eval(), path
