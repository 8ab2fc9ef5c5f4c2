#!/usr/bin/env python
"""Host cost of an IMM or mixed training step: how many operators the host dispatches per step, and
the step time, under each compile setting. Image and mixed training on a GPU wait on the host, so
fewer top-level operators per step is what `train.compile_heads` is for, and one launch per compiled
region what `train.cuda_graphs` is for; on a CPU with tiny widths the step time is mostly that host
cost too (and CUDA graphs do nothing there).

  python scripts/bench_host_ops.py                      # tiny widths, this machine
  python scripts/bench_host_ops.py --size dit-s --n-layer 8 --batch 256 --image-size 32 --variants regional,heads,graphs,full,full_graphs   # the MNIST recipe's shape (GPU)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

# each variant: what it compiles, and the train settings that do it (through the trainer's own
# compile_for_training)
VARIANTS = {
    "eager": ("nothing compiled", {"compile": False}),
    "regional": ("each block and the text head compiled (train.compile=true, the default)", {"compile": True}),
    "heads": ("regional plus the image codec's heads and the IMM loss (train.compile_heads=true)",
              {"compile": True, "compile_heads": True}),
    "graphs": ("heads, each compiled region run as a CUDA graph (train.cuda_graphs=true; GPU only)",
               {"compile": True, "compile_heads": True, "cuda_graphs": True}),
    "full": ("the whole loss as one compiled graph (train.compile_mode=full)", {"compile": True, "compile_mode": "full"}),
    "full_graphs": ("full, run as a CUDA graph (train.compile_mode=full train.cuda_graphs=true; GPU only)",
                    {"compile": True, "compile_mode": "full", "cuda_graphs": True}),
}


def example_batch(args) -> dict:
    """Random images with labels (imm), or captioned MNIST-layout rows, 3/4 caption -> image (mixed)."""
    images = torch.randn(args.batch, 1, args.image_size, args.image_size) * 0.5
    labels = torch.randint(0, 10, (args.batch,))
    if args.objective == "imm":
        return {"images": images, "labels": labels}
    from modalities.mixed_sequence import CAPTION_TO_IMAGE, IMAGE_TO_CAPTION, MixedLayout, pack_batch
    from modalities.shard_writer import caption_of
    from modalities.tokenizers import ByteTokenizer

    tok = ByteTokenizer()
    c2i = 3 * args.batch // 4 // 4 * 4  # whole groups of M = 4
    directions = [CAPTION_TO_IMAGE] * c2i + [IMAGE_TO_CAPTION] * (args.batch - c2i)
    batch = pack_batch(tok, [tok.encode(caption_of(int(y))) for y in labels], directions,
                       MixedLayout(32, args.image_size // 2))
    return {**batch, "images": images, "kind": "image_text", "vocab_size": tok.vocab_size}


def measure(variant: str, args, dev: torch.device) -> dict:
    from core.batch_rng import BatchRNG
    from core.config import ModelConfig, TrainConfig
    from core.device import autocast, pick_dtype
    from core.model import Model, ModelSpec
    from core.optim import build_optimizer
    from core.training_compile import compile_for_training
    from objectives import get_objective

    torch._dynamo.reset()
    torch.manual_seed(0)  # the same batch and weights in every variant
    batch = example_batch(args)
    mixed = args.objective == "mixed"
    spec = ModelSpec(image_channels=1, image_size=args.image_size, patch_size=2, num_classes=0 if mixed else 10,
                     image_scale=0.8, vocab_size=batch.pop("vocab_size", 0))
    cls = get_objective(args.objective)
    obj = cls(cls.Config(k=8), spec)
    torch.manual_seed(0)
    shape = dict(n_layer=args.n_layer, d_model=args.d_model, n_head=args.n_head) if args.size == "tiny" else \
        dict(n_layer=args.n_layer)
    model = Model(ModelConfig(size=args.size, **shape), spec).to(dev)
    tcfg = TrainConfig(lr=3e-4, weight_decay=0.0, **VARIANTS[variant][1])
    loss_fn = compile_for_training(model, obj, tcfg)
    opt = build_optimizer(model, tcfg, dev)
    batch = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in batch.items()}

    def step(i: int) -> torch.Tensor:
        if tcfg.cuda_graphs:  # as the trainer marks each step
            torch.compiler.cudagraph_mark_step_begin()
        with autocast(dev, pick_dtype("auto", dev)):
            loss = loss_fn(model, {**batch, "rng": BatchRNG(0, i, 0, device=dev)})["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    times, first_losses = [], []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        loss = step(i)
        if i < 3:  # the same seed and batch in every variant: these say whether they compute the same thing
            first_losses.append(float(loss))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for i in range(5):
            step(i)
    top = [e for e in prof.events() if e.name.startswith("aten::") and e.cpu_parent is None]
    return {"variant": variant, "step_ms": 1000 * statistics.median(times[args.warmup:]), "top_level_ops": len(top) / 5,
            "first_losses": first_losses}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objective", choices=["imm", "mixed"], default="imm")
    p.add_argument("--variants", default="eager,regional,heads", help=", ".join(f"{k}: {v[0]}" for k, v in VARIANTS.items()))
    p.add_argument("--size", default="tiny")
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--d-model", type=int, default=32, help="with --size tiny")
    p.add_argument("--n-head", type=int, default=2, help="with --size tiny")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--steps", type=int, default=40)
    args = p.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            sys.exit(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    from core.device import pick_device

    dev = pick_device("auto")
    if dev.type == "cpu":
        torch.set_num_threads(1)  # one host thread, as train.host_threads gives a GPU run
    print(f"device {torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}, {args.objective} step, batch {args.batch}, "
          f"{args.image_size}x{args.image_size} images, size {args.size}")
    print("| variant | step ms (median) | top-level operators per step | loss at steps 0 / 1 / 2 |\n|---|---|---|---|")
    for v in variants:
        r = measure(v, args, dev)
        losses = " / ".join(f"{x:.6g}" for x in r["first_losses"])
        print(f"| {v} | {r['step_ms']:.1f} | {r['top_level_ops']:.0f} | {losses} |", flush=True)


if __name__ == "__main__":
    main()
