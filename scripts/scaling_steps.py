#!/usr/bin/env python
"""Quality against inference compute along refinement steps: IMM vs flow matching vs mixed.

  python scripts/scaling_steps.py --run-dir runs/imm-mnist --run-dir runs/fm-mnist --steps 1,2,4,8,16,32,64 \
      --n 10000 --inception fid_inception_v3_fp16.pt --data mnist.npz --out results/scaling_steps
  python scripts/scaling_steps.py --from-csv results/gpu/imm_eval.csv --from-csv results/gpu/fm_eval.csv --out ...

Writes steps.csv (one row per run, sampler and step count: quality, NFE, seconds per image at the
stated batch, peak memory), steps.png (quality vs NFE, log x, with the Pareto front) and ratios.json
(for each step count of the first method, the fewest NFE another method needs to match its quality).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.errors import friendly_errors  # noqa: E402
from scripts.tables import read_csv, write_csv  # noqa: E402

PLOT_COLUMNS = ("method", "nfe", "quality")
SAMPLERS_BY_OBJECTIVE = {"imm": ["imm_pushforward", "imm_restart"], "fm": ["euler", "heun"], "mixed": ["caption_to_image"]}


def quality_key(rows: list[dict]) -> str:
    """FID (Inception) when every row has it, else FID on the project's classifier features."""
    return "fid" if rows and all(_num(r.get("fid")) is not None for r in rows) else "fid_clf"


def _num(v):
    try:
        f = float(v)
        return None if math.isnan(f) else f
    except (TypeError, ValueError):
        return None


def objective_of(row: dict) -> str:
    """The row's objective, or the one objective its sampler serves (diagnose_fid's earlier CSVs lack it)."""
    if row.get("objective"):
        return row["objective"]
    from samplers import get_sampler

    served = getattr(get_sampler(row["sampler"]), "objectives", set())
    return next(iter(served)) if len(served) == 1 else "?"


def method_labels(rows: list[dict]) -> list[str]:
    """objective/sampler, plus the run, the weights (EMA or raw), the sampler options and the guidance weight
    where rows of one objective/sampler differ in them: one line per run and weight, never two runs joined
    into one curve."""
    base = [f"{objective_of(r)}/{r['sampler']}" for r in rows]
    varying = {b: [k for k in ("run", "weights", "options", "guidance")
                   if len({str(r.get(k) or "") for bb, r in zip(base, rows) if bb == b}) > 1]
               for b in set(base)}
    labels = []
    for b, r in zip(base, rows):
        extra = [f"w={_num(r[k]):g}" if k == "guidance" else str(r[k]) for k in varying[b] if r.get(k) not in (None, "")]
        labels.append(b + (f" ({', '.join(extra)})" if extra else ""))
    return labels


def normalise(rows: list[dict]) -> list[dict]:
    """Measured rows only, with method = objective/sampler (see method_labels), numbers parsed and the
    plotted quality."""
    rows = [r for r in rows if not r.get("skipped") and _num(r.get("nfe")) is not None]
    key = quality_key(rows)
    out = []
    for r, method in zip(rows, method_labels(rows)):
        out.append({**r, "objective": objective_of(r), "method": method, "nfe": int(float(r["nfe"])),
                    "steps": int(float(r["steps"])), "quality": _num(r.get(key)), "quality_metric": key})
    return sorted(out, key=lambda r: (r["method"], r["nfe"]))


def pareto(rows: list[dict]) -> list[dict]:
    """Points no other point beats on both NFE and quality (lower is better for both)."""
    best, front = math.inf, []
    for r in sorted(rows, key=lambda r: (r["nfe"], r["quality"])):
        if r["quality"] < best:
            front.append(r)
            best = r["quality"]
    return front


def nfe_ratios(rows: list[dict], reference_method: str) -> list[dict]:
    """For each point of reference_method, the fewest NFE each other method needs to reach its quality."""
    out = []
    methods = sorted({r["method"] for r in rows} - {reference_method})
    for ref in (r for r in rows if r["method"] == reference_method):
        for m in methods:
            hits = [r for r in rows if r["method"] == m and r["quality"] <= ref["quality"]]
            need = min((r["nfe"] for r in hits), default=None)
            out.append({"reference": reference_method, "reference_steps": ref["steps"], "reference_nfe": ref["nfe"],
                        "quality": ref["quality"], "other": m, "other_nfe_to_match": need,
                        "ratio": need / ref["nfe"] if need else None})
    return out


