"""train.py end to end: bad input is refused clearly and loses nothing; resume is exact."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train

ROOT = Path(__file__).resolve().parent.parent
TINY = ["model.n_layer=1", "model.d_model=32", "model.n_head=2", "data.tokenizer=byte", "data.seq_len=16",
        "train.batch_size=4", "train.eval_batches=2", "sample.max_new_tokens=8", "sample.num_samples=1"]


def run_main(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        train.main(list(argv) + ["--quiet"])
    return e.value.code, capsys.readouterr().err


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text("the quick brown fox jumps over the lazy dog\n" * 60)
    return p


@pytest.mark.parametrize("content,expected", [
    (b"", "is empty"),
    (b"   \n\n", "is empty"),
    (b"caf\xe9 au lait" * 100, "not UTF-8"),
    (b"short text", "fewer than data.seq_len"),
])
def test_bad_text_files(tmp_path, capsys, content, expected):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    run = tmp_path / "run"
    code, err = run_main(capsys, "--objective", "ar", "--data", str(bad), "--run-dir", str(run), *TINY)
    assert code == 2 and expected in err
    assert not run.exists()  # nothing half-made left behind


def test_vocab_larger_than_corpus_supports(tmp_path, capsys, text_file):
    code, err = run_main(capsys, "--objective", "ar", "--data", str(text_file), "--run-dir", str(tmp_path / "r"),
                         "data.tokenizer=sentencepiece", "data.vocab_size=5000", "data.seq_len=16")
    assert code == 2 and "more than this corpus supports" in err


def test_unknown_key_and_objective(tmp_path, capsys):
    code, err = run_main(capsys, "--objective", "ar", "--run-dir", str(tmp_path / "r"), "train.batchsize=3")
    assert code == 2 and "train.batch_size" in err
    code, err = run_main(capsys, "--objective", "autoregressive", "--run-dir", str(tmp_path / "r"))
    assert code == 2 and "Registered objectives: " in err and "ar" in err


def test_cuda_graphs_without_compile_is_refused(tmp_path, capsys):
    run = tmp_path / "r"
    code, err = run_main(capsys, "--objective", "ar", "--run-dir", str(run), *TINY, "train.cuda_graphs=true")
    assert code == 2 and "train.compile=true" in err
    assert not run.exists()


def test_existing_run_dir_is_not_touched(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "precious.txt").write_text("keep me")
    code, err = run_main(capsys, "--objective", "ar", "--run-dir", str(run), *TINY)
    assert code == 2 and "--resume" in err
    assert [p.name for p in run.iterdir()] == ["precious.txt"] and (run / "precious.txt").read_text() == "keep me"


def _cmd(*args):
    return [sys.executable, str(ROOT / "train.py"), "--quiet", *args]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _weights(run: Path) -> dict:
    last = sorted((run / "ckpt").glob("step_*"))[-1]
    out = {f"model.{k}": v for k, v in load_file(str(last / "model.safetensors")).items()}
    out.update({f"optim.{k}": v for k, v in load_file(str(last / "optim.safetensors")).items()})
    if (last / "ema.safetensors").exists():
        out.update({f"ema.{k}": v for k, v in load_file(str(last / "ema.safetensors")).items()})
    return out


def assert_bitwise_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


RESUME_ARGS = TINY + ["model.dropout=0.1", "train.grad_accum=2", "train.ema=0.9", "train.lr_decay_steps=24",
                      "train.warmup=4", "train.eval_every=6", "train.ckpt_every=6", "train.log_every=3"]


def test_half_resume_half_is_bitwise_identical(tmp_path, text_file):
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ["--objective", "ar", "--data", str(text_file)]
    subprocess.run(_cmd(*common, "--run-dir", str(straight), *RESUME_ARGS, "train.steps=24"), check=True, env=_env())
    subprocess.run(_cmd(*common, "--run-dir", str(split), *RESUME_ARGS, "train.steps=12"), check=True, env=_env())
    subprocess.run(_cmd("--run-dir", str(split), "--resume", "train.steps=24"), check=True, env=_env())
    assert_bitwise_equal(_weights(straight), _weights(split))
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # one continuous log


def test_sigkill_mid_run_then_resume_is_bitwise_identical(tmp_path, text_file):
    args = ["--objective", "ar", "--data", str(text_file), *TINY, "model.dropout=0.1", "train.steps=300",
            "train.ckpt_every=20", "train.eval_every=0", "train.keep_ckpts=0", "train.batch_size=16"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    proc = subprocess.Popen(_cmd(*args, "--run-dir", str(killed)), env=_env())
    deadline = time.time() + 120
    while not (killed / "ckpt" / "step_0000040").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in (killed / "ckpt").glob("step_*"))
    assert "step_0000300" not in done, "killed too late to test anything"
    subprocess.run(_cmd("--run-dir", str(killed), "--resume"), check=True, env=_env())
    subprocess.run(_cmd(*args, "--run-dir", str(straight)), check=True, env=_env())
    assert_bitwise_equal(_weights(straight), _weights(killed))


def test_sigterm_stops_at_a_step_saves_and_resumes_bitwise_identical(tmp_path, text_file):
    """No periodic checkpoints: the only one before the end is the one the signal makes."""
    args = ["--objective", "ar", "--data", str(text_file), *TINY, "model.dropout=0.1", "train.steps=300",
            "train.ckpt_every=0", "train.eval_every=0", "train.log_every=10", "train.batch_size=16"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    proc = subprocess.Popen(_cmd(*args, "--run-dir", str(stopped)), env=_env(), stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (stopped / "metrics.jsonl").exists() or not (stopped / "metrics.jsonl").read_text():
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be signalled"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate()[0]
    assert proc.returncode == 128 + signal.SIGTERM, out
    saved = sorted(p.name for p in (stopped / "ckpt").glob("step_*"))
    assert len(saved) == 1 and saved[0] != "step_0000300", "signalled too late to test anything"
    assert f"SIGTERM at step {int(saved[0][5:])}" in out and "--resume" in out
    subprocess.run(_cmd("--run-dir", str(stopped), "--resume"), check=True, env=_env())
    subprocess.run(_cmd(*args, "--run-dir", str(straight)), check=True, env=_env())
    assert_bitwise_equal(_weights(straight), _weights(stopped))


def test_resume_from_truncated_checkpoint_is_refused(tmp_path, capsys, text_file):
    run = tmp_path / "r"
    subprocess.run(_cmd("--objective", "ar", "--data", str(text_file), "--run-dir", str(run), *TINY,
                        "train.steps=4", "train.ckpt_every=2", "train.eval_every=0"), check=True, env=_env())
    latest = run / "ckpt" / "step_0000004" / "model.safetensors"
    latest.write_bytes(latest.read_bytes()[:64])
    before = sorted(str(p) for p in run.rglob("*"))
    code, err = run_main(capsys, "--run-dir", str(run), "--resume")
    assert code == 2 and "truncated" in err and "step_0000002" in err
    assert sorted(str(p) for p in run.rglob("*")) == before


def test_profile_steps_write_a_table_and_leave_training_unchanged(tmp_path, text_file):
    """Profiling observes steps; it must not change what they compute."""
    common = ["--objective", "ar", "--data", str(text_file), "--quiet", *TINY, "train.steps=8", "train.log_every=2",
              "train.eval_every=0", "train.ckpt_every=0"]
    train.main([*common, "--run-dir", str(tmp_path / "plain")])
    train.main([*common, "--run-dir", str(tmp_path / "profiled"), "train.profile_steps=3"])
    text = (tmp_path / "profiled" / "profile.md").read_text()
    assert "Profile of 3 training steps" in text and "| `aten::" in text
    assert not (tmp_path / "plain" / "profile.md").exists()
    assert_bitwise_equal(_weights(tmp_path / "plain"), _weights(tmp_path / "profiled"))


def test_decay_by_time_anneals_a_time_limited_run(tmp_path, text_file):
    """A run limited to 3 s of a 100,000-step schedule ends at min_lr with decay_by=time."""
    import json
    run = tmp_path / "r"
    summary = train.main(["--objective", "ar", "--data", str(text_file), "--run-dir", str(run), "--quiet", *TINY,
                          "train.steps=100000", "train.time_limit=3", "train.decay_by=time", "train.warmup=2",
                          "train.lr=1e-3", "train.min_lr=1e-4", "train.log_every=1", "train.eval_every=0",
                          "train.ckpt_every=0"])
    assert summary["stop"] == "time_limit" and summary["step"] < 100000
    lrs = [r["train/lr"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "train/lr" in r]
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))  # decays monotonically after warmup
    assert lrs[-1] < 1e-4 + 0.02 * (1e-3 - 1e-4)  # annealed: by steps alone it would still be ~1e-3
    again = train.main(["--run-dir", str(run), "--resume", "--quiet"])  # its budget is spent: nothing to train
    assert again["stop"] == "time_limit" and again["step"] == summary["step"]


def test_untimed_steps_leave_compilation_out_of_the_time_budget(tmp_path, text_file, capsys):
    """The first untimed_steps steps of each process add nothing to train_seconds, and only those."""
    common = ["--objective", "ar", "--data", str(text_file), "--quiet", *TINY, "train.log_every=1",
              "train.eval_every=0", "train.ckpt_every=3"]
    none = train.main([*common, "--run-dir", str(tmp_path / "a"), "train.steps=3", "train.untimed_steps=3"])
    assert none["step"] == 3 and none["train_seconds"] == 0.0
    some = train.main([*common, "--run-dir", str(tmp_path / "b"), "train.steps=3", "train.untimed_steps=2"])
    assert some["train_seconds"] > 0.0
    # a resumed process compiles again: its own first steps are untimed too
    resumed = train.main([*common, "--run-dir", str(tmp_path / "a"), "--resume", "train.steps=6", "train.untimed_steps=3"])
    assert resumed["step"] == 6 and resumed["train_seconds"] == 0.0
    code, err = run_main(capsys, *common, "--run-dir", str(tmp_path / "c"), "train.steps=3", "train.untimed_steps=-1")
    assert code == 2 and "untimed_steps must be >= 0" in err
