#!/usr/bin/env python
"""Where do a run's samples differ from the data? FID beside low-level pixel statistics.

For each setting (sampler:steps:guidance) the script generates N class-balanced samples and reports
FID (Inception, when given) and the classifier's FID, then the pixel statistics of the samples and
of the test set (mean grey level, fractions of pixels at 0, at 255 and in between, edge energy,
histogram distance), then FID again after one monotone remap of the samples' grey levels onto the
*training* set's value histogram. If that remap closes most of the FID gap, the samples differ from
the data in their grey levels, not in their shapes. ``--real`` adds the first N training images as
a row of their own (the floor of every figure). ``--samples`` takes saved sample files (the npz that
``--save-samples`` writes) instead of runs and scores them the same way against the first ``--n``
test images, with the first ``--n`` training images as the floor (small enough for a CPU).

  python scripts/diagnose_fid.py --run-dir runs/imm_mnist --settings imm_pushforward:4:1,imm_pushforward:8:1 \
      --inception ../shared/data/fid_inception_v3_fp16.pt --data ../shared/data/mnist.npz --real --out results/diag
  python scripts/diagnose_fid.py --samples results/diag/imm_mnist_imm_pushforward_4_w1.npz --data ../shared/data/mnist.npz
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from core.config import parse_override  # noqa: E402
from core.device import autocast, pick_device, pick_dtype  # noqa: E402
from core.errors import friendly_errors  # noqa: E402
from core.loading import load_run, uses_ema  # noqa: E402
from modalities.image_data import crop_to, load_image_sets, native_uint8, to_uint8  # noqa: E402
from modalities.image_eval import ImageEvaluator  # noqa: E402
from modalities.pixel_stats import despeckle, match_histogram, pixel_stats  # noqa: E402
from objectives import get_objective  # noqa: E402
from samplers.image_common import options_tag, options_text  # noqa: E402
from scripts.eval_images import run_evaluator, trained_image_size  # noqa: E402
from scripts.tables import markdown_table, write_csv  # noqa: E402

COLUMNS = ["run", "weights", "objective", "sampler", "options", "steps", "guidance", "nfe", "n", "fid", "fid_matched", "fid_despeckled", "fid_clf", "fid_clf_matched",
           "class_acc", "mean", "frac_0", "frac_255", "frac_mid", "edge_energy", "speck_frac", "speck_level", "edge_mid", "hist_tv"]


def parse_option(item: str, part: str) -> tuple[str, object]:
    """"spacing=edm" -> ("spacing", "edm"); values parse as train.py's overrides do (YAML)."""
    if "=" not in part or part.startswith("="):
        raise SystemExit(f"a sampler option is KEY=VALUE (e.g. spacing=edm), got {part!r} in {item!r}")
    return parse_override(part)


def parse_settings(text: str) -> list[tuple[str, int, float, dict]]:
    """"imm_pushforward:4:1,euler:32:1.5,imm_pushforward:4:1:spacing=edm" -> [(sampler, steps, guidance,
    sampler options), ...] ("" sampler = the run's own)."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split(":")
        if len(parts) < 3:
            raise SystemExit(f"a setting is SAMPLER:STEPS:GUIDANCE[:KEY=VALUE...] (SAMPLER may be empty), got {item!r}")
        try:
            steps, guidance = int(parts[1]), float(parts[2])
        except ValueError:
            raise SystemExit(f"steps must be an integer and guidance a number in {item!r}") from None
        out.append((parts[0], steps, guidance, dict(parse_option(item, part) for part in parts[3:])))
    if not out:
        raise SystemExit("give at least one setting")
    return out


def diagnose(images_uint8, labels, evaluator: ImageEvaluator, train_uint8, test_uint8, native: int) -> dict:
    """Scores and pixel statistics of one sample set: raw, with its grey levels matched to the training
    set, and with its background specks removed (Inception FID only)."""
    raw = evaluator.score(images_uint8, labels)
    matched = evaluator.score(match_histogram(images_uint8, train_uint8), labels)
    # despeckled: Inception FID only (the classifier scores shapes, which despeckling leaves alone)
    clean = evaluator.score(despeckle(images_uint8), None, inception_only=True) if evaluator.inception else {}
    stats = pixel_stats(crop_to(images_uint8, native), test_uint8)
    return {**raw, "fid_matched": matched.get("fid"), "fid_clf_matched": matched.get("fid_clf"),
            "fid_despeckled": clean.get("fid"), **stats}


def load_samples(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 images (N, C, H, W) and labels (or None) of a sample file that --save-samples wrote."""
    try:
        with np.load(path) as f:
            images, labels = f["images"], f["labels"] if "labels" in f.files else np.zeros(0)
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"{path}: not a sample file with an 'images' array ({e})") from None
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise SystemExit(f"{path}: 'images' must be uint8 of shape (N, H, W) or (N, C, H, W), got {images.dtype} {images.shape}")
    x = torch.from_numpy(images)
    return (x if x.ndim == 4 else x[:, None]), (torch.from_numpy(labels).long() if len(labels) == len(x) else None)


