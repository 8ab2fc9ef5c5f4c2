#!/usr/bin/env python
"""GPU benchmark for the mixed model: MNIST caption shards + tinyshakespeare text shards.

  python scripts/bench_mixed.py --mnist mnist.npz --text tinyshakespeare.txt --inception fid_inception_v3_fp16.pt --out OUT

1. writes the shards (MNIST train with generated captions; the training 90% of the text),
2. trains the mixed model (configs/mixed_mnist.yaml, --train-seconds),
3. trains an AR-only model of the same shape on the same text for the same number of text tokens,
4. measures caption -> image (class accuracy, FID) at 1/2/4/8 IMM steps, image -> caption accuracy,
   text bits per byte of both models, mixed training throughput and the attention backend used,
5. with --imm-control, trains the image-only IMM recipe on as many images as caption -> image saw,
   and evaluates it the same way.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def log(msg):
    print(msg, flush=True)


def shards(mnist: str, text: str, work: Path) -> tuple[str, str]:
    from modalities.image_data import load_image_sets
    from modalities.shard_writer import brace_pattern, write_image_shards, write_text_shards
    from modalities.text_data import read_text_file, split_text

    train, _ = load_image_sets(mnist, 0)
    img = brace_pattern(write_image_shards(train.images, train.labels, str(work / "mnist-%06d.tar"), per_shard=1000))
    txt = brace_pattern(write_text_shards(split_text(read_text_file(text), 0.1)[0], str(work / "text-%06d.tar"), 2048, 100))
    return img, txt


def matched_schedule(steps: int, mixed_steps: int, tcfg) -> list[str]:
    """Overrides for a control run of ``steps`` that follows the mixed run's learning-rate curve at
    equal shares of its work: a time-limited mixed run stops part-way through its schedule, so its
    rate never decays fully, and the control's must not either."""
    scale = steps / max(1, mixed_steps)
    return [f"train.steps={steps}", f"train.warmup={max(1, round(tcfg.warmup * scale))}",
            f"train.lr_decay_steps={max(steps, round((tcfg.lr_decay_steps or tcfg.steps) * scale))}"]


def imm_control(args, summary: dict, mixed_tcfg, n: int, evaluator) -> dict:
    """The image-only IMM model trained on as many images as the mixed run's caption -> image rows,
    on the mixed run's learning-rate curve at the same share of its work; evaluated like it."""
    from core.config import build_config
    from objectives.imm import IMMConfig
    from scripts.bench_imm import train_run
    from scripts.eval_images import evaluate_run

    images = summary.get("data/caption_to_image_images", 0)
    batch = 8 if args.smoke else build_config("imm", IMMConfig, [ROOT / "configs/imm_mnist.yaml"], []).train.batch_size
    steps = max(1, math.ceil(images / batch))
    out = {"images": images, "batch": batch, "steps": steps}
    left = args.end_time - time.time() if args.end_time else float("inf")
    if left < 90:
        return {**out, "skipped": f"time budget ({left:.0f} s left)"}
    run = args.work / "imm_control"
    smoke = ["model.n_layer=1", "model.d_model=64", "model.n_head=2", f"train.batch_size={batch}", "train.compile=false",
             "sample.eval_images=0"] if args.smoke else []
    # within the call's time: training stops early (and says so) where the equal-images run would not fit
    limit = [f"train.time_limit={max(30.0, left - 120):.0f}"] if args.end_time else []
    t = time.perf_counter()
    trained = train_run("imm", args.mnist, run, 0, steps=steps,
                        overrides=[*matched_schedule(steps, summary["step"], mixed_tcfg)[1:], "train.eval_every=0",
                                   f"train.lr={mixed_tcfg.lr}", f"train.min_lr={mixed_tcfg.min_lr}",
                                   f"train.cuda_graphs={str(mixed_tcfg.cuda_graphs).lower()}", *limit, *smoke])
    out.update(trained_steps=trained.get("step"), trained_images=trained.get("step", 0) * batch, stop=trained.get("stop"))
    rows, _ = evaluate_run(run, [("imm_pushforward", k, n) for k in (4, 1, 2, 8)], args.guidance, 500, args.inception,
                           args.mnist, evaluator=evaluator, compile=not args.smoke, quiet=True,
                           time_budget=max(1.0, left - 60 - (time.perf_counter() - t)))
    rows.sort(key=lambda r: r["steps"])
    return {**out, "train_seconds": trained.get("train_seconds"), "eval": rows}


