#!/usr/bin/env python
"""Generate from a trained run: text continuations, or image grids for image objectives.

  python sample.py --run-dir runs/ar-... --prompt "The for statement" --max-new-tokens 300
  python sample.py --run-dir runs/imm-... --steps 4 --guidance 1.5 --out grid.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from core.device import pick_device  # noqa: E402
from core.errors import friendly_errors  # noqa: E402
from core.loading import load_run  # noqa: E402
from objectives import get_objective  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, help="a run directory (its latest checkpoint is used)")
    p.add_argument("--checkpoint", type=Path, help="a specific checkpoint directory (ckpt/step_...)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even when EMA weights exist")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num", type=int, default=None, help="number of samples")
    p.add_argument("--sampler", default=None, help="sampler name (default: the objective's)")
    # text
    p.add_argument("--prompt", default=None, help="text prompt (default: beginnings of validation text)")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--temperature", type=float, default=None, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--no-cache", action="store_true", help="recompute the whole prefix every token")
    # images
    p.add_argument("--steps", type=int, default=None, help="sampling steps (image objectives)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance weight")
    p.add_argument("--spacing", choices=["uniform", "edm"], default=None,
                   help="IMM samplers' time grid for >= 4 steps (default: uniform in t)")
    p.add_argument("--times", default=None,
                   help="IMM samplers: an explicit time grid, N + 1 decreasing times for N steps, e.g. 0.994/0.75/0.5/0.25/0.006")
    p.add_argument("--labels", default=None, help="comma-separated class labels, or a caption for mixed runs")
    p.add_argument("--out", type=Path, default=None, help="output file (.png grid; .npz next to it)")
    args = p.parse_args(argv)
    if args.run_dir is None and args.checkpoint is None:
        p.error("give --run-dir or --checkpoint")
    return args


def main(argv=None):
    args = parse_args(argv)
    with friendly_errors():
        device = pick_device(args.device)
        cfg, spec, model, ckpt = load_run(args.run_dir, args.checkpoint, device, use_ema=not args.no_ema)
        objective_cls = get_objective(cfg.objective.name)
        from samplers.cli import SAMPLE_COMMANDS

        run_dir = args.run_dir or ckpt.parent.parent
        print(f"{cfg.objective.name} model from {ckpt}", file=sys.stderr)
        torch.manual_seed(args.seed)
        SAMPLE_COMMANDS.get(objective_cls.task)(args, cfg, spec, model, run_dir, device)


if __name__ == "__main__":
    main()
