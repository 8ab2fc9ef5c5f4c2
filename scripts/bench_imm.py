#!/usr/bin/env python
"""GPU benchmark for image generation on MNIST: train IMM or flow matching for a fixed time on the
same backbone, then measure FID (Inception, N samples vs the 10,000 test images), KID and class
accuracy across step counts; optionally the training step time of IMM vs flow matching.

  python scripts/bench_imm.py --objective fm  --data mnist.npz --inception fid_inception_v3_fp16.pt --out OUT
  python scripts/bench_imm.py --objective imm --data mnist.npz --inception fid_inception_v3_fp16.pt --out OUT --throughput
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from scripts.eval_images import evaluate_run, parse_weights, write_table  # noqa: E402
from scripts.tables import markdown_table  # noqa: E402

# (sampler, steps, N) in order of importance: a time budget cuts the tail (those rows say "skipped")
PLANS = {
    "imm": [("imm_pushforward", k, 10000) for k in (1, 2, 4, 8)] + [("imm_restart", k, 10000) for k in (2, 4, 8)],
    "fm": [("euler", k, 10000) for k in (1, 2, 4, 8, 16, 32, 64)] + [("heun", k, 10000) for k in (1, 2, 4, 8, 16, 32)]
    + [("euler", 128, 10000), ("heun", 64, 10000), ("heun", 128, 10000)],
}


# the rows that a guidance sweep repeats at each extra weight (each method's key step counts)
SWEEP_PLANS = {
    "imm": [("imm_pushforward", k, 10000) for k in (1, 2, 4, 8)],
    "fm": [("euler", k, 10000) for k in (4, 8, 16, 32)],
}


def log(msg):
    print(msg, flush=True)


def train_run(objective: str, data: str, run_dir: Path, seconds: float, profile_steps: int = 0, steps: int = 0,
              overrides=()) -> dict:
    """Train for ``seconds`` (the recipe's schedule), or with ``steps`` for exactly that many steps
    (schedule included, no time limit: the equal-iterations control)."""
    import train

    shutil.rmtree(run_dir, ignore_errors=True)
    budget = [f"train.steps={steps}", "train.time_limit=0", "train.decay_by=steps"] if steps else [f"train.time_limit={seconds}"]
    return train.main(["--objective", objective, "--config", str(ROOT / f"configs/{objective}_mnist.yaml"), "--data", data,
                       "--run-dir", str(run_dir), "--quiet", *budget, f"train.profile_steps={profile_steps}", *overrides])


def step_time(objective_name: str, batch: int = 256, warmup: int = 15, steps: int = 50, profile: bool = False) -> dict:
    """Training step time of one objective on the MNIST-shaped backbone (compiled blocks, bf16);
    with ``profile``, also the top kernels of a few steps."""
    from core.config import ModelConfig, TrainConfig
    from core.model import Model, ModelSpec
    from core.optim import build_optimizer
    from objectives import get_objective

    dev = torch.device("cuda")
    spec = ModelSpec(image_channels=1, image_size=32, patch_size=2, num_classes=10, image_scale=0.8)
    cls = get_objective(objective_name)
    cfg = cls.Config()
    if objective_name == "imm":
        cfg.output, cfg.k = "simple_edm", 8
    obj = cls(cfg, spec)
    torch.manual_seed(0)
    model = Model(ModelConfig(size="dit-s", n_layer=8), spec).to(dev)
    model.compile_regions()
    opt = build_optimizer(model, TrainConfig(lr=3e-4, weight_decay=0.0), dev)
    x = torch.randn(warmup + steps, batch, 1, 32, 32, device=dev) * 0.5
    y = torch.randint(0, 10, (warmup + steps, batch), device=dev)

    def one_step(i: int) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = obj(model, {"images": x[i], "labels": y[i]})["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        one_step(i)
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    out = {"step_ms": 1000 * dt, "images_per_s": batch / dt, "params": model.num_params()}
    if profile:
        from core.profiling import top_kernels

        out["profile"] = top_kernels(lambda: one_step(0))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objective", choices=sorted(PLANS), required=True)
    p.add_argument("--data", required=True, help="mnist.npz")
    p.add_argument("--inception", default="", help="TorchScript Inception-v3 for FID")
    p.add_argument("--out", type=Path, default=Path("results/bench_imm"))
    p.add_argument("--run-root", type=Path, default=Path("/tmp/bench_runs"))
    p.add_argument("--train-seconds", type=float, default=240)
    p.add_argument("--train-steps", type=int, default=0, help="train exactly this many steps instead (equal-iterations control)")
    p.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides for the training run, e.g. train.compile_mode=full")
    p.add_argument("--eval-budget", type=float, default=240, help="seconds; later settings are skipped")
    p.add_argument("--end-time", type=float, default=0, help="unix time by which evaluation must end (caps the budget)")
    p.add_argument("--guidance", type=float, default=1.5)
    p.add_argument("--guidance-sweep", default="", metavar="W,W",
                   help="also evaluate the key step counts at these guidance weights (OBJECTIVE_guidance.csv; 1 = off)")
    p.add_argument("--throughput", action="store_true", help="also time IMM vs FM training steps")
    p.add_argument("--profile", action="store_true", help="with --throughput: the top kernels of each step")
    p.add_argument("--throughput-only", action="store_true", help="time the training steps, train nothing")
    p.add_argument("--skip-train", action="store_true", help="evaluate an existing run in --run-root")
    p.add_argument("--smoke", action="store_true", help="tiny settings, to check the pipeline on a CPU")
    p.add_argument("--profile-steps", type=int, default=0, metavar="N",
                   help="profile N steps of the training run (host vs device time) into OUT/<objective>_train_profile.md")
    args = p.parse_args()
    if not torch.cuda.is_available() and not args.smoke:
        sys.exit("bench_imm needs a CUDA GPU (--smoke checks the pipeline on a CPU)")
    if args.smoke:  # one tiny training step count, 40 samples a row, nothing compiled
        args.override = ["model.n_layer=1", "model.d_model=64", "model.n_head=2", "train.batch_size=8",
                         "train.compile=false", "train.cuda_graphs=false", "sample.eval_images=0", *args.override]
        args.train_steps = args.train_steps or 20
    args.out.mkdir(parents=True, exist_ok=True)
    res = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "torch": torch.__version__,
           "objective": args.objective}
    run_dir = args.run_root / f"{args.objective}_mnist"
    if args.throughput or args.throughput_only:
        res["step_time"] = {name: step_time(name, profile=args.profile) for name in ("fm", "imm")}
        res["step_time"]["imm_over_fm"] = res["step_time"]["imm"]["step_ms"] / res["step_time"]["fm"]["step_ms"]
        log(f"step time: fm {res['step_time']['fm']['step_ms']:.1f} ms, imm {res['step_time']['imm']['step_ms']:.1f} ms")
        for name in ("fm", "imm") if args.profile else ():
            log(f"{name} step profile:\n{res['step_time'][name]['profile']}")
        if args.throughput_only:
            (args.out / "bench_imm_step_time.json").write_text(json.dumps(res, indent=1))
            return
    if not args.skip_train:
        t = time.perf_counter()
        res["train"] = train_run(args.objective, args.data, run_dir, args.train_seconds, args.profile_steps,
                                 args.train_steps, args.override)
        res["train"]["overrides"] = args.override
        res["train"]["wall_seconds"] = time.perf_counter() - t
        shutil.copy(run_dir / "metrics.jsonl", args.out / f"{args.objective}_metrics.jsonl")
        if (run_dir / "profile.md").is_file():
            shutil.copy(run_dir / "profile.md", args.out / f"{args.objective}_train_profile.md")
        log(f"trained: {res['train']}")
    budget = args.eval_budget
    if args.end_time:
        budget = max(30.0, min(budget, args.end_time - time.time() - 45))  # the last setting may overrun
    t = time.perf_counter()
    grids = args.run_root / "grids"
    plan = PLANS[args.objective]
    if args.smoke:
        plan = [(sampler, k, 40) for sampler, k, _ in plan]
    if args.guidance_sweep:  # the sweep gets the time that restart / Heun rows would take
        plan = [row for row in plan if row[0] == SWEEP_PLANS[args.objective][0][0]]
    rows, ev = evaluate_run(run_dir, plan, args.guidance, 1000, args.inception, args.data,
                            compile=not args.smoke, time_budget=budget, out=grids, quiet=True)
    res["eval"] = rows
    write_table(rows, args.out, f"{args.objective}_eval")
    sweep = []
    if args.guidance_sweep:
        left = max(1.0, budget - (time.perf_counter() - t))
        sweep_plan = [(sampler, k, 40 if args.smoke else n) for sampler, k, n in SWEEP_PLANS[args.objective]]
        sweep, _ = evaluate_run(run_dir, sweep_plan, parse_weights(args.guidance_sweep), 1000, args.inception,
                                args.data, evaluator=ev, compile=not args.smoke, time_budget=left, quiet=True)
        res["guidance_sweep"] = sweep
        write_table(sweep, args.out, f"{args.objective}_guidance")
    res["eval_seconds"] = time.perf_counter() - t
    for sampler, k, _ in PLANS[args.objective][:3]:
        grid = grids / f"{run_dir.name}_{sampler}_{k}.png"
        if grid.exists() and k in (1, 2, 4):
            shutil.copy(grid, args.out / grid.name)
    (args.out / f"bench_imm_{args.objective}.json").write_text(json.dumps(res, indent=1, default=str))
    lines = [f"device {res['device']}, {args.objective}, guidance {args.guidance}",
             markdown_table(rows, ["sampler", "steps", "nfe", "n", "fid", "kid", "fid_clf", "class_acc",
                                   "seconds_per_image", "skipped"])]
    if sweep:
        lines += ["\nby guidance weight:",
                  markdown_table(sweep, ["sampler", "steps", "guidance", "nfe", "n", "fid", "kid", "fid_clf", "class_acc",
                                         "skipped"])]
    if "step_time" in res:
        st = res["step_time"]
        lines.append(f"\nstep time (batch 256): fm {st['fm']['step_ms']:.1f} ms ({st['fm']['images_per_s']:.0f} img/s), "
                     f"imm {st['imm']['step_ms']:.1f} ms ({st['imm']['images_per_s']:.0f} img/s), imm/fm {st['imm_over_fm']:.2f}")
    if "train" in res:
        lines.append(f"training: {res['train'].get('step')} steps in {res['train'].get('train_seconds', 0):.0f}s")
    text = "\n".join(lines)
    (args.out / f"bench_imm_{args.objective}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
