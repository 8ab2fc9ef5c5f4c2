#!/usr/bin/env python
"""Train any registered objective on the shared backbone.

  python train.py --objective ar                         # embedded defaults, runs on a CPU
  python train.py --objective ar --data corpus.txt data.tokenizer=byte train.steps=5000
  python train.py --run-dir runs/my-run --resume train.steps=4000   # continue (and extend) a run

SIGINT (Ctrl-C) or SIGTERM stops after the current step and saves a checkpoint that resumes exactly;
the learning-rate schedule and time limit count on from there (a second Ctrl-C stops at once).

Overrides are ``section.key=value`` (sections: objective, model, data, train, sample); every key
is checked. With no --config, configs/<objective>.yaml is the recipe.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from core import checkpoint as ckpt_lib  # noqa: E402
from core.config import ConfigError, apply_overrides, build_config, load_saved_config, save_config  # noqa: E402
from core.errors import friendly_errors  # noqa: E402
from core.run_dir import default_run_dir, open_run_dir  # noqa: E402
from core.stop_signal import STOP_SIGNALS  # noqa: E402
from objectives import get_objective, objective_names  # noqa: E402


STOP_NAMES = {s.name for s in STOP_SIGNALS}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objective", help=f"one of: {', '.join(objective_names())}")
    p.add_argument("--config", type=Path, help="YAML recipe (default: configs/<objective>.yaml)")
    p.add_argument("--data", help="data path (text file, .npz, image folder or shard pattern, by objective)")
    p.add_argument("--run-dir", type=Path, help="where the run lives (default: runs/<objective>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its latest checkpoint")
    p.add_argument("--resume-from", type=Path, help="continue from this checkpoint directory (implies --resume)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.steps=200")
    return p.parse_intermixed_args(argv)  # overrides may come before or after the options


def resolve(args) -> tuple:
    """-> (cfg, run_dir, created, checkpoint to resume from or None)."""
    resume = args.resume or args.resume_from is not None
    if resume:
        if args.run_dir is None:
            if args.resume_from is None:
                raise ConfigError("--resume needs --run-dir (the run to continue)")
            args.run_dir = args.resume_from.resolve().parent.parent
        if args.config is not None:
            raise ConfigError("--config cannot be combined with --resume: the run's own config.yaml is used")
        run_dir, created = open_run_dir(args.run_dir, resume=True)
        cfg = load_saved_config(run_dir / "config.yaml", get_objective)
        if args.objective and args.objective != cfg.objective.name:
            raise ConfigError(f"{run_dir} is a {cfg.objective.name!r} run, not {args.objective!r}")
        apply_overrides(cfg, args.overrides)
        if args.data:
            cfg.data.path = args.data
        ckpt = args.resume_from or _latest_checkpoint(run_dir)
        return cfg, run_dir, created, ckpt
    if not args.objective:
        raise ConfigError(f"choose an objective with --objective ({', '.join(objective_names())})")
    objective_cls = get_objective(args.objective)
    recipe = args.config or ROOT / "configs" / f"{args.objective}.yaml"
    files = [recipe] if Path(recipe).is_file() or args.config else []
    cfg = build_config(args.objective, objective_cls.Config, files, args.overrides)
    cfg.objective.name = args.objective
    if args.data:
        cfg.data.path = args.data
    run_dir, created = open_run_dir(args.run_dir or default_run_dir(args.objective), resume=False)
    return cfg, run_dir, created, None


def _latest_checkpoint(run_dir: Path) -> Path | None:
    found = ckpt_lib.list_checkpoints(run_dir / "ckpt")
    if not found:
        return None  # the run stopped before its first checkpoint: start it over in place
    latest = found[-1]
    try:
        ckpt_lib.verify(latest)
    except ckpt_lib.CheckpointError as e:
        prev = ckpt_lib.latest_valid_before(run_dir / "ckpt", latest)
        hint = f" The previous good one is {prev}: resume from it with --resume-from {prev}." if prev else ""
        raise ckpt_lib.CheckpointError(f"{e}.{hint}") from None
    return latest


def setup(args) -> tuple:
    """Rank 0 decides the run (config, directory, checkpoint) and tells the other ranks; a refusal
    on rank 0 ends every rank with the same exit code."""
    from core.config import config_from_dict
    from core.distributed import broadcast_object, start_process_group

    with friendly_errors():
        info = start_process_group()
    decision = None
    if info.is_main:
        try:
            with friendly_errors():
                cfg, run_dir, created, ckpt = resolve(args)
                if ckpt is None or args.overrides:
                    save_config(cfg, run_dir / "config.yaml")
            decision = ("ok", cfg.to_dict(), str(run_dir), created, str(ckpt) if ckpt else None)
        except SystemExit as e:
            broadcast_object(("exit", e.code))
            raise
    decision = broadcast_object(decision)
    if decision[0] == "exit":
        sys.exit(decision[1])
    _, cfg_dict, run_dir, created, ckpt = decision
    return config_from_dict(cfg_dict, get_objective), Path(run_dir), created and info.is_main, Path(ckpt) if ckpt else None


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg, run_dir, created, ckpt = setup(args)
    from core.trainer import Trainer

    try:
        with friendly_errors():
            trainer = Trainer(cfg, run_dir, ckpt, quiet=args.quiet)
    except SystemExit:
        if created:  # nothing was trained: leave no half-made run directory behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if trainer.dist.is_main:
        print(f"run directory: {run_dir}")
        print(f"model: {trainer.model.num_params() / 1e6:.2f}M parameters on {trainer.device} ({trainer.dtype})"
              + (f", {trainer.dist.world} ranks ({cfg.train.distributed})" if trainer.dist.world > 1 else ""))
        describe = getattr(trainer.task, "describe", None)
        if describe:
            print(describe())
        if ckpt is not None:
            print(f"resumed from {ckpt} at step {trainer.step}")
    with friendly_errors():
        summary = trainer.fit()
    if trainer.dist.is_main and summary["stop"] in STOP_NAMES:
        print(f"continue with: python train.py --run-dir {run_dir} --resume")
    elif trainer.dist.is_main:
        print(f"done: step {summary['step']}, " + ", ".join(
            f"{k} {v:.4g}" for k, v in summary.items() if isinstance(v, float)))
        print(f"samples in {run_dir / 'samples'}; sample more with: python sample.py --run-dir {run_dir}")
    from core.distributed import shutdown

    shutdown()
    return summary


def leave_torchrun_rank() -> None:
    """End a torchrun rank without interpreter finalization: objects torn down there can still own
    gloo worker threads, whose teardown aborted a rank that had finished and saved everything
    (SIGABRT, "terminate called without an active exception", seen in CI after shutdown())."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    stop = main()["stop"]
    if "RANK" in os.environ:
        leave_torchrun_rank()
    if stop in STOP_NAMES:  # stopped by a signal, checkpoint saved: the shell's 128 + signal number
        sys.exit(128 + signal.Signals[stop])
