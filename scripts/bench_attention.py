#!/usr/bin/env python
"""GPU micro-benchmark: one compiled attention layer on a mixed batch (causal text with
bidirectional image spans), forward and forward+backward, for each way of running the span mask.

  python scripts/bench_attention.py                       # the mixed MNIST shape: B=128, L=292, 6 heads of 64
  python scripts/bench_attention.py --batch 32 --length 1024

Variants: flex (the block-mask kernel as the trainer calls it), flex_contiguous (q, k, v materialised
first, so the compiler cannot fuse their producers into the kernel), sdpa_dense (SDPA with the boolean
mask). The outputs of every variant are checked against sdpa_dense first.

--layouts N first compares flex with SDPA over N different span layouts one after another (outputs
and gradients), the way the trainer calls the compiled kernel with a new mask every step.

--second-batch N then also calls each compiled layer with N rows (as the mixed objective's no-grad
target pass does with its caption -> image rows) and times that forward, under torch.compile's
default (a second shape makes dynamo recompile with symbolic shapes) and under dynamic=False.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from core.attention import FlexBackend, Prepared, SDPABackend  # noqa: E402
from core.blocks import Attention  # noqa: E402
from core.masks import AttnMask  # noqa: E402
from core.rope import Rotary, text_positions  # noqa: E402


class ContiguousFlex(FlexBackend):
    def attend(self, q, k, v, state, dropout_p=0.0):
        return super().attend(q.contiguous(), k.contiguous(), v.contiguous(), state, dropout_p)


VARIANTS = {"flex": FlexBackend, "flex_contiguous": ContiguousFlex, "sdpa_dense": SDPABackend}


def span_ids(batch: int, length: int, image: int, device) -> torch.Tensor:
    """One image span per sequence, at a different place in each (as captions of varying length put it)."""
    ids = torch.zeros(batch, length, dtype=torch.long, device=device)
    for i in range(batch):
        start = 1 + (i * 7) % max(1, length - image - 2)
        ids[i, start:start + image] = 1
    return ids


def timed(fn, iters: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - t) / iters


def layouts_agree(layer, rope, args, dev, trials: int = 3) -> None:
    """The compiled flex layer against SDPA with the dense mask over several span layouts in a row, with
    padding keys, outputs and input gradients: a block mask captured stale by the compiled kernel
    would pass the single-layout check below and fail here from the second layout on."""
    compiled = torch.compile(layer)
    print("| layout | rel. err output | rel. err input gradient |\n|---|---|---|")
    for trial in range(trials):
        g = torch.Generator(device="cpu").manual_seed(trial)
        ids = torch.zeros(args.batch, args.length, dtype=torch.long)
        valid = torch.ones(args.batch, args.length, dtype=torch.bool)
        for i in range(args.batch):
            start = int(torch.randint(1, args.length - args.image_tokens, (1,), generator=g))
            ids[i, start:start + args.image_tokens] = 1
            valid[i, args.length - int(torch.randint(0, 8, (1,), generator=g)):] = False
        mask = AttnMask.spans(ids.to(dev), valid.to(dev))
        results = []
        for name in ("sdpa_dense", "flex"):
            backend = VARIANTS[name]()
            prepared = Prepared(backend, backend.prepare(mask, args.batch, args.length, args.length, dev))
            x = torch.randn(args.batch, args.length, layer.qkv.in_features, device=dev,
                            generator=torch.Generator(device=dev).manual_seed(100 + trial)).requires_grad_()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = compiled(x, rope, prepared).float()
            out.square().mean().backward()
            results.append((out.detach(), x.grad))
        (o_ref, g_ref), (o, gr) = results
        rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
        print(f"| {trial} | {rel(o, o_ref):.2e} | {rel(gr, g_ref):.2e} |", flush=True)


def second_batch(layer, rope, x, mask, args, dev) -> None:
    """Forward time at a second batch size after the first, default compile vs dynamic=False."""
    n = args.second_batch
    mask_n = AttnMask.spans(span_ids(n, args.length, args.image_tokens, dev))
    print(f"| variant | compile | forward ms at B={args.batch} | forward ms at B={n} (after B={args.batch}) |\n|---|---|---|---|")
    for name in ("flex", "sdpa_dense"):
        for dynamic in (None, False):
            torch._dynamo.reset()
            compiled = torch.compile(layer, dynamic=dynamic)
            backend = VARIANTS[name]()
            big = Prepared(backend, backend.prepare(mask, args.batch, args.length, args.length, dev))
            small = Prepared(backend, backend.prepare(mask_n, n, args.length, args.length, dev))
            xn = x[:n].detach()
            with torch.autocast("cuda", dtype=torch.bfloat16), torch.no_grad():
                t_big = timed(lambda: compiled(x, rope, big), args.iters)
                t_small = timed(lambda: compiled(xn, rope, small), args.iters)
            print(f"| {name} | {'default' if dynamic is None else 'dynamic=False'} | {t_big:.3f} | {t_small:.3f} |", flush=True)
    torch._dynamo.reset()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--length", type=int, default=292)
    p.add_argument("--image-tokens", type=int, default=256)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--second-batch", type=int, default=0, help="also time a forward with this many rows")
    p.add_argument("--layouts", type=int, default=3, help="span layouts checked one after another, flex vs SDPA")
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_attention needs a CUDA GPU")
    dev = torch.device("cuda")
    d = args.heads * args.head_dim
    torch.manual_seed(0)
    layer = Attention(d, args.heads, qk_norm=True, dropout=0.0).to(dev)
    rope = Rotary(args.head_dim).to(dev)(text_positions(args.length, dev))
    mask = AttnMask.spans(span_ids(args.batch, args.length, args.image_tokens, dev))
    x = torch.randn(args.batch, args.length, d, device=dev, requires_grad=True)
    rows, ref = [], None
    if args.layouts:
        layouts_agree(layer, rope, args, dev, args.layouts)
    if args.second_batch:
        second_batch(layer, rope, x, mask, args, dev)
    compiled = torch.compile(layer)
    for name in ["sdpa_dense", "flex", "flex_contiguous"]:
        backend = VARIANTS[name]()
        prepared = Prepared(backend, backend.prepare(mask, args.batch, args.length, args.length, dev))
        try:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = compiled(x, rope, prepared).float()
                ref = out if ref is None else ref
                err = float((out - ref).norm() / ref.norm())

                def fwd():
                    with torch.no_grad():
                        compiled(x, rope, prepared)

                def fwd_bwd():
                    compiled(x, rope, prepared).float().square().mean().backward()

                rows.append((name, err, timed(fwd, args.iters), timed(fwd_bwd, args.iters), ""))
        except Exception as e:  # one failing variant must not hide the others
            rows.append((name, float("nan"), float("nan"), float("nan"), f"{type(e).__name__}: {str(e)[:120]}"))
        print(rows[-1], flush=True)
    print(f"\nB={args.batch} L={args.length} heads={args.heads}x{args.head_dim}, bf16 autocast, {torch.cuda.get_device_name()}")
    print("| variant | rel. err vs sdpa_dense | forward ms | forward+backward ms | note |\n|---|---|---|---|---|")
    for name, err, f, fb, note in rows:
        print(f"| {name} | {err:.2e} | {f:.3f} | {fb:.3f} | {note} |")


if __name__ == "__main__":
    main()
