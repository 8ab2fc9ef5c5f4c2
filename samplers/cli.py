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


def image_steps_and_options(args, default_steps: int) -> tuple[int, dict]:
    """--steps (an explicit --times grid sets it when --steps is not given) and the time-grid options."""
    from samplers.imm import grid_options, grid_steps

    steps = args.steps if args.steps is not None else grid_steps(args.times) if args.times else default_steps
    return steps, grid_options(args.spacing, args.times)


def parse_labels(text: str | None, n: int, num_classes: int):
    if not num_classes:
        return None
    if not text:
        return torch.arange(n) % num_classes
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--labels must be comma-separated integers, got {text!r}") from None
    bad = [v for v in values if not 0 <= v < num_classes]
    if bad:
        raise ValueError(f"--labels {bad} out of range: this model has classes 0..{num_classes - 1}")
    return torch.tensor(values).repeat((n + len(values) - 1) // len(values))[:n]


@SAMPLE_COMMANDS.register("image")
def sample_images(args, cfg, spec, model, run_dir, device):
    import numpy as np

    from modalities.image_data import to_uint8
    from modalities.image_eval import save_grid
    from objectives import get_objective
    from samplers.image_common import check_compatible, check_options, options_tag

    objective = get_objective(cfg.objective.name)(cfg.objective, spec)
    s = cfg.sample
    name = args.sampler or s.sampler or objective.default_sampler
    sampler = get_sampler(name)
    check_compatible(name, sampler, cfg.objective.name)
    steps, options = image_steps_and_options(args, s.steps)
    check_options(name, sampler, options)
    n = _pick(args.num, 10 * s.num_samples)
    labels = parse_labels(args.labels, n, spec.num_classes)
    guidance = _pick(args.guidance, s.guidance)
    g = torch.Generator(device=device).manual_seed(args.seed)
    res = sampler(model, objective, None if labels is None else labels.to(device), n, steps, guidance, generator=g, **options)
    images = to_uint8(res.images / spec.image_scale).cpu()
    out = args.out or run_dir / "samples" / f"{name}_{steps}steps_g{guidance:g}{options_tag(options)}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_grid(images, out, nrow=10)
    np.savez(out.with_suffix(".npz"), images=images.numpy(), labels=np.asarray([] if labels is None else labels))
    print(f"{n} samples, {name}, {steps} steps, guidance {guidance:g}, NFE {res.nfe} per image -> {out} (+ .npz)")


@SAMPLE_COMMANDS.register("mixed")
def sample_mixed(args, cfg, spec, model, run_dir, device):
    """Caption -> image grid (--prompt, or one row per digit with the evaluation caption)."""
    import numpy as np

    from modalities.image_data import to_uint8
    from modalities.image_eval import save_grid
    from modalities.shard_writer import caption_of
    from modalities.tokenizers import load_tokenizer
    from objectives import get_objective
    from samplers.image_common import options_tag

    tok = load_tokenizer(run_dir)
    objective = get_objective(cfg.objective.name)(cfg.objective, spec)
    s = cfg.sample
    if args.prompt:
        texts = [args.prompt] * _pick(args.num, 10)
    else:
        per = max(1, _pick(args.num, 40) // 10)
        texts = [caption_of(c) for c in range(10) for _ in range(per)]
    steps, options = image_steps_and_options(args, s.steps)
    guidance = _pick(args.guidance, s.guidance)
    g = torch.Generator(device=device).manual_seed(args.seed)
    res = get_sampler("caption_to_image")(model, objective, [tok.encode(t) for t in texts], tok, steps, guidance,
                                          generator=g, **options)
    images = to_uint8(res.images / spec.image_scale).cpu()
    out = args.out or run_dir / "samples" / f"caption_to_image_{steps}steps_g{guidance:g}{options_tag(options)}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_grid(images, out, nrow=10 if args.prompt else max(1, len(texts) // 10))
    np.savez(out.with_suffix(".npz"), images=images.numpy(), captions=np.asarray(texts))
    print(f"{len(texts)} images from captions, {steps} steps, guidance {guidance:g}, NFE {res.nfe} per image -> {out}")
