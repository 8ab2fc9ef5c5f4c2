#!/usr/bin/env python
"""Autoregressive generation cost and quality across sequence length.

  python scripts/scaling_seqlen.py --run-dir runs/ar-shakespeare --out results/scaling_seqlen
  python scripts/scaling_seqlen.py --size gpt2-124m --cost-contexts 256,1024,4096 --out results/decode_124m

Cost: per-token latency, prefill and total time, KV-cache size and (GPU) peak memory, with and
without the KV cache, for each attention backend usable here. Quality (needs --run-dir): validation
bits per byte when the model sees context windows from 64 tokens up to its trained length.
Writes seqlen_cost.csv, seqlen_quality.csv, seqlen_cost.png, seqlen_quality.png.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from core.device import sync  # noqa: E402
from core.errors import friendly_errors  # noqa: E402
from scripts.tables import write_csv  # noqa: E402

COST_COLUMNS = ["backend", "cache", "context", "ms_per_token", "tokens_per_s", "prefill_ms", "total_ms", "kv_cache_mb",
                "peak_mem_gb", "batch", "new_tokens", "device"]
QUALITY_COLUMNS = ["context", "val_loss", "val_bpb", "windows"]
COMPILED = "sdpa_compiled"  # not an attention backend: the sampler with one compiled decode step


@torch.no_grad()
def decode_cost(model, context: int, new_tokens: int, use_cache: bool, batch: int = 1, repeats: int = 3,
                compiled: bool = False) -> dict:
    """Time generating new_tokens after a prompt that fills the context up to ``context``; with
    ``compiled``, by the sampler whose decode step is compiled once (always cached)."""
    from samplers.ar import generate
    from samplers.ar_compiled import generate_compiled

    if not 1 < new_tokens < context:
        from core.config import ConfigError

        raise ConfigError(f"new tokens ({new_tokens}) must be between 2 and the context ({context}) minus one")
    device = next(model.parameters()).device
    vocab = model.text.vocab_size
    prompt = torch.randint(0, vocab, (batch, context - new_tokens)).tolist()

    def timed(n):
        sync(device)
        t = time.perf_counter()
        if compiled:
            generate_compiled(model, prompt, n, temperature=0)
        else:
            generate(model, prompt, n, temperature=0, use_cache=use_cache)
        sync(device)
        return time.perf_counter() - t

    timed(2)  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    total = min(timed(new_tokens) for _ in range(repeats))
    first = min(timed(1) for _ in range(repeats))
    per_tok = (total - first) / max(1, new_tokens - 1)
    if per_tok <= 0:  # the new tokens took less time than the timing noise: no per-token figure, not a negative one
        print(f"warning: context {context}: {new_tokens} new tokens timed no slower than 1; raise --new-tokens",
              file=sys.stderr)
        per_tok = float("nan")
    bb = model.backbone
    kv_bytes = 2 * bb.n_layer * batch * context * bb.d_model * next(model.parameters()).element_size()
    return {"context": context, "ms_per_token": 1000 * per_tok, "tokens_per_s": batch / per_tok, "prefill_ms": 1000 * first,
            "total_ms": 1000 * total, "kv_cache_mb": kv_bytes / 2 ** 20 if use_cache else 0.0,
            "peak_mem_gb": torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else None,
            "batch": batch, "new_tokens": new_tokens, "cache": use_cache, "device": str(device)}


def usable_backends(names: list[str], device) -> list[str]:
    from core.attention import BACKENDS

    return [n for n in names if n in BACKENDS and BACKENDS.get(n).available(device) and (n != "flex" or device.type == "cuda")]


@torch.no_grad()
def context_quality(model, data, contexts: list[int], batch: int = 16, dtype_ctx=None) -> list[dict]:
    """Validation loss and bits per byte when every prediction sees at most ``context`` tokens."""
    import contextlib

    from modalities.text_data import bits_per_byte, mean_window_loss, tile_windows

    device = next(model.parameters()).device
    rows = []
    for c in contexts:
        windows = tile_windows(data.val.ids, c)
        val = mean_window_loss(model, windows, batch, device, dtype_ctx or contextlib.nullcontext)
        rows.append({"context": c, "val_loss": val, "val_bpb": bits_per_byte(val, data.val.tokens_per_byte),
                     "windows": len(windows)})
    return rows


def plot(cost: list[dict], quality: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for key in sorted({(r["backend"], r["cache"]) for r in cost}):
        pts = [r for r in cost if (r["backend"], r["cache"]) == key]
        ax.plot([r["context"] for r in pts], [r["ms_per_token"] for r in pts], "o-",
                label=f"{key[0]}, {'KV cache' if key[1] else 'no cache'}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("ms per generated token")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "seqlen_cost.png")
    plt.close(fig)
    if quality:
        fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
        ax.plot([r["context"] for r in quality], [r["val_bpb"] for r in quality], "o-")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context window (tokens)")
        ax.set_ylabel("validation bits per byte")
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "seqlen_quality.png")
        plt.close(fig)


def run(run_dir: Path | None, size: str, cost_contexts: list[int], quality_contexts: list[int] | None,
        backends: list[str], new_tokens: int, batch: int, device: str, out: Path) -> dict:
    from core.config import ModelConfig
    from core.device import autocast, pick_device, pick_dtype
    from core.loading import load_run
    from core.model import Model, ModelSpec

    dev = pick_device(device)
    out.mkdir(parents=True, exist_ok=True)
    cfg = data = None
    if run_dir is not None:
        cfg, spec, model, _ = load_run(run_dir, device=dev)
    else:
        model = Model(ModelConfig(size=size), ModelSpec(vocab_size=50304)).to(dev).eval()
    dtype = pick_dtype("auto", dev)
    cost_model = model.to(dtype) if dtype != torch.float32 else model  # decode in the serving precision
    # (label, attention backend, cache, compiled sampler) of every decode setting to time
    settings = [(COMPILED, "sdpa", True, True)] if COMPILED in backends else []
    settings += [(b, b, cache, False) for b in usable_backends(backends, dev) for cache in (True, False)]

    def measure(setting, context: int, repeats: int) -> dict:
        _, backend, use_cache, compiled = setting
        cost_model.backbone.attn_backend = backend
        return decode_cost(cost_model, context, new_tokens, use_cache, batch, repeats, compiled)

    # the first timings of a process ran up to 2x slow on the H200 (clocks, kernel selection,
    # allocator growth; compilation for the compiled sampler): decode once at every setting first
    for setting in settings:
        for c in cost_contexts:
            measure(setting, c, repeats=1)
    cost = [{"backend": setting[0], **measure(setting, c, repeats=3)} for setting in settings for c in cost_contexts]
    cost_model.backbone.attn_backend = "auto"
    quality = []
    if run_dir is not None:
        from modalities.text_data import build_text_data
        from modalities.tokenizers import load_tokenizer

        data = build_text_data(cfg.data, cfg.train.seed, load_tokenizer(run_dir))
        limit = cfg.data.seq_len
        contexts = quality_contexts or [c for c in (64, 128, 256, 512, 1024, 2048, 4096) if c < limit] + [limit]
        model = model.float() if dtype != torch.float32 else model
        quality = context_quality(model, data, [c for c in contexts if c <= limit], dtype_ctx=lambda: autocast(dev, dtype))
    write_csv(cost, out / "seqlen_cost.csv", COST_COLUMNS)
    write_csv(quality, out / "seqlen_quality.csv", QUALITY_COLUMNS)
    plot(cost, quality, out)
    ratios = {}
    for key in {(r["backend"], r["cache"]) for r in cost}:
        pts = sorted((r for r in cost if (r["backend"], r["cache"]) == key), key=lambda r: r["context"])
        ratios[f"{key[0]}_{'cache' if key[1] else 'nocache'}"] = pts[-1]["ms_per_token"] / pts[0]["ms_per_token"]
    return {"cost": cost, "quality": quality, "latency_ratio_longest_over_shortest": ratios}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, help="an AR run (cost of its model, and quality across context)")
    p.add_argument("--size", default="gpt2-124m", help="without --run-dir: a registered size with random weights")
    p.add_argument("--cost-contexts", default="256,1024,4096")
    p.add_argument("--quality-contexts", default="", help="default: 64, 128, ... up to the trained length")
    p.add_argument("--backends", default="sdpa,flex,flash_attn,xformers",
                   help=f"those usable here are measured; {COMPILED}: the ar_compiled sampler (SDPA, one compiled step)")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=Path("results/scaling_seqlen"))
    args = p.parse_args()
    with friendly_errors():
        res = run(args.run_dir, args.size, [int(c) for c in args.cost_contexts.split(",")],
                  [int(c) for c in args.quality_contexts.split(",") if c] or None, args.backends.split(","),
                  args.new_tokens, args.batch, args.device, args.out)
    for r in res["cost"]:
        print(f"{r['backend']:6s} {'cache   ' if r['cache'] else 'no cache'} ctx {r['context']:5d}: "
              f"{r['ms_per_token']:.2f} ms/token")
    for r in res["quality"]:
        print(f"context {r['context']:5d}: val bpb {r['val_bpb']:.4f}")
    print("latency ratio longest/shortest context:", {k: round(v, 3) for k, v in res["latency_ratio_longest_over_shortest"].items()})


if __name__ == "__main__":
    main()
