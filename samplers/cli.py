"""What sample.py does for each task: read its flags, run the sampler, print or save the result."""
from __future__ import annotations

import sys

import torch

from core.registry import Registry
from samplers import get_sampler

SAMPLE_COMMANDS: Registry = Registry("sample command")


def _pick(flag, default):
    return default if flag is None else flag


@SAMPLE_COMMANDS.register("text")
def sample_text(args, cfg, spec, model, run_dir, device):
    from modalities.tokenizers import load_tokenizer

    tok = load_tokenizer(run_dir)
    s = cfg.sample
    prompt = _pick(args.prompt, s.prompt)
    n = _pick(args.num, 1 if prompt else s.num_samples)
    if prompt:
        prompts = [tok.encode(prompt)] * n
    else:
        from modalities.text_data import build_text_data

        prompts = [w[:16].tolist() for w in build_text_data(cfg.data, cfg.train.seed, tok).val_windows(n)]
    generate = get_sampler(args.sampler or s.sampler or "ar")
    g = torch.Generator(device=device).manual_seed(args.seed)
    outs = generate(model, prompts, _pick(args.max_new_tokens, s.max_new_tokens), _pick(args.temperature, s.temperature),
                    _pick(args.top_k, s.top_k), _pick(args.top_p, s.top_p), use_cache=not args.no_cache,
                    pad_id=tok.pad, generator=g)
    for i, (p, o) in enumerate(zip(prompts, outs)):
        if i:
            print("-" * 72)
        sys.stdout.write(tok.decode(p) + tok.decode(o) + "\n")
