"""The scaling scripts end to end on tiny runs: CSV columns are what the plots read; plots are written."""
import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import train
from scripts import scaling_steps

ROOT = Path(__file__).resolve().parent.parent
TINY = ["model.n_layer=1", "model.d_model=32", "model.n_head=2", "train.eval_every=0", "train.ckpt_every=0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    for name in ("imm", "fm"):
        train.main(["--objective", name, "--run-dir", str(base / name), "--quiet", "train.steps=3", "train.batch_size=8",
                    *TINY])
    train.main(["--objective", "ar", "--run-dir", str(base / "ar"), "--quiet", "train.steps=3", "data.tokenizer=byte",
                "data.seq_len=32", "train.batch_size=4", *TINY])
    return base


def read(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_scaling_steps(runs, tmp_path):
    out = tmp_path / "steps"
    r = subprocess.run([sys.executable, str(ROOT / "scripts/scaling_steps.py"), "--run-dir", str(runs / "imm"),
                        "--run-dir", str(runs / "fm"), "--steps", "1,2", "--n", "20", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = read(out / "steps.csv")
    assert set(scaling_steps.PLOT_COLUMNS) <= set(rows[0])
    assert {row["method"] for row in rows} == {"imm/imm_pushforward", "imm/imm_restart", "fm/euler", "fm/heun"}
    assert {(row["method"], row["nfe"]) for row in rows} >= {("fm/heun", "6"), ("imm/imm_pushforward", "2")}  # guidance doubles
    assert (out / "steps.png").stat().st_size > 1000 and (out / "ratios.json").is_file()


def test_pareto_and_ratios():
    rows = [{"method": "a", "nfe": 2, "steps": 1, "quality": 10.0}, {"method": "a", "nfe": 4, "steps": 2, "quality": 5.0},
            {"method": "b", "nfe": 4, "steps": 2, "quality": 12.0}, {"method": "b", "nfe": 16, "steps": 8, "quality": 4.0}]
    assert [(r["method"], r["nfe"]) for r in scaling_steps.pareto(rows)] == [("a", 2), ("a", 4), ("b", 16)]
    ratios = scaling_steps.nfe_ratios(rows, "a")
    assert [(r["reference_nfe"], r["other_nfe_to_match"], r["ratio"]) for r in ratios] == [(2, 16, 8.0), (4, 16, 4.0)]


def test_method_labels_keep_runs_and_guidance_weights_apart():
    """Rows from several runs or weights of one sampler become separate curves; a CSV without an
    objective column (diagnose_fid's earlier ones) gets it from the sampler; the real-data row drops out."""
    row = lambda run, sampler, nfe, w, fid: {"run": run, "sampler": sampler, "steps": nfe, "nfe": nfe, "guidance": w, "fid": fid}
    rows = scaling_steps.normalise([
        {"run": "real (training images)", "sampler": "", "nfe": "", "fid": 1.6},
        row("imm", "imm_pushforward", 4, 1, 3.4), row("imm_s1", "imm_pushforward", 4, 1, 3.3),
        row("fm", "euler", 8, 1, 3.1), row("fm", "euler", 16, 2, 2.4)])
    assert [(r["method"], r["objective"]) for r in rows] == [
        ("fm/euler (w=1)", "fm"), ("fm/euler (w=2)", "fm"),
        ("imm/imm_pushforward (imm)", "imm"), ("imm/imm_pushforward (imm_s1)", "imm")]
    one = scaling_steps.normalise([row("fm", "euler", 8, 1, 3.1), row("fm", "euler", 16, 1, 2.4)])
    assert {r["method"] for r in one} == {"fm/euler"}  # nothing differs: the plain label
    # raw weights and a sampler option (diagnose_fid's weights / options columns) are curves of their own
    spaced = scaling_steps.normalise([{**row("imm", "imm_pushforward", 4, 1, 3.2), "weights": "ema", "options": ""},
                                      {**row("imm", "imm_pushforward", 4, 1, 3.0), "weights": "ema", "options": "spacing=edm"},
                                      {**row("imm", "imm_pushforward", 4, 1, 3.5), "weights": "raw", "options": ""}])
    assert [r["method"] for r in spaced] == ["imm/imm_pushforward (ema)", "imm/imm_pushforward (ema, spacing=edm)",
                                             "imm/imm_pushforward (raw)"]
    kept = scaling_steps.without_sampler_options([{"fid": 1, "options": ""}, {"fid": 2, "options": "times=0.9/0.5/0.1"},
                                                  {"fid": 3}])
    assert [r["fid"] for r in kept] == [1, 3]  # --default-grids-only
    unguided = scaling_steps.at_guidance([{"fid": 1, "guidance": "1"}, {"fid": 2, "guidance": "1.25"},
                                          {"fid": 3, "guidance": "1.0"}, {"fid": 4, "guidance": ""}], 1.0)
    assert [r["fid"] for r in unguided] == [1, 3]  # --csv-guidance 1


def test_scaling_seqlen(runs, tmp_path):
    out = tmp_path / "seq"
    r = subprocess.run([sys.executable, str(ROOT / "scripts/scaling_seqlen.py"), "--run-dir", str(runs / "ar"),
                        "--cost-contexts", "16,32", "--new-tokens", "4", "--backends", "sdpa,sdpa_compiled", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    cost, quality = read(out / "seqlen_cost.csv"), read(out / "seqlen_quality.csv")
    sdpa = [c for c in cost if c["backend"] == "sdpa"]
    assert {(c["cache"], c["context"]) for c in sdpa} == {("True", "16"), ("True", "32"), ("False", "16"), ("False", "32")}
    assert {(c["cache"], c["context"]) for c in cost if c["backend"] == "sdpa_compiled"} == {("True", "16"), ("True", "32")}
    assert [q["context"] for q in quality] == ["32"]
    for c in cost:  # the per-token time is the 4 tokens' time less the first's, over 3; never a negative figure
        total, first, per_token = (float(c[k]) for k in ("total_ms", "prefill_ms", "ms_per_token"))
        assert total > 0 and first > 0
        assert math.isnan(per_token) or per_token == pytest.approx((total - first) / 3) and per_token > 0
    assert (out / "seqlen_cost.png").is_file() and (out / "seqlen_quality.png").is_file()


def test_report(runs, tmp_path):
    out = tmp_path / "report"
    r = subprocess.run([sys.executable, str(ROOT / "scripts/report.py"), "--image-run", str(runs / "imm"), "--steps", "1",
                        "--n", "10", "--text-run", str(runs / "ar"), "--cost-size", "tiny", "--cost-contexts", "16,32", "--new-tokens", "4", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    text = (out / "report.md").read_text()
    assert "steps/steps.png" in text and "seqlen0/seqlen_cost.png" in text and "Report produced in" in text
    assert "seqlen1/seqlen_quality.png" in text  # the text run's bits per byte across context
    assert (out / "steps" / "steps.png").is_file()


def test_eval_images_spacing_reaches_imm_samplers_and_is_refused_elsewhere(runs, tmp_path):
    from core.config import ConfigError
    from scripts.eval_images import evaluate_run

    settings = [("imm_pushforward", 4, 8)]
    uniform, ev = evaluate_run(runs / "imm", settings, 1.5, 8, quiet=True)
    edm, _ = evaluate_run(runs / "imm", settings, 1.5, 8, quiet=True, evaluator=ev, spacing="edm")
    assert uniform[0]["fid_clf"] != edm[0]["fid_clf"]  # another time grid, other samples
    with pytest.raises(ConfigError, match="takes no option spacing"):
        evaluate_run(runs / "fm", [("euler", 4, 8)], 1.5, 8, quiet=True, spacing="edm")
    grid = "0.994/0.8/0.55/0.3/0.006"
    explicit, _ = evaluate_run(runs / "imm", settings, 1.5, 8, quiet=True, evaluator=ev, times=grid)
    assert explicit[0]["options"] == f"times={grid}" and uniform[0]["options"] == ""  # the table says which grid
    assert explicit[0]["fid_clf"] != uniform[0]["fid_clf"]
    r = subprocess.run([sys.executable, str(ROOT / "sample.py"), "--run-dir", str(runs / "fm"), "--times", grid],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "sampler 'euler' takes no option times" in r.stderr


def test_eval_images_sweeps_guidance_weights_and_guidance_doubles_the_nfe(runs, tmp_path):
    out = tmp_path / "sweep"
    r = subprocess.run([sys.executable, str(ROOT / "scripts/eval_images.py"), "--run-dir", str(runs / "imm"),
                        "--steps", "2", "--n", "8", "--batch", "8", "--guidance", "1,2", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = read(out / "eval.csv")
    assert [(float(row["guidance"]), int(row["nfe"])) for row in rows] == [(1.0, 2), (2.0, 4)]  # w = 1: no null pass
    bad = subprocess.run([sys.executable, str(ROOT / "scripts/eval_images.py"), "--run-dir", str(runs / "imm"),
                          "--guidance", "1.5,x", "--out", str(out)], capture_output=True, text=True)
    assert bad.returncode != 0 and "guidance weights must be numbers" in bad.stderr


def test_guidance_weights_share_one_evaluation_and_its_time_budget(runs):
    from scripts.eval_images import evaluate_run

    rows, _ = evaluate_run(runs / "fm", [("euler", 2, 8)], [1.0, 1.5], 8, quiet=True)
    assert [row["guidance"] for row in rows] == [1.0, 1.5] and all("skipped" not in row for row in rows)
    rows, _ = evaluate_run(runs / "fm", [("euler", 2, 8), ("euler", 4, 8)], [1.0, 1.5], 8, quiet=True,
                           time_budget=1e-9)
    assert len(rows) == 4 and all(row.get("skipped") == "time budget" for row in rows)


def test_diagnose_fid_sampler_options_and_raw_weights(runs, tmp_path):
    """A setting's KEY=VALUE parts reach the sampler (the EDM grid gives other 4-step samples than the
    uniform one); --weights raw samples the trained weights, which a 3-step run's EMA (warm-up decay
    (1 + n) / (10 + n)) has not caught up with."""
    out = tmp_path / "opts"
    r = subprocess.run([sys.executable, str(ROOT / "scripts/diagnose_fid.py"), "--run-dir", str(runs / "imm"), "--weights", "ema,raw",
                        "--settings", "imm_pushforward:4:1,imm_pushforward:4:1:spacing=edm", "--n", "20", "--save-samples",
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = read(out / "diagnose_fid.csv")
    assert [(row["weights"], row["options"]) for row in rows] == [("ema", ""), ("ema", "spacing=edm"), ("raw", ""), ("raw", "spacing=edm")]
    images = {name: np.load(out / f"imm_imm_pushforward_4_w1{name}.npz")["images"]
              for name in ("", "_spacing-edm", "_raw", "_spacing-edm_raw")}
    for a, b in (("", "_spacing-edm"), ("", "_raw"), ("_raw", "_spacing-edm_raw")):
        assert not np.array_equal(images[a], images[b]), (a, b)
    again = subprocess.run([sys.executable, str(ROOT / "scripts/diagnose_fid.py"), "--run-dir", str(runs / "imm"),
                            "--settings", "imm_pushforward:4:1:spacing=edm", "--n", "20", "--save-samples", "--out", str(tmp_path / "again")],
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert np.array_equal(np.load(tmp_path / "again" / "imm_imm_pushforward_4_w1_spacing-edm.npz")["images"], images["_spacing-edm"])
    bad = subprocess.run([sys.executable, str(ROOT / "scripts/diagnose_fid.py"), "--run-dir", str(runs / "imm"), "--weights", "shadow",
                          "--out", str(out)], capture_output=True, text=True)
    assert bad.returncode != 0 and "--weights takes ema, raw" in bad.stderr
    # a run trained without an EMA: its rows say which weights they really used
    train.main(["--objective", "imm", "--run-dir", str(tmp_path / "no_ema"), "--quiet", "train.steps=2", "train.batch_size=8",
                "train.ema=0", *TINY])
    plain = subprocess.run([sys.executable, str(ROOT / "scripts/diagnose_fid.py"), "--run-dir", str(tmp_path / "no_ema"),
                            "--settings", "imm_pushforward:1:1", "--n", "10", "--out", str(tmp_path / "plain")],
                           capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert [row["weights"] for row in read(tmp_path / "plain" / "diagnose_fid.csv")] == ["raw"]


def test_diagnose_fid_scores_samples_beside_the_real_floor_and_saves_them(runs, tmp_path):
    out = tmp_path / "diag"
    r = subprocess.run([sys.executable, str(ROOT / "scripts/diagnose_fid.py"), "--run-dir", str(runs / "imm"), "--real",
                        "--settings", "imm_pushforward:2:1,:1:1.5", "--n", "20", "--save-samples", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    real, two, one = read(out / "diagnose_fid.csv")
    # matching the training images' grey levels onto their own histogram changes nothing
    assert real["fid_clf"] == real["fid_clf_matched"] and float(real["hist_tv"]) < 0.1
    assert (two["sampler"], two["nfe"], one["sampler"], one["nfe"]) == ("imm_pushforward", "2", "imm_pushforward", "2")
    saved = np.load(out / "imm_imm_pushforward_2_w1.npz")
    assert saved["images"].shape == (20, 8, 8) and saved["images"].dtype == np.uint8  # native digits size
    assert list(saved["labels"][:11]) == [*range(10), 0]
    bad = subprocess.run([sys.executable, str(ROOT / "scripts/diagnose_fid.py"), "--real", "--settings", "euler:4",
                          "--out", str(out)], capture_output=True, text=True)
    assert bad.returncode != 0 and "SAMPLER:STEPS:GUIDANCE" in bad.stderr
    for setting, message in (("imm_pushforward:2:1:edm", "KEY=VALUE"), ("imm_pushforward:2:1:spacing=zigzag", "unknown spacing"),
                             ("imm_pushforward:2:1:rho=7", "takes no option rho")):
        bad = subprocess.run([sys.executable, str(ROOT / "scripts/diagnose_fid.py"), "--run-dir", str(runs / "imm"),
                              "--settings", setting, "--n", "10", "--out", str(tmp_path / "bad")], capture_output=True, text=True)
        assert bad.returncode != 0 and message in bad.stderr, (setting, bad.stderr[-500:])
    # a setting that fails after one that finished: the finished row is already in the CSV
    cut = subprocess.run([sys.executable, str(ROOT / "scripts/diagnose_fid.py"), "--run-dir", str(runs / "imm"), "--settings",
                          "imm_pushforward:1:1,imm_pushforward:2:1:rho=7", "--n", "10", "--out", str(tmp_path / "cut")],
                         capture_output=True, text=True)
    assert cut.returncode != 0 and "takes no option rho" in cut.stderr
    assert [(row["steps"], row["nfe"]) for row in read(tmp_path / "cut" / "diagnose_fid.csv")] == [("1", "1")]
    # the saved samples again, through --samples: the same statistics and scores without generating anything
    again = subprocess.run([sys.executable, str(ROOT / "scripts/diagnose_fid.py"), "--samples",
                            str(out / "imm_imm_pushforward_2_w1.npz"), "--n", "20", "--out", str(tmp_path / "again")],
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    real_row, saved_row = read(tmp_path / "again" / "diagnose_fid.csv")
    assert real_row["run"] == "real (training images)" and real_row["fid_clf"] == real_row["fid_clf_matched"]
    for key in ("mean", "frac_0", "frac_mid", "edge_energy", "speck_frac", "speck_level", "edge_mid", "hist_tv", "class_acc"):
        assert float(saved_row[key]) == pytest.approx(float(two[key]), abs=1e-9), key
    # the reference is the first 20 test images here, all of them for a run: another classifier FID
    assert float(saved_row["fid_clf"]) != pytest.approx(float(two["fid_clf"]), rel=1e-6)
    np.savez(tmp_path / "float.npz", images=np.zeros((4, 8, 8), np.float32))
    wrong = subprocess.run([sys.executable, str(ROOT / "scripts/diagnose_fid.py"), "--samples", str(tmp_path / "float.npz"),
                            "--out", str(tmp_path / "w")], capture_output=True, text=True)
    assert wrong.returncode != 0 and "must be uint8" in wrong.stderr


def test_imm_precision_probe_finds_bf16_losing_the_gap_near_T(runs, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from scripts import imm_precision

    # a 3-step run's adaLN-zero output is still ~0, so f would be all skip path: give G weights that matter
    run = shutil.copytree(runs / "imm", tmp_path / "imm")
    weights = sorted((run / "ckpt").glob("step_*"))[-1] / "model.safetensors"
    gen = torch.Generator().manual_seed(0)
    save_file({k: v + 0.2 * torch.randn(v.shape, generator=gen) for k, v in load_file(weights).items()}, weights)
    probe = ["--run-dir", str(run), "--precisions", "bf16", "--groups", "4", "--device", "cpu"]
    mid, top = imm_precision.main([*probe, "--times", "0.5,0.994", "--out", str(tmp_path / "out")])
    assert top["t_minus_r"] == pytest.approx(1e-4) and mid["t_minus_r"] > 1e-2  # min_gap binds only near T
    # bf16's rounding of G against a gap t - r 1,000x smaller: its share of y_t - y_r grows many times
    assert top["bf16_error_over_signal"] > 5 * mid["bf16_error_over_signal"]
    assert mid["bf16_error_over_signal"] < 0.1 and mid["bf16_grad_cos"] > 0.9
    assert "bf16_grad_cos" in (tmp_path / "out" / "imm_precision.md").read_text()
    (wide,) = imm_precision.main([*probe, "--times", "0.994", "--min-gap", "0.01"])
    assert wide["t_minus_r"] == pytest.approx(0.01) and wide["bf16_error_over_signal"] < top["bf16_error_over_signal"] / 3


def test_imm_precision_probe_refuses_other_objectives_and_precisions(runs, capsys):
    from scripts import imm_precision

    with pytest.raises(SystemExit, match="'fm' run"):
        imm_precision.main(["--run-dir", str(runs / "fm"), "--device", "cpu", "--precisions", "bf16"])
    with pytest.raises(SystemExit):
        imm_precision.main(["--run-dir", str(runs / "imm"), "--precisions", "fp16"])
    with pytest.raises(SystemExit) as exit_info:
        imm_precision.main(["--run-dir", str(runs), "--device", "cpu", "--precisions", "bf16"])
    assert exit_info.value.code == 2 and "not a run directory" in capsys.readouterr().err
