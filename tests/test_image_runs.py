"""Image objectives end to end on the embedded digits: learning, sampling from a run, bad input."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def imm_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("imm") / "run"
    summary = train.main(["--objective", "imm", "--run-dir", str(run), "--quiet", "train.steps=1000",
                          "model.n_layer=4", "model.d_model=128", "model.n_head=4", "objective.k=6",
                          "train.eval_every=1000", "train.ckpt_every=1000", "train.ema=0", "train.warmup=50",
                          "sample.eval_images=300", "sample.num_samples=2"])
    return run, summary


def test_short_digits_run_learns(imm_run):
    run, summary = imm_run
    losses = [json.loads(line)["train/loss"] for line in (run / "metrics.jsonl").read_text().splitlines()
              if "train/loss" in line]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3])
    # 4-step samples, class-conditional with guidance 1.5, judged by the project's digits classifier
    assert summary["eval/nfe"] == 8 and summary["eval/class_acc"] > 0.5  # chance is 0.1
    assert (run / "samples" / "step_0001000.png").is_file()


def test_sample_py_writes_grid_and_npz(imm_run, tmp_path):
    run, _ = imm_run
    out = tmp_path / "grid.png"
    r = subprocess.run([sys.executable, str(ROOT / "sample.py"), "--run-dir", str(run), "--steps", "2", "--num", "20",
                        "--labels", "3,7", "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "NFE 4" in r.stdout and out.is_file()
    z = np.load(out.with_suffix(".npz"))
    assert z["images"].shape == (20, 1, 8, 8) and z["images"].dtype == np.uint8 and z["labels"].tolist() == [3, 7] * 10


def test_sample_py_explicit_time_grid(imm_run, explicit_grid_samples, capsys):
    """--times runs the grid it names: the uniform grid spelt out gives the default samples, bitwise,
    with the step count taken from it; another grid gives other samples; a wrong count is refused."""
    run, _ = imm_run
    images = explicit_grid_samples(run)
    capsys.readouterr()
    images(run, "three", "--times", "0.994/0.6/0.3/0.006")  # no --steps: the grid's own count, not the recipe's 4
    assert "3 steps, guidance 1.5, NFE 6" in capsys.readouterr().out
    r = subprocess.run([sys.executable, str(ROOT / "sample.py"), "--run-dir", str(run), "--steps", "4", "--times",
                        "0.994/0.5/0.006"], capture_output=True, text=True)
    assert r.returncode == 2 and "4 steps need 5 times" in r.stderr


def test_flow_sampler_on_imm_run_is_refused(imm_run):
    run, _ = imm_run
    r = subprocess.run([sys.executable, str(ROOT / "sample.py"), "--run-dir", str(run), "--sampler", "heun"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "trained with 'imm'" in r.stderr


@pytest.mark.parametrize("override,match", [("train.batch_size=30", "multiple of objective.M"),
                                             ("objective.k=0", "objective.k"), ("objective.T=1.5", "objective.T")])
def test_bad_imm_settings_exit_cleanly(tmp_path, capsys, override, match):
    run = tmp_path / "r"
    with pytest.raises(SystemExit) as e:
        train.main(["--objective", "imm", "--run-dir", str(run), "--quiet", override])
    assert e.value.code == 2 and match in capsys.readouterr().err and not run.exists()


@pytest.mark.parametrize("objective", ["imm", "fm"])
def test_image_run_half_resume_half_is_bitwise_identical(tmp_path, objective):
    """Label dropout, the (s, r, t) draws (IMM's with a k curriculum, which reads the training progress)
    and the EMA all continue exactly where a resumed run left off."""
    from tests.test_train_cli import _cmd, _env, _weights, assert_bitwise_equal

    args = ["--objective", objective, "model.n_layer=1", "model.d_model=32", "model.n_head=2", "train.batch_size=8",
            "train.ema=0.9", "train.warmup=2", "train.lr_decay_steps=12", "train.eval_every=0", "train.ckpt_every=6",
            "train.log_every=3", "sample.eval_images=0"]
    if objective == "imm":
        args += ["objective.k=6", "objective.k_end=10"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    subprocess.run(_cmd(*args, "--run-dir", str(straight), "train.steps=12"), check=True, env=_env())
    subprocess.run(_cmd(*args, "--run-dir", str(split), "train.steps=6"), check=True, env=_env())
    subprocess.run(_cmd("--run-dir", str(split), "--resume", "train.steps=12"), check=True, env=_env())
    assert_bitwise_equal(_weights(straight), _weights(split))
    if objective == "imm":  # k at the last step of each log window: 6 + 4 * step / 12
        logged = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
        assert [m["train/k"] for m in logged if "train/k" in m] == pytest.approx([6 + 4 * s / 12 for s in (2, 5, 8, 11)])
