#!/usr/bin/env python
"""Evaluate an image run over a list of step counts and samplers; write a table (CSV and JSON).

  python scripts/eval_images.py --run-dir runs/imm-mnist --steps 1,2,4,8 --n 10000 --guidance 1.5 \
      --inception ../shared/data/fid_inception_v3_fp16.pt --out results/imm_mnist

Quality: FID/KID (Inception when --inception is given, and always the project's classifier
features), class accuracy of class-conditional samples. Cost: NFE per image, wall time per image at
the stated batch size, peak GPU memory.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from core.device import autocast, pick_device, pick_dtype  # noqa: E402
from core.errors import friendly_errors  # noqa: E402
from core.loading import load_run  # noqa: E402
from modalities.image_data import load_image_sets  # noqa: E402
from modalities.image_eval import ImageEvaluator, save_grid  # noqa: E402
from samplers.image_common import options_text  # noqa: E402
from samplers.imm import grid_options, grid_steps  # noqa: E402
from objectives import get_objective  # noqa: E402
from scripts.tables import write_csv  # noqa: E402

COLUMNS = ["run", "objective", "sampler", "options", "steps", "nfe", "guidance", "n", "batch", "fid", "kid", "fid_clf", "kid_clf",
           "class_acc", "seconds_per_image", "peak_mem_gb", "skipped"]


def trained_image_size(cfg, spec) -> int:
    """The size a run's images were trained (and so are scored) at."""
    return cfg.data.image_size or spec.image_size


def run_evaluator(cfg, spec, device, inception: str = "", data: str = "") -> ImageEvaluator:
    """An evaluator over the run's dataset (or ``data``) at the run's training size."""
    source = data or (cfg.data.eval_path if cfg.objective.name == "mixed" else cfg.data.path)
    train, test = load_image_sets(source, trained_image_size(cfg, spec), cfg.data.image_pad_value)
    return ImageEvaluator(train, test, device, inception)


def evaluate_run(run_dir: Path, settings: list[tuple[str, int, int]], guidance: float | list[float], batch: int,
                 inception: str = "", data: str = "", device: str = "auto", seed: int = 0, out: Path | None = None,
                 evaluator: ImageEvaluator | None = None, compile: bool = False, time_budget: float = 0.0,
                 quiet: bool = False, **sampler_options) -> tuple[list[dict], ImageEvaluator]:
    """settings: (sampler, steps, n) triples, in order; a sampler of "" means the run's default.
    ``guidance``: one weight, or several: every setting at each weight in turn (the run is loaded
    and compiled once). With a time budget, settings that would start after it are skipped (and
    listed as skipped). ``sampler_options`` go to every sampler (e.g. spacing="edm" for the IMM samplers)."""
    weights = guidance if isinstance(guidance, (list, tuple)) else [guidance]
    dev = pick_device(device)
    cfg, spec, model, ckpt = load_run(run_dir, device=dev)
    objective = get_objective(cfg.objective.name)(cfg.objective, spec)
    if compile:
        model.compile_regions()
    if evaluator is None:
        evaluator = run_evaluator(cfg, spec, dev, inception, data)
    captions = None
    if cfg.objective.name == "mixed":
        from modalities.shard_writer import caption_of
        from modalities.tokenizers import load_tokenizer

        captions = (load_tokenizer(Path(run_dir)), caption_of)
        if not (data or cfg.data.eval_path) and cfg.data.path:
            raise ValueError(f"{run_dir} trained on shards: pass --data with labelled images to score its samples")
    rows, t0 = [], time.perf_counter()
    plan = [(w, *setting) for w in weights for setting in settings]
    for guidance, sampler, k, n in tqdm(plan, desc=f"eval {Path(run_dir).name}", disable=quiet):
        sampler = sampler or objective.default_sampler
        base = {"run": str(run_dir), "objective": cfg.objective.name, "sampler": sampler,
                "options": options_text(sampler_options), "steps": k,
                "guidance": guidance, "n": n, "batch": batch}
        if time_budget and time.perf_counter() - t0 > time_budget:
            rows.append({**base, "skipped": "time budget"})
            continue
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with autocast(dev, pick_dtype("auto", dev)):
            gen = evaluator.generate(model, objective, sampler, k, guidance, n, seed, batch, cfg.objective.name, captions,
                                     **sampler_options)
        row = {**base, "nfe": gen["nfe"], **evaluator.score(gen["images"], gen["labels"]),
               "seconds_per_image": gen["seconds_per_image"],
               "peak_mem_gb": torch.cuda.max_memory_allocated() / 1e9 if dev.type == "cuda" else None}
        rows.append(row)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            save_grid(gen["images"][:100], out / f"{Path(run_dir).name}_{sampler}_{k}.png")
        if not quiet:
            tqdm.write(" ".join(f"{c}={row.get(c)}" for c in ("sampler", "steps", "nfe", "fid", "fid_clf", "class_acc")))
    return rows, evaluator


def parse_weights(text: str) -> list[float]:
    """"1.5" or "1,1.25,1.5" -> guidance weights."""
    try:
        weights = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"guidance weights must be numbers separated by commas, got {text!r}") from None
    if not weights or min(weights) < 0:
        raise SystemExit(f"need at least one guidance weight >= 0, got {text!r}")
    return weights


def write_table(rows: list[dict], out: Path, name: str = "eval") -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / f"{name}.csv", COLUMNS)
    (out / f"{name}.json").write_text(json.dumps(rows, indent=1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, action="append", required=True, help="repeat for several runs")
    p.add_argument("--steps", default=None, help="comma-separated step counts (default 1,2,4,8; with --times, its own)")
    p.add_argument("--samplers", default="", help="comma-separated sampler names (default: each run's own)")
    p.add_argument("--n", type=int, default=10000, help="samples per setting (classes in equal shares)")
    p.add_argument("--guidance", default="1.5", help="guidance weight, or comma-separated weights to sweep (1 = off)")
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--inception", default="", help="TorchScript Inception-v3 file for FID")
    p.add_argument("--data", default="", help="dataset path if the run's own path does not resolve here")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="compile the model's blocks first (GPU)")
    p.add_argument("--spacing", choices=["uniform", "edm"], default=None,
                   help="IMM samplers' time grid for >= 4 steps (default: the sampler's, uniform in t)")
    p.add_argument("--times", default=None,
                   help="IMM samplers: an explicit time grid, N + 1 decreasing times for N steps, e.g. 0.994/0.75/0.5/0.25/0.006")
    p.add_argument("--out", type=Path, default=Path("results/eval"))
    args = p.parse_args()
    options = grid_options(args.spacing, args.times)
    if args.steps:
        steps = [int(s) for s in args.steps.split(",")]
    else:  # an explicit grid fixes its own step count
        steps = [grid_steps(args.times)] if args.times else [1, 2, 4, 8]
    samplers = [s for s in args.samplers.split(",") if s] or [""]
    settings = [(s, k, args.n) for s in samplers for k in steps]
    t0 = time.perf_counter()
    weights = parse_weights(args.guidance)
    rows, ev = [], None
    with friendly_errors():
        for run in args.run_dir:
            r, ev = evaluate_run(run, settings, weights, args.batch, args.inception, args.data, args.device,
                                 args.seed, args.out, evaluator=ev, compile=args.compile, **options)
            rows += r
    write_table(rows, args.out)
    print(f"wrote {args.out / 'eval.csv'} and eval.json ({len(rows)} rows) in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
