"""FID against the training budget (nineteenth session): IMM at 4 and 8 steps, flow matching's Euler at
8 / 16 / 32 steps, from the diagnose_fid tables of calls 2 and 3 (60, 120, 420 s) and the seventeenth
session's same-call pair at 240 s. Run from the repository root; writes budgets.csv and budgets.png into
results/gpu_2026-11-30_session19/."""
import csv
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent.parent
S17 = HERE.parent / "gpu_2026-11-30_session17" / "call2"
RUNS = {60: (HERE / "call2/imm_60s", HERE / "call2/fm_60s"), 120: (HERE / "call2/imm_120s", HERE / "call2/fm_120s"),
        240: (S17 / "imm_recipe", S17 / "fm_recipe"), 420: (HERE / "call3/imm_420s", HERE / "call3/fm_420s")}
CURVES = [("imm", "imm_pushforward", 4), ("imm", "imm_pushforward", 8), ("euler", "euler", 8), ("euler", "euler", 16),
          ("euler", "euler", 32)]


def fid(folder: Path, tag: str, sampler: str, steps: int) -> float:
    table = folder / f"diag_{tag}.csv"  # later sessions: diag_TAG/diagnose_fid.csv
    with open(table if table.exists() else folder / f"diag_{tag}" / "diagnose_fid.csv") as f:
        for row in csv.DictReader(f):
            if row["sampler"] == sampler and int(row["steps"]) == steps and not row.get("options"):
                return float(row["fid"])
    raise KeyError(f"{folder}: no {sampler} at {steps} steps")


def budget_row(budget: int, imm: Path, fm: Path) -> dict:
    return {"budget_s": budget, **{f"{s}_{n}": round(fid(imm if t == "imm" else fm, t, s, n), 3) for t, s, n in CURVES}}


def write_table_and_plot(rows: list[dict], out: Path) -> None:
    """budgets.csv and budgets.png in out."""
    with open(out / "budgets.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    for _, s, n in CURVES:
        ax.plot([r["budget_s"] for r in rows], [r[f"{s}_{n}"] for r in rows], "o-" if s.startswith("imm") else "s--",
                label=f"{'IMM' if s.startswith('imm') else 'flow matching, Euler'} {n} steps")
    ax.axhline(1.65, color="grey", lw=0.8, ls=":", label="train vs test floor (1.65)")
    ax.set(xlabel="training budget (s, H200)", ylabel="FID (Inception, N = 10,000)", yscale="log",
           xticks=[r["budget_s"] for r in rows], title="MNIST, 22M backbone, w = 1")
    ax.set_yticks([2, 3, 4, 6], labels=["2", "3", "4", "6"])
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "budgets.png", dpi=120)
    print((out / "budgets.csv").read_text())


if __name__ == "__main__":
    write_table_and_plot([budget_row(b, imm, fm) for b, (imm, fm) in sorted(RUNS.items())], HERE)
