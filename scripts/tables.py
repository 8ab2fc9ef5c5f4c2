"""Result tables of the scripts: CSV files in and out, and markdown for reports and benchmarks."""
from __future__ import annotations

import csv
from pathlib import Path


def write_csv(rows: list[dict], path: Path, columns: list[str]) -> None:
    """The given columns of each row (others ignored, missing ones empty)."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def read_csv(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _fmt(v) -> str:
    if v is None or v == "":
        return ""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return str(int(f)) if f.is_integer() and abs(f) < 1e15 else f"{f:.4g}"


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """Whole numbers as they are, others to 4 significant digits; a column a row lacks stays empty."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
