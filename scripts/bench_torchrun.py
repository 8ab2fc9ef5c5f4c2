#!/usr/bin/env python
"""Overhead of the distributed path: the same training run under plain `python train.py` and under
`torchrun --nproc_per_node=N` (DDP, and FSDP2 with --fsdp), for the ar and imm objectives.

  python scripts/bench_torchrun.py --text tinyshakespeare.txt --mnist mnist.npz --out OUT
  python scripts/bench_torchrun.py --nproc 2 ...            # scaling over 1 GPU (needs 2 GPUs)
  python scripts/bench_torchrun.py --nproc 2 --objectives imm --set train.batch_size=1024   # any run's config

Throughput is the median of the logged samples/s over the second half of each run's log windows
(steady state: past compilation, clock ramp-up and any profiled steps), and with --repeats the
median over repeats that alternate the variants. --process-group adds plain
python inside a one-rank process group (torchrun's environment without its launcher), --gloo
torchrun with the gloo backend; together they say whether a gap comes from the launcher, the
process group or NCCL. --profile N writes each run's host/device profile of N steps to OUT.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.metrics_log import read_metrics  # noqa: E402

RUNS = {
    "ar": ["--objective", "ar", "model.size=gpt2-124m", "data.tokenizer=byte", "data.seq_len=1024", "train.batch_size=32",
           "train.compile=true", "train.steps=160", "train.log_every=20", "train.eval_every=0", "train.ckpt_every=0"],
    # a fixed step count, and no CUDA graphs (measured on one GPU only): the recipe's time budget and graphs off
    "imm": ["--objective", "imm", "--config", str(ROOT / "configs/imm_mnist.yaml"), "train.steps=300", "train.time_limit=0",
            "train.decay_by=steps", "train.cuda_graphs=false", "train.log_every=50", "train.eval_every=0", "train.ckpt_every=0"],
}


def window_speeds(run: Path) -> list[float]:
    """Logged samples/s of every log window of a run."""
    return [r["perf/samples_per_s"] for r in read_metrics(run) if "perf/samples_per_s" in r]


def steady(windows: list[float]) -> float:
    """Median over the second half of the windows: the first ones hold compilation, the GPU's clock
    ramp-up and (with --profile) the profiled steps."""
    return statistics.median(windows[len(windows) // 2:])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(cmd: list[str], env: dict) -> None:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", required=True)
    p.add_argument("--mnist", required=True)
    p.add_argument("--nproc", type=int, default=1)
    p.add_argument("--fsdp", action="store_true", help="also measure FSDP2")
    p.add_argument("--objectives", default="ar,imm")
    p.add_argument("--gloo", action="store_true", help="also torchrun with the gloo backend (isolates NCCL's cost)")
    p.add_argument("--process-group", action="store_true", help="also plain python inside a one-rank process group")
    p.add_argument("--repeats", type=int, default=1, help="alternate the variants this many times; medians")
    p.add_argument("--profile", type=int, default=0, metavar="STEPS", help="profile this many steps of every run")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_torchrun"))
    p.add_argument("--out", type=Path, default=Path("results/bench_torchrun"))
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides for every run, after the benchmark's own (e.g. train.batch_size=1024)")
    p.add_argument("--smoke", action="store_true", help="tiny settings for a CPU check")
    args = p.parse_args()
    env = {**os.environ, "NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}
    shutil.rmtree(args.work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profiles.md").unlink(missing_ok=True)
    small = ["model.size=tiny", "model.n_layer=1", "model.d_model=32", "model.n_head=2", "train.batch_size=8",
             "data.seq_len=32", "train.steps=20", "train.log_every=5", "train.compile=false", "data.image_size=0"] if args.smoke else []
    results = {}
    for name in args.objectives.split(","):
        data = args.text if name == "ar" else args.mnist
        # label -> (launcher, train.distributed, extra environment)
        variants = {"python": ("python", "ddp", {}), f"torchrun_ddp_x{args.nproc}": ("torchrun", "ddp", {})}
        if args.process_group:
            variants["python_process_group_x1"] = ("python", "ddp", {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
                                                                   "MASTER_ADDR": "127.0.0.1"})
        if args.fsdp:
            variants[f"torchrun_fsdp_x{args.nproc}"] = ("torchrun", "fsdp", {})
        if args.gloo:
            variants[f"torchrun_ddp_gloo_x{args.nproc}"] = ("torchrun", "ddp", {"TRAIN_DIST_BACKEND": "gloo"})
        base = [*RUNS[name], "--data", data, "--quiet", *([s for s in small if not (name == "ar" and "image" in s)
                                                             and not (name == "imm" and "seq_len" in s)])]
        if args.profile:
            base.append(f"train.profile_steps={args.profile}")
        base += args.set
        speeds: dict[str, list[float]] = {label: [] for label in variants}
        for rep in range(args.repeats):  # alternating, so drifts of the machine hit every variant alike
            for label, (launcher, mode, extra) in variants.items():
                run = args.work / f"{name}_{label}_{rep}"
                if launcher == "python":
                    cmd = [sys.executable, str(ROOT / "train.py"), "--run-dir", str(run), *base]
                    if extra:
                        extra = {**extra, "MASTER_PORT": str(free_port())}
                else:
                    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
                           str(ROOT / "train.py"), "--run-dir", str(run), *base, f"train.distributed={mode}"]
                launch(cmd, {**env, **extra})
                windows = window_speeds(run)
                speeds[label].append(steady(windows))
                print(f"{name} {label} (repeat {rep + 1}): {speeds[label][-1]:.1f} samples/s (all ranks); "
                      f"windows {' '.join(f'{w:.0f}' for w in windows)}", flush=True)
                if args.profile and (run / "profile.md").exists():  # one file for all runs
                    with open(args.out / "profiles.md", "a") as f:
                        f.write(f"\n# {name} {label} (repeat {rep + 1})\n\n{(run / 'profile.md').read_text()}\n")
        for label in variants:
            results[f"{name}/{label}"] = statistics.median(speeds[label])
        for label in variants:
            if label != "python":
                results[f"{name}/{label}_over_python"] = results[f"{name}/{label}"] / results[f"{name}/python"]
    (args.out / "bench_torchrun.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