def saved_sample_rows(args, dev) -> list[dict]:
    """Saved sample sets scored like generated ones (diagnose()), with the first --n training images as
    the floor, against the first --n test images: a reference small enough for Inception on a CPU
    (runs are scored against the whole test set)."""
    train, test = load_image_sets(args.data, 0)
    test_uint8 = native_uint8(test)
    evaluator = ImageEvaluator(train, test.head(args.n), dev, args.inception)
    floor = train.head(args.n)
    train_uint8 = native_uint8(floor)
    rows = [{"run": "real (training images)", "n": len(train_uint8),
             **diagnose(train_uint8, floor.labels, evaluator, train_uint8, test_uint8, test.native_size)}]
    for path in tqdm(args.samples, desc="saved samples"):
        images, labels = load_samples(path)
        images, labels = images[:args.n], None if labels is None else labels[:args.n]
        rows.append({"run": path.stem, "n": len(images),
                     **diagnose(images, labels, evaluator, train_uint8, test_uint8, test.native_size)})
        save_so_far(rows, args)
    return rows


def save_so_far(rows: list[dict], args) -> None:
    """The CSV after every row, so that an evaluation cut short (a time limit, a failing setting) keeps the
    rows it finished; after the last row it is the whole table, and main() adds the JSON and markdown."""
    write_csv(rows, args.out / "diagnose_fid.csv", COLUMNS)


