#!/usr/bin/env python
"""How much of IMM's training signal survives low precision, per time t.

IMM's loss compares y_t = f(x_t; s, t) with y_r = f(x_r; s, r), and near t = T the decrement in eta makes
t - r tiny (1e-4 at T with k = 8), so y_t - y_r is tiny too. This script loads a trained IMM run, draws
groups at fixed t (s ~ U(eps_t, t), r by the run's mapping), and measures against a float32 reference
(TF32 off):
  signal     mean ||y_t - y_r|| per sample in float32;
  error      mean ||(y_t - y_r)_p - (y_t - y_r)_fp32|| under precision p (bf16 autocast, or TF32 matmuls);
  grad cos   cosine between the loss's parameter gradient under p and under float32.
Where error/signal passes 1, y_t - y_r under p is mostly rounding. On the H200's MNIST recipe that is
t >= 0.95 under bf16 (t - r <= 1.6e-3), and yet training in TF32 gave no better FID at equal steps
(results/gpu_2026-11-30_session21). One batch's bf16 gradient cosine varies widely even where the error
share is small (0.12-0.99 at t <= 0.9 over the five runs probed there): the error share is the steadier measure.

  python scripts/imm_precision.py --run-dir runs/imm_mnist --out results/precision
"""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from core.device import autocast  # noqa: E402
from core.errors import friendly_errors  # noqa: E402
from core.loading import load_run  # noqa: E402
from modalities.image_data import load_image_sets  # noqa: E402
from objectives.imm import IMMObjective, r_from  # noqa: E402
from scripts.tables import markdown_table  # noqa: E402

DEFAULT_TIMES = (0.2, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.994)


@contextmanager
def precision(name: str, device: torch.device):
    """fp32: float32 throughout (TF32 off); tf32: float32 with TF32 matmuls; bf16: bf16 autocast."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = name == "tf32"
    try:
        with autocast(device, torch.bfloat16 if name == "bf16" else torch.float32):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def difference_and_grad(model, obj: IMMObjective, draws: dict, name: str, device: torch.device):
    """(y_t - y_r, the loss's gradient over all parameters) under one precision."""
    model.zero_grad(set_to_none=True)
    with precision(name, device):
        loss, _, y_t, y_r = obj.pair_loss(model, **draws)
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return (y_t - y_r).detach().flatten(1).float(), grad


def groups_at(t_value: float, images, labels, obj: IMMObjective, gen: torch.Generator, device) -> dict:
    """The draws of one batch whose groups all share t = t_value (s ~ U(eps_t, t) per group, r by the run's
    mapping), as IMMObjective.pair_loss takes them."""
    cfg = obj.cfg
    n_groups = len(images) // cfg.M
    t_g = torch.full((n_groups,), t_value, dtype=torch.float64)
    s_g = cfg.eps_t + (t_g - cfg.eps_t) * torch.rand(n_groups, dtype=torch.float64, generator=gen)
    r_g = r_from(s_g, t_g, cfg)
    eps = torch.randn(images.shape, generator=gen) * cfg.sigma_d
    return dict(x=images.to(device), eps=eps.to(device), labels=None if labels is None else labels.to(device),
                s_g=s_g.to(device), r_g=r_g.to(device), t_g=t_g.to(device))


def probe(run_dir: Path, data: str | None, times, precisions, groups: int, device: torch.device, seed: int = 0,
          min_gap: float | None = None) -> list[dict]:
    cfg, spec, model, _ = load_run(run_dir, device=device, use_ema=False)
    if cfg.objective.name != "imm":
        raise SystemExit(f"{run_dir} is a {cfg.objective.name!r} run; this probe needs an IMM run")
    ocfg = cfg.objective if min_gap is None else replace(cfg.objective, min_gap=min_gap)
    obj = IMMObjective(ocfg, spec)
    train, _ = load_image_sets(data or cfg.data.path, cfg.data.image_size, cfg.data.image_pad_value)
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(train.images), (groups * ocfg.M,), generator=gen)
    images = train.images[pick] * spec.image_scale
    labels = None if train.labels is None else train.labels[pick]
    rows = []
    for t_value in times:
        draws = groups_at(t_value, images, labels, obj, gen, device)
        ref, ref_grad = difference_and_grad(model, obj, draws, "fp32", device)
        signal = ref.norm(dim=1).mean().item()
        row = {"t": t_value, "t_minus_r": float((draws["t_g"] - draws["r_g"]).mean()), "signal": signal}
        for name in precisions:
            diff, grad = difference_and_grad(model, obj, draws, name, device)
            error = (diff - ref).norm(dim=1).mean().item()
            row[f"{name}_error_over_signal"] = error / signal
            row[f"{name}_grad_cos"] = torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0).item()
        rows.append(row)
        print("  ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
    return rows


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", type=Path, required=True, help="a trained IMM run directory")
    ap.add_argument("--data", default=None, help="image data (default: the run's data.path)")
    ap.add_argument("--times", default=",".join(map(str, DEFAULT_TIMES)), help="comma-separated t values")
    ap.add_argument("--precisions", default="bf16,tf32", help="compared with float32: bf16, tf32 (CUDA only)")
    ap.add_argument("--groups", type=int, default=64, help="groups of M particles per t")
    ap.add_argument("--min-gap", type=float, default=None, help="override objective.min_gap (r <= t - min_gap)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="folder for imm_precision.json and .md")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    precisions = [p for p in args.precisions.split(",") if p]
    unknown = set(precisions) - {"bf16", "tf32"}
    if unknown:
        ap.error(f"unknown precision(s) {sorted(unknown)}: choose from bf16, tf32")
    if "tf32" in precisions and device.type != "cuda":
        precisions.remove("tf32")  # TF32 is a CUDA matmul mode: on the CPU it would equal float32
    with friendly_errors():
        rows = probe(args.run_dir, args.data, [float(t) for t in args.times.split(",")], precisions, args.groups,
                     device, args.seed, args.min_gap)
    table = markdown_table(rows, list(rows[0]))
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "imm_precision.json").write_text(json.dumps(rows, indent=1))
        (args.out / "imm_precision.md").write_text(table + "\n")
    return rows


if __name__ == "__main__":
    main()
