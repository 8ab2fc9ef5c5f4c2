#!/usr/bin/env python
"""The results report: quality vs refinement steps (image runs) and cost/quality vs sequence length
(text runs), as one markdown file with its plots and tables.

  python scripts/report.py --image-run runs/imm-mnist --image-run runs/fm-mnist --text-run runs/ar-shakespeare \
      --n 10000 --inception fid_inception_v3_fp16.pt --data mnist.npz --out results/report
  python scripts/report.py --from-csv results/gpu/imm_eval.csv --from-csv results/gpu/fm_eval.csv --out results/report
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from core.errors import friendly_errors  # noqa: E402
from scripts import scaling_seqlen, scaling_steps  # noqa: E402
from scripts.tables import markdown_table as table, read_csv  # noqa: E402


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-run", type=Path, action="append", default=[])
    p.add_argument("--from-csv", type=Path, action="append", default=[], help="image rows measured before")
    p.add_argument("--text-run", type=Path, action="append", default=[])
    p.add_argument("--steps", default="1,2,4,8,16,32,64")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--guidance", type=float, default=1.5)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--inception", default="")
    p.add_argument("--data", default="")
    p.add_argument("--cost-size", default="gpt2-124m", help="model size (random weights) for the decode cost table")
    p.add_argument("--cost-contexts", default="256,1024,4096")
    p.add_argument("--new-tokens", type=int, default=32, help="tokens generated per decode measurement")
    p.add_argument("--backends", default="sdpa,flex,flash_attn,xformers",
                   help="attention backends to time (those usable here); sdpa_compiled: the ar_compiled sampler")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--out", type=Path, default=Path("results/report"))
    args = p.parse_args()
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    parts = [f"# Scaling report\n\nDevice: {device_name()}; torch {torch.__version__}.\n\nCommand: `{' '.join(sys.argv)}`\n"]
    with friendly_errors():
        rows = [r for path in args.from_csv for r in read_csv(path)]
        if args.image_run:
            from scripts.eval_images import evaluate_run

            steps = [int(s) for s in args.steps.split(",")]
            for run in args.image_run:
                from core.config import load_saved_config
                from objectives import get_objective

                name = load_saved_config(run / "config.yaml", get_objective).objective.name
                settings = [(s, k, args.n) for s in scaling_steps.SAMPLERS_BY_OBJECTIVE.get(name, [""]) for k in steps]
                r, _ = evaluate_run(run, settings, args.guidance, args.batch, args.inception, args.data,
                                    compile=args.compile, quiet=True)
                rows += r
        if rows:
            summary = scaling_steps.write(rows, args.out / "steps")
            measured = read_csv(args.out / "steps" / "steps.csv")
            parts.append("## Quality vs refinement steps\n\n![quality vs NFE](steps/steps.png)\n\n"
                         + table(measured, ["method", "steps", "nfe", "quality", "class_acc", "seconds_per_image", "n"])
                         + f"\n\nQuality: {summary['quality_metric']} (lower is better).\n\nNFE to match the reference's quality:\n\n"
                         + table(summary["ratios"], ["reference", "reference_steps", "reference_nfe", "quality", "other",
                                                     "other_nfe_to_match", "ratio"]) + "\n")
        runs = [None, *args.text_run]  # cost at --cost-size first, then each text run's own model
        for i, run in enumerate(runs):
            sub = args.out / f"seqlen{i}"
            res = scaling_seqlen.run(run, args.cost_size, [int(c) for c in args.cost_contexts.split(",")], None,
                                     args.backends.split(","), args.new_tokens, 1, "auto", sub)
            title = run.name if run else f"{args.cost_size} (random weights, cost only)"
            parts.append(f"## Sequence length: {title}\n\n![cost](seqlen{i}/seqlen_cost.png)\n\n"
                         + table(res["cost"], ["backend", "cache", "context", "ms_per_token", "prefill_ms", "kv_cache_mb",
                                               "peak_mem_gb"])
                         + "\n\nLatency ratio, longest over shortest context: "
                         + ", ".join(f"{k} {v:.2f}" for k, v in sorted(res["latency_ratio_longest_over_shortest"].items())) + "\n")
            if res["quality"]:
                parts.append(f"![quality](seqlen{i}/seqlen_quality.png)\n\n" + table(res["quality"], scaling_seqlen.QUALITY_COLUMNS) + "\n")
    took = time.perf_counter() - t0
    parts.append(f"\nReport produced in {took:.0f} s.\n")
    (args.out / "report.md").write_text("\n".join(parts))
    print(f"wrote {args.out / 'report.md'} in {took:.0f} s")


if __name__ == "__main__":
    main()
