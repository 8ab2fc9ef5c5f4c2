"""The text task: tokenizer + corpus -> next-token batches, validation loss and bits per byte, samples."""
from __future__ import annotations

from pathlib import Path

import torch

from core.model import ModelSpec
from modalities.task import TASKS, Task
from modalities.text_data import bits_per_byte, build_text_data, mean_window_loss
from modalities.tokenizers import load_tokenizer
from samplers import get_sampler


@TASKS.register("text")
class TextTask(Task):
    def __init__(self, cfg, run_dir: Path, resuming: bool, rank: int = 0, world: int = 1):
        self.cfg, self.rank, self.world = cfg, rank, world
        tokenizer = load_tokenizer(run_dir) if resuming and (Path(run_dir) / "tokenizer.json").is_file() else None
        self.data = build_text_data(cfg.data, cfg.train.seed, tokenizer)
        self.tokenizer = self.data.tokenizer
        if rank == 0 and tokenizer is None:
            self.tokenizer.save(run_dir)
        self.tokens_per_sample = cfg.data.seq_len

    def spec(self) -> ModelSpec:
        return ModelSpec(vocab_size=self.tokenizer.vocab_size)

    def train_batch(self, step: int, micro: int, batch_size: int) -> dict:
        return self.data.batch(step, batch_size, micro, self.rank, self.world)

    def describe(self) -> str:
        d = self.data
        return (f"text: {self.tokenizer.kind} tokenizer, vocab {self.tokenizer.vocab_size}, "
                f"{len(d.train.ids):,} train / {len(d.val.ids):,} val tokens, context {d.seq_len}")

    @torch.no_grad()
    def evaluate(self, model, objective, ctx) -> dict:
        bs = self.cfg.train.batch_size
        windows = self.data.val_windows(self.cfg.train.eval_batches * bs)
        val_loss = mean_window_loss(model, windows, bs, ctx.device, ctx.autocast)
        return {"val/loss": val_loss, "val/bpb": bits_per_byte(val_loss, self.data.val.tokens_per_byte)}

    def prompts(self, n: int) -> list[list[int]]:
        scfg = self.cfg.sample
        if scfg.prompt:
            return [self.tokenizer.encode(scfg.prompt)] * n
        windows = self.data.val_windows(n)
        return [w[:16].tolist() for w in windows]

    @torch.no_grad()
    def write_samples(self, model, objective, step: int, out_dir: Path, ctx) -> Path:
        scfg = self.cfg.sample
        generate = get_sampler(scfg.sampler or "ar")
        prompts = self.prompts(scfg.num_samples)
        g = torch.Generator(device=ctx.device).manual_seed(scfg.seed)
        with ctx.autocast():
            outs = generate(model, prompts, scfg.max_new_tokens, scfg.temperature, scfg.top_k, scfg.top_p,
                            pad_id=self.tokenizer.pad, generator=g)
        parts = []
        for p, o in zip(prompts, outs):
            parts.append(f"[prompt] {self.tokenizer.decode(p)}\n[sample] {self.tokenizer.decode(o)}\n")
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"step_{step:07d}.txt"
        path.write_text(("\n" + "-" * 72 + "\n").join(parts))
        return path