def without_sampler_options(rows: list[dict]) -> list[dict]:
    """The rows measured with each sampler's own time grid (no ``options`` such as spacing or times)."""
    return [r for r in rows if not r.get("options")]


def at_guidance(rows: list[dict], weight: float) -> list[dict]:
    """The rows measured at this guidance weight (CSV values are text: compared as numbers)."""
    return [r for r in rows if r.get("guidance") not in (None, "") and float(r["guidance"]) == weight]


def plot(rows: list[dict], front: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for method in sorted({r["method"] for r in rows}):
        pts = [r for r in rows if r["method"] == method]
        ax.plot([r["nfe"] for r in pts], [r["quality"] for r in pts], "o-", label=method)
    ax.step([r["nfe"] for r in front], [r["quality"] for r in front], "k--", where="post", lw=1, label="Pareto front")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("network evaluations per image (NFE)")
    ax.set_ylabel(rows[0]["quality_metric"].upper().replace("_CLF", " (classifier features)") + " (lower is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(rows: list[dict], out: Path, reference: str | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rows = normalise(rows)
    if not rows:
        from core.config import ConfigError

        raise ConfigError("no measured rows to plot (every setting was skipped or the CSVs are empty)")
    cols = ["method", "objective", "sampler", "steps", "nfe", "quality", "quality_metric", "fid", "kid", "fid_clf",
            "kid_clf", "class_acc", "seconds_per_image", "batch", "peak_mem_gb", "n", "guidance", "run"]
    write_csv(rows, out / "steps.csv", cols)
    front = pareto(rows)
    plot(rows, front, out / "steps.png")
    reference = reference or next((r["method"] for r in rows if r["objective"] == "imm"), rows[0]["method"])
    ratios = nfe_ratios(rows, reference)
    summary = {"quality_metric": rows[0]["quality_metric"], "pareto": [(r["method"], r["steps"], r["nfe"], r["quality"]) for r in front],
               "ratios": ratios}
    (out / "ratios.json").write_text(json.dumps(summary, indent=1))
    return summary


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, action="append", default=[], help="an image run (repeatable)")
    p.add_argument("--from-csv", type=Path, action="append", default=[], help="rows measured before (eval CSVs)")
    p.add_argument("--steps", default="1,2,4,8,16,32,64")
    p.add_argument("--samplers", default="", help="comma-separated; default: every sampler of each run's objective")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--guidance", type=float, default=1.5)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--inception", default="")
    p.add_argument("--data", default="", help="labelled images to score against, if the runs' own paths do not resolve")
    p.add_argument("--reference", default="", help="method whose steps the ratios are measured against")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--default-grids-only", action="store_true",
                   help="leave out CSV rows measured with sampler options (spacing=edm, explicit times=...)")
    p.add_argument("--csv-guidance", type=float, default=None,
                   help="keep only the CSV rows measured at this guidance weight (e.g. 1: no guidance)")
    p.add_argument("--out", type=Path, default=Path("results/scaling_steps"))
    args = p.parse_args()
    rows = [r for path in args.from_csv for r in read_csv(path)]
    if args.default_grids_only:
        rows = without_sampler_options(rows)
    if args.csv_guidance is not None:
        rows = at_guidance(rows, args.csv_guidance)
    with friendly_errors():
        if args.run_dir:
            from core.config import load_saved_config
            from objectives import get_objective
            from scripts.eval_images import evaluate_run

            steps = [int(s) for s in args.steps.split(",")]
            for run in args.run_dir:
                name = load_saved_config(run / "config.yaml", get_objective).objective.name
                samplers = [s for s in args.samplers.split(",") if s] or SAMPLERS_BY_OBJECTIVE.get(name, [""])
                settings = [(s, k, args.n) for s in samplers for k in steps]
                r, _ = evaluate_run(run, settings, args.guidance, args.batch, args.inception, args.data, compile=args.compile)
                rows += r
        summary = write(rows, args.out, args.reference or None)
    print(f"wrote {args.out}/steps.csv, steps.png, ratios.json (quality: {summary['quality_metric']})")
    for r in summary["ratios"]:
        if r["ratio"]:
            print(f"{r['reference']} at {r['reference_steps']} steps ({r['reference_nfe']} NFE, {r['quality']:.2f}): "
                  f"{r['other']} needs {r['other_nfe_to_match']} NFE ({r['ratio']:.1f}x)")


if __name__ == "__main__":
    main()
