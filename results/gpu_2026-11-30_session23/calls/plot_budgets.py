"""FID against the training budget, the nineteenth session's four budgets (60-420 s) and this session's 920 s pair.
Run from the repository root; writes budgets.csv and budgets.png into results/gpu_2026-11-30_session23/."""
import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("budgets19", HERE.parent / "gpu_2026-11-30_session19/calls/plot_budgets.py")
budgets19 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(budgets19)

rows = [budgets19.budget_row(b, imm, fm) for b, (imm, fm) in sorted(budgets19.RUNS.items())]
rows.append(budgets19.budget_row(920, HERE / "call2/imm_920s", HERE / "call2/fm_920s"))
budgets19.write_table_and_plot(rows, HERE)
