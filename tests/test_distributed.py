"""torchrun on the CPU with gloo and 2 processes: DDP and FSDP2 reproduce a single process with the
same global batch; 2-rank checkpoints resume exactly and load in one process; a killed rank loses
nothing that was checkpointed; a signal to one rank stops every rank at one step."""
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core import checkpoint as ck

ROOT = Path(__file__).resolve().parent.parent
AR = ["--objective", "ar", "model.n_layer=1", "model.d_model=32", "model.n_head=2", "data.tokenizer=byte",
      "data.seq_len=16", "train.log_every=1", "train.eval_every=0", "train.ckpt_every=0"]
IMM = ["--objective", "imm", "model.n_layer=1", "model.d_model=32", "model.n_head=2", "train.log_every=1",
       "train.eval_every=0", "train.ckpt_every=0", "train.ema=0.9", "objective.M=4"]


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def single(run, *args, check=True):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), "--quiet", "--run-dir", str(run), *args],
                          env=env(), capture_output=True, text=True, check=check)


def torchrun_cmd(run, *args, nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            str(ROOT / "train.py"), "--quiet", "--run-dir", str(run), *args]


def ranks2(run, *args, check=True, nproc=2, timeout=None):
    with subprocess.Popen(torchrun_cmd(run, *args, nproc=nproc), env=env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:  # the workers hold the pipes: they go first, then torchrun
            for pid in [*children(proc.pid), proc.pid]:
                os.kill(pid, signal.SIGKILL)
            proc.communicate()
            raise AssertionError(f"torchrun did not finish in {timeout} s: the ranks wait on each other") from None
    r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check and r.returncode:
        raise AssertionError(r.stdout[-3000:] + r.stderr[-3000:])
    return r


def losses(run):
    import json

    return [json.loads(line)["train/loss"] for line in (run / "metrics.jsonl").read_text().splitlines()
            if "train/loss" in line]


def final_weights(run):
    last = ck.list_checkpoints(run / "ckpt")[-1]
    return {**{f"m.{k}": v for k, v in load_file(str(last / "model.safetensors")).items()},
            **{f"o.{k}": v for k, v in load_file(str(last / "optim.safetensors")).items()},
            **({f"e.{k}": v for k, v in load_file(str(last / "ema.safetensors")).items()}
               if (last / "ema.safetensors").exists() else {})}


def assert_close(a, b, exact=False):
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.parametrize("objective,mode", [("ar", "ddp"), ("ar", "fsdp"), ("imm", "ddp"), ("imm", "fsdp")])
def test_two_ranks_equal_one_process_with_the_same_global_batch(tmp_path, objective, mode):
    args = AR if objective == "ar" else IMM
    single(tmp_path / "one", *args, "train.steps=3", "train.batch_size=8")
    ranks2(tmp_path / "two", *args, "train.steps=3", "train.batch_size=4", f"train.distributed={mode}")
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == 3 and one[0] != one[2]
    for a, b in zip(one, two):
        assert b == pytest.approx(a, rel=1e-6)
    assert_close(final_weights(tmp_path / "one"), final_weights(tmp_path / "two"))


def test_time_limited_ranks_stop_together_and_anneal_by_time(tmp_path):
    """Each rank's clock differs: the ranks agree on the training time at log steps, so they stop at
    the same step (a rank that stopped alone would leave its peer waiting in a collective) and set the
    same decay_by=time learning rate."""
    import json

    run = tmp_path / "r"
    ranks2(run, *AR, "train.batch_size=4", "train.steps=100000", "train.time_limit=4", "train.decay_by=time",
           "train.warmup=2", "train.lr=1e-3", "train.min_lr=1e-4", "train.log_every=5", timeout=120)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stop"] == "time_limit" and summary["step"] % 5 == 0
    lrs = [json.loads(line)["train/lr"] for line in (run / "metrics.jsonl").read_text().splitlines() if "train/lr" in line]
    assert lrs[-1] < 1e-4 + 0.1 * (1e-3 - 1e-4)


def test_one_rank_under_torchrun_is_bitwise_a_plain_process(tmp_path):
    """At world 1 the process group exists but nothing is wrapped or communicated."""
    single(tmp_path / "one", *AR, "train.steps=3", "train.batch_size=8", "train.ckpt_every=3")
    ranks2(tmp_path / "tr", *AR, "train.steps=3", "train.batch_size=8", "train.ckpt_every=3", nproc=1)
    assert losses(tmp_path / "one") == losses(tmp_path / "tr")
    assert_close(final_weights(tmp_path / "one"), final_weights(tmp_path / "tr"), exact=True)


def test_two_rank_checkpoint_resumes_exactly_and_loads_in_one_process(tmp_path):
    args = [*AR, "train.batch_size=4", "train.lr_decay_steps=6", "model.dropout=0.1"]
    ranks2(tmp_path / "straight", *args, "train.steps=6")
    ranks2(tmp_path / "split", *args, "train.steps=3")
    ranks2(tmp_path / "split", "--resume", "train.steps=6")
    assert_close(final_weights(tmp_path / "straight"), final_weights(tmp_path / "split"), exact=True)
    r = single(tmp_path / "split", "--resume", "train.steps=7")  # the 2-rank run continues in one process
    assert "resumed from" in r.stdout
    s = subprocess.run([sys.executable, str(ROOT / "sample.py"), "--run-dir", str(tmp_path / "split"),
                        "--prompt", "The", "--max-new-tokens", "5"], env=env(), capture_output=True, text=True)
    assert s.returncode == 0 and s.stdout.startswith("The")


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = (task / "children").read_text().split()
        out += [int(k) for k in kids]
    return out


def test_sigkill_of_one_rank_keeps_the_last_checkpoint_resumable(tmp_path):
    run = tmp_path / "run"
    args = [*AR, "train.batch_size=16", "train.steps=400", "train.ckpt_every=20", "train.keep_ckpts=0"]
    proc = subprocess.Popen(torchrun_cmd(run, *args), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while not (run / "ckpt" / "step_0000040").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    workers = children(proc.pid)
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGKILL)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    found = ck.list_checkpoints(run / "ckpt")
    assert found and found[-1].name != "step_0000400"
    for p in found:
        ck.verify(p)  # every published checkpoint is complete
    ranks2(run, "--resume")
    assert ck.list_checkpoints(run / "ckpt")[-1].name == "step_0000400"


def test_sigterm_to_one_rank_stops_both_at_one_step_and_resumes_exactly(tmp_path):
    """The signalled rank must not stop alone: its peer would wait for it in the next collective."""
    import json

    args = [*AR, "train.batch_size=16", "train.steps=200", "train.log_every=10", "model.dropout=0.1"]
    run = tmp_path / "stopped"
    proc = subprocess.Popen(torchrun_cmd(run, *args), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text():
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be signalled"
        time.sleep(0.01)
    workers = children(proc.pid)
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGTERM)  # not rank 0, which writes the checkpoint and the summary
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        for pid in [*workers, proc.pid]:
            with contextlib.suppress(ProcessLookupError):  # the signalled rank may have ended
                os.kill(pid, signal.SIGKILL)
        raise AssertionError("the ranks did not stop together: one waits on the other") from None
    summary = json.loads((run / "summary.json").read_text())
    saved = ck.list_checkpoints(run / "ckpt")
    assert summary["stop"] == "SIGTERM" and [p.name for p in saved] == [f"step_{summary['step']:07d}"]
    assert summary["step"] % 10 == 0 and summary["step"] < 200, "signalled too late to test anything"
    ranks2(run, "--resume")
    ranks2(tmp_path / "straight", *args)
    assert_close(final_weights(tmp_path / "straight"), final_weights(run), exact=True)


def test_batch_not_divisible_by_m_per_rank(tmp_path):
    r = ranks2(tmp_path / "r", *IMM, "train.batch_size=6", "train.steps=1", check=False)
    assert r.returncode != 0 and "multiple of objective.M" in (r.stdout + r.stderr)


def test_nccl_on_a_cpu_machine_is_a_clear_error(tmp_path):
    e = {**env(), "TRAIN_DIST_BACKEND": "nccl", "CUDA_VISIBLE_DEVICES": ""}  # a CPU machine, even on a GPU host
    r = subprocess.run(torchrun_cmd(tmp_path / "r", *AR, "train.steps=1"), env=e, capture_output=True, text=True)
    assert r.returncode != 0 and "error: the nccl backend needs CUDA GPUs" in r.stderr
    assert "Traceback" not in r.stderr.split("failed (exitcode")[0]  # the ranks exit cleanly; torchrun reports it