def generated_rows(args, settings, dev) -> list[dict]:
    """Generate each setting's samples from each run (and score the training images with --real)."""
    rows = []
    loaded = [(run, weights, *load_run(run, device=dev, use_ema=weights == "ema"))
              for run in args.run_dir for weights in args.weights]
    for run, _, cfg, spec, *_ in loaded:
        if cfg.objective.name == "mixed":
            raise SystemExit(f"{run} is a mixed text-image run: diagnose_fid takes image runs (imm, fm); "
                             "scripts/eval_images.py scores mixed runs")
        if trained_image_size(cfg, spec) != trained_image_size(*loaded[0][2:4]):
            raise SystemExit(f"{run} was trained at another image size than {loaded[0][0]}: diagnose them one at a time")
    if loaded:
        evaluator = run_evaluator(*loaded[0][2:4], dev, args.inception, args.data)
    else:  # no run: the dataset at its native size ("" = the embedded digits)
        evaluator = ImageEvaluator(*load_image_sets(args.data, 0), dev, args.inception)
    floor = evaluator.train.head(args.n)
    train_uint8 = to_uint8(floor.images)
    native = evaluator.test.native_size
    test_uint8 = evaluator.test_uint8()
    if args.real:
        rows.append({"run": "real (training images)", "n": len(train_uint8),
                     **diagnose(train_uint8, floor.labels, evaluator, train_uint8, test_uint8, native)})
        tqdm.write(f"real: {rows[-1]}")
        save_so_far(rows, args)
    for run, weights, cfg, spec, model, ckpt in loaded:
        weights = "ema" if uses_ema(ckpt, weights == "ema") else "raw"  # what load_run really took
        objective = get_objective(cfg.objective.name)(cfg.objective, spec)
        if args.compile:
            model.compile_regions()
        for sampler, steps, guidance, options in tqdm(settings, desc=f"diagnose {run.name} ({weights})"):
            sampler = sampler or objective.default_sampler
            with autocast(dev, pick_dtype("auto", dev)):
                gen = evaluator.generate(model, objective, sampler, steps, guidance, args.n, args.seed, args.batch, **options)
            row = {"run": run.name, "weights": weights, "objective": cfg.objective.name, "sampler": sampler,
                   "options": options_text(options), "steps": steps, "guidance": guidance, "nfe": gen["nfe"],
                   "n": args.n, **diagnose(gen["images"], gen["labels"], evaluator, train_uint8, test_uint8, native)}
            rows.append(row)
            save_so_far(rows, args)
            tqdm.write(" ".join(f"{k}={row.get(k)}" for k in ("weights", "sampler", "options", "steps", "guidance", "fid", "fid_matched")))
            if args.save_samples:
                tag = options_tag(options) + ("" if weights == "ema" else f"_{weights}")
                np.savez_compressed(args.out / f"{run.name}_{sampler}_{steps}_w{guidance:g}{tag}.npz",
                                    images=crop_to(gen["images"], native)[:, 0].numpy(),
                                    labels=np.asarray([] if gen["labels"] is None else gen["labels"].numpy()))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, action="append", default=[], help="repeat for several runs")
    p.add_argument("--settings", default=":4:1",
                   help="comma-separated SAMPLER:STEPS:GUIDANCE[:KEY=VALUE...], the options going to the sampler, e.g. "
                        "imm_pushforward:4:1:spacing=edm (default: the run's sampler, 4 steps, no guidance)")
    p.add_argument("--weights", default="ema", type=lambda s: [w.strip() for w in s.split(",") if w.strip()],
                   help="which weights to sample from, comma-separated: ema (the EMA, when the run has one), raw "
                        "(the trained weights); each gets every setting")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--inception", default="", help="TorchScript Inception-v3 file for FID")
    p.add_argument("--data", default="", help="dataset path if the run's own path does not resolve here")
    p.add_argument("--real", action="store_true", help="also diagnose the first N training images")
    p.add_argument("--save-samples", action="store_true", help="write each setting's samples as uint8 npz (native size)")
    p.add_argument("--samples", type=Path, action="append", default=[],
                   help="a saved sample file (npz, as --save-samples writes), repeatable: scored against the first "
                        "--n test images, beside the first --n training images")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="compile the model's blocks first (GPU)")
    p.add_argument("--out", type=Path, default=Path("results/diagnose_fid"))
    args = p.parse_args()
    if args.samples and (args.run_dir or args.real):
        raise SystemExit("--samples reads saved samples: give it without --run-dir and --real")
    if not args.run_dir and not args.real and not args.samples:
        raise SystemExit("give --run-dir, --real, or both (or --samples)")
    settings = parse_settings(args.settings)
    if not args.weights or set(args.weights) - {"ema", "raw"}:
        raise SystemExit(f"--weights takes ema, raw or both (comma-separated), got {','.join(args.weights) or 'nothing'}")
    dev = pick_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with friendly_errors():
        rows = saved_sample_rows(args, dev) if args.samples else generated_rows(args, settings, dev)
    (args.out / "diagnose_fid.json").write_text(json.dumps(rows, indent=1))
    table = markdown_table(rows, [c for c in COLUMNS if any(r.get(c) not in (None, "") for r in rows)])
    (args.out / "diagnose_fid.md").write_text(f"device {torch.cuda.get_device_name() if dev.type == 'cuda' else dev.type}\n\n{table}\n")
    print(table)
    print(f"wrote {args.out / 'diagnose_fid.csv'} in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