def bpb_curve(rows: list[dict], text_tokens) -> list[tuple[int, float]]:
    """(text tokens seen, validation bits per byte) at every evaluation of a run."""
    return [(int(text_tokens(r)), r["val/bpb"]) for r in rows if "val/bpb" in r]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--inception", default="")
    p.add_argument("--out", type=Path, default=Path("results/bench_mixed"))
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_mixed"))
    p.add_argument("--train-seconds", type=float, default=340)
    p.add_argument("--n", type=int, default=10000, help="samples for FID and image->caption accuracy")
    p.add_argument("--guidance", type=float, default=None,
                   help="caption -> image guidance weight (default: the recipe's sample.guidance)")
    p.add_argument("--guidance-sweep", default="", metavar="W,W",
                   help="also evaluate caption -> image at 4 steps with these guidance weights (mixed_guidance.csv)")
    p.add_argument("--end-time", type=float, default=0,
                   help="unix time by which the evaluation should end (later caption->image rows are skipped)")
    p.add_argument("--profile", type=int, default=0, metavar="STEPS",
                   help="profile this many mixed training steps (profile.md: host operators and device kernels)")
    p.add_argument("--text-evals", type=int, default=250, metavar="STEPS",
                   help="evaluate text bits per byte every this many mixed steps (and the AR-only control at the same "
                        "shares of its text), so that each model's best is compared: both memorise tinyshakespeare")
    p.add_argument("--imm-control", action="store_true",
                   help="last, train the image-only IMM recipe (configs/imm_mnist.yaml) on as many images as the mixed "
                        "run trained caption -> image, and evaluate it the same way")
    p.add_argument("--smoke", action="store_true", help="tiny settings, to check the pipeline on a CPU")
    p.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides for the mixed run, e.g. model.attn_backend=sdpa")
    args = p.parse_args()
    import train
    from core.attention import resolve_backend
    from core.device import pick_device
    from core.metrics_log import read_metrics
    from scripts.eval_images import evaluate_run, parse_weights
    from scripts.tables import markdown_table

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    args.out.mkdir(parents=True, exist_ok=True)
    dev = pick_device("auto")
    res: dict = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "torch": torch.__version__}
    img, txt = shards(args.mnist, args.text, args.work / "shards")
    small = ["model.n_layer=1", "model.d_model=64", "model.n_head=2", "train.batch_size=8", "train.compile=false",
             "data.num_workers=0", "sample.eval_images=20", "train.eval_batches=1", "train.steps=40"] if args.smoke else []
    mixed_run = args.work / "mixed"
    t = time.perf_counter()
    summary = train.main(["--objective", "mixed", "--config", str(ROOT / "configs/mixed_mnist.yaml"), "--data", img,
                          "--run-dir", str(mixed_run), "--quiet", f"data.text_path={txt}", f"data.text_eval_path={args.text}",
                          f"data.eval_path={args.mnist}", f"train.time_limit={args.train_seconds}",
                          f"train.profile_steps={args.profile}", f"train.eval_every={args.text_evals}",
                          "sample.eval_images=0", *small, *args.override])
    if (mixed_run / "profile.md").is_file():
        shutil.copy(mixed_run / "profile.md", args.out / "mixed_profile.md")
    res["mixed_train"] = {**summary, "wall_seconds": time.perf_counter() - t}
    rows = read_metrics(mixed_run)
    speeds = [r["perf/tokens_per_s"] for r in rows if "perf/tokens_per_s" in r][1:]
    res["mixed_tokens_per_s"] = statistics.median(speeds) if speeds else None
    from core.config import load_saved_config
    from objectives import get_objective

    cfg = load_saved_config(mixed_run / "config.yaml", get_objective)
    res["attention_backend"] = resolve_backend(cfg.model.attn_backend, dev).name
    res["overrides"] = args.override
    if args.guidance is None:
        args.guidance = cfg.sample.guidance
    log(f"mixed: {summary}")
    save = lambda: (args.out / "bench_mixed.json").write_text(json.dumps(res, indent=1, default=str))  # noqa: E731
    save()  # each stage's figures survive a later stage running out of time

    seq_len = cfg.objective.caption_len + (cfg.data.image_size // cfg.data.patch_size) ** 2 + 4
    text_tokens = summary.get("data/text_tokens", 0)
    bs = cfg.train.batch_size
    ar_steps = max(1, math.ceil(text_tokens / (bs * seq_len)))
    ar_schedule = matched_schedule(ar_steps, summary["step"], cfg.train)
    ar_run = args.work / "ar_only"
    ar = train.main(["--objective", "ar", "--data", args.text, "--run-dir", str(ar_run), "--quiet", "data.tokenizer=byte",
                     f"data.seq_len={seq_len}", "model.size=dit-s", "model.n_layer=8", f"train.batch_size={bs}",
                     *ar_schedule, f"train.lr={cfg.train.lr}", f"train.min_lr={cfg.train.min_lr}", f"train.beta2={cfg.train.beta2}",
                     f"train.weight_decay={cfg.train.weight_decay}", f"train.ema={cfg.train.ema}", "train.compile=true",
                     f"train.eval_every={max(1, round(args.text_evals * ar_steps / max(1, summary['step'])))}",
                     f"train.ckpt_every={ar_steps}", *small])
    res["ar_only"] = {"steps": ar_steps, "text_tokens": ar_steps * bs * seq_len, "val_bpb": ar.get("val/bpb"),
                      "schedule": ar_schedule,
                      "bpb_curve": bpb_curve(read_metrics(ar_run), lambda r: r["step"] * bs * seq_len)}
    res["mixed_text"] = {"text_tokens": text_tokens, "val_bpb": summary.get("val/bpb"),
                         "bpb_curve": bpb_curve(rows, lambda r: r["data/text_tokens"])}
    for r in (res["ar_only"], res["mixed_text"]):
        r["best_bpb"] = min((b for _, b in r["bpb_curve"]), default=None)
    for key in ("val_bpb", "best_bpb"):
        if res["ar_only"][key] and res["mixed_text"][key]:
            res[f"{key}_ratio_mixed_over_ar"] = res["mixed_text"][key] / res["ar_only"][key]
    log(f"text: mixed {res['mixed_text']}, AR only {res['ar_only']}")
    save()

    n = 40 if args.smoke else args.n
    # the target's 4 steps first, so a time budget cuts the others; image -> caption keeps a minute
    settings = [("caption_to_image", k, n) for k in (4, 1, 2, 8)]
    budget = max(30.0, args.end_time - time.time() - 60) if args.end_time else 0.0
    t = time.perf_counter()
    c2i, ev = evaluate_run(mixed_run, settings, args.guidance, 500, args.inception, args.mnist, compile=not args.smoke,
                           quiet=True, time_budget=budget)
    res["caption_to_image_eval_seconds"] = time.perf_counter() - t
    c2i.sort(key=lambda r: r["steps"])
    res["caption_to_image"] = c2i
    from scripts.eval_images import write_table

    write_table(c2i, args.out, "mixed_eval")  # rows that scripts/report.py --from-csv reads
    save()
    sweep = []
    if args.guidance_sweep:
        left = max(1.0, budget - (time.perf_counter() - t)) if budget else 0.0
        sweep, _ = evaluate_run(mixed_run, [("caption_to_image", 4, n)], parse_weights(args.guidance_sweep), 500,
                                args.inception, args.mnist, evaluator=ev, compile=not args.smoke, quiet=True,
                                time_budget=left)
    if sweep:
        res["caption_to_image_guidance"] = sweep
        write_table(sweep, args.out, "mixed_guidance")
        save()
    from core.context import RunContext
    from core.device import pick_dtype
    from core.loading import load_run
    from modalities.mixed_task import caption_accuracy
    from modalities.tokenizers import load_tokenizer

    cfg, spec, model, _ = load_run(mixed_run, device=dev)
    objective = get_objective("mixed")(cfg.objective, spec)
    ctx = RunContext(cfg, dev, pick_dtype("auto", dev))
    t = time.perf_counter()
    res["image_to_caption_acc"] = caption_accuracy(model, objective, load_tokenizer(mixed_run), ev.test,
                                                   min(n, len(ev.test)), ctx)
    res["image_to_caption_eval_seconds"] = time.perf_counter() - t
    save()
    if args.imm_control:
        res["imm_control"] = imm_control(args, summary, cfg.train, n, ev)
        save()
    lines = [f"device {res['device']}, attention backend {res['attention_backend']}, caption -> image (guidance {args.guidance}):",
             markdown_table(c2i, ["steps", "nfe", "n", "fid", "fid_clf", "class_acc", "skipped"])]
    if sweep:
        lines += ["\ncaption -> image at 4 steps by guidance weight:",
                  markdown_table(sweep, ["guidance", "steps", "nfe", "n", "fid", "fid_clf", "class_acc", "skipped"])]
    lines.append(f"\nimage->caption accuracy: {res['image_to_caption_acc']:.4f} (N={min(n, len(ev.test))})")
    mt, ao = res["mixed_text"], res["ar_only"]
    lines.append(f"text bits per byte at {text_tokens:,} text tokens: mixed {mt['val_bpb']}, AR only {ao['val_bpb']}, "
                 f"ratio {res.get('val_bpb_ratio_mixed_over_ar')}")
    lines.append(f"best text bits per byte over the run: mixed {mt['best_bpb']}, AR only {ao['best_bpb']}, "
                 f"ratio {res.get('best_bpb_ratio_mixed_over_ar')}")
    lines.append("text tokens -> bits per byte: mixed " + ", ".join(f"{t:,}: {b:.3f}" for t, b in mt["bpb_curve"])
                 + "; AR only " + ", ".join(f"{t:,}: {b:.3f}" for t, b in ao["bpb_curve"]))
    lines.append(f"mixed training throughput: {res['mixed_tokens_per_s']} tokens/s")
    if "imm_control" in res:
        c = res["imm_control"]
        lines += [f"\nimage-only IMM at equal images ({c['images']:,} caption -> image images = {c['steps']} steps of "
                  f"{c['batch']}; trained {c.get('trained_steps')} steps, stop: {c.get('stop')}; class-conditional, "
                  f"guidance {args.guidance}):",
                  markdown_table(c["eval"], ["steps", "nfe", "n", "fid", "fid_clf", "class_acc", "skipped"])
                  if c.get("eval") else c.get("skipped", "")]
    lines.append(f"evaluation: caption -> image rows {res['caption_to_image_eval_seconds']:.0f} s, "
                 f"image -> caption {res['image_to_caption_eval_seconds']:.0f} s")
    text = "\n".join(lines)
    (args.out / "bench_mixed.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
