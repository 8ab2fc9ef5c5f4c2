"""scripts/bench_torchrun.py on a CPU (--smoke, gloo): every launcher trains the same configured run, and --set
reaches all of them. An empty --mnist trains on the embedded digits."""
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_torchrun import steady  # noqa: E402


def test_steady_is_the_median_of_the_second_half():
    assert steady([1.0, 100.0, 5.0, 7.0, 6.0]) == 6.0  # the first windows (compilation) never count


def test_set_overrides_reach_every_launcher(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("unused by the imm runs\n")
    work, out = tmp_path / "work", tmp_path / "out"
    subprocess.run([sys.executable, str(ROOT / "scripts/bench_torchrun.py"), "--smoke", "--objectives", "imm",
                    "--text", str(text), "--mnist", "", "--nproc", "1", "--set", "train.steps=10", "train.batch_size=4",
                    "--work", str(work), "--out", str(out)], check=True, cwd=ROOT, capture_output=True, text=True)
    results = json.loads((out / "bench_torchrun.json").read_text())
    assert set(results) == {"imm/python", "imm/torchrun_ddp_x1", "imm/torchrun_ddp_x1_over_python"}
    for label in ("python", "torchrun_ddp_x1"):
        run = work / f"imm_{label}_0"
        train = yaml.safe_load((run / "config.yaml").read_text())["train"]
        assert (train["steps"], train["batch_size"]) == (10, 4)  # the smoke settings said 20 and 8
        logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert max(r["step"] for r in logged) == 10
