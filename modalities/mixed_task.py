"""The mixed task: image-caption webdataset shards (and optional text-only shards) -> interleaved
batches; evaluation of caption -> image (class accuracy, FID on classifier features), image ->
caption (accuracy of the named digit) and text bits per byte.

With no --data, the embedded 8x8 digits are written as captioned shards into the run directory.
"""
from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from core.model import ModelSpec
from modalities.image_data import load_image_sets, to_uint8
from modalities.image_eval import save_grid
from modalities.mixed_sequence import CAPTION_TO_IMAGE, IGNORE, IMAGE_TO_CAPTION, MixedLayout, pack_batch
from modalities.shard_writer import DIGIT_WORDS, brace_pattern, caption_of, write_image_shards
from modalities.shards import ShardStream, StreamReader, image_text_decoder, text_decoder
from modalities.task import TASKS, Task
from modalities.text_data import DataError, bits_per_byte, mean_window_loss, read_text_file, split_text, tile_windows
from modalities.text_windows import TextWindows
from modalities.tokenizers import build_tokenizer, load_tokenizer

DIGIT_PATTERN = re.compile(r"\b(" + "|".join(DIGIT_WORDS) + r"|\d)\b")


def named_digit(text: str) -> int | None:
    m = DIGIT_PATTERN.search(text.lower())
    if not m:
        return None
    w = m.group(1)
    return int(w) if w.isdigit() else DIGIT_WORDS.index(w)


@torch.no_grad()
def caption_accuracy(model, objective, tok, test, n: int, ctx, batch: int = 500) -> float:
    """Share of the first n labelled images whose greedy caption names their digit."""
    from samplers import get_sampler

    correct = 0
    for i in range(0, n, batch):
        x = test.images[i:min(n, i + batch)].to(ctx.device) * model.spec.image_scale
        with ctx.autocast():
            caps = get_sampler("image_to_caption")(model, objective, x, tok, objective.cfg.caption_len)
        for c, y in zip(caps, test.labels[i:i + batch].tolist()):
            correct += int(named_digit(tok.decode(c)) == y)
    return correct / n


def write_default_shards(run_dir: Path) -> str:
    """The embedded digits as captioned shards (written once per run directory)."""
    out = Path(run_dir) / "shards"
    existing = sorted(out.glob("train-*.tar"))
    if existing:
        return brace_pattern([str(p) for p in existing])
    train, _ = load_image_sets("", 0)
    return brace_pattern(write_image_shards(train.images, train.labels, str(out / "train-%06d.tar"), per_shard=250))


@TASKS.register("mixed")
class MixedTask(Task):
    def __init__(self, cfg, run_dir: Path, resuming: bool, rank: int = 0, world: int = 1):
        self.cfg, self.rank, self.run_dir = cfg, rank, Path(run_dir)
        d, o = cfg.data, cfg.objective
        default = not d.path
        pattern = write_default_shards(run_dir) if default else d.path
        self.size = d.image_size or (8 if default else 0)
        if not self.size:
            raise DataError("set data.image_size for shard data (images are resized and centre-cropped to it)")
        if self.size % d.patch_size:
            raise DataError(f"data.image_size={self.size} is not divisible by data.patch_size={d.patch_size}")
        probe = StreamReader(ShardStream(pattern, image_text_decoder(self.size, 3), rank, world, cfg.train.seed, 1))
        first = probe.take(64)  # decides channels, scale and the tokenizer corpus
        channels = 1 if all(bool((s["image"][0] == s["image"][1]).all() and (s["image"][1] == s["image"][2]).all())
                            for s in first) else 3
        self.images = StreamReader(ShardStream(pattern, image_text_decoder(self.size, channels), rank, world,
                                               cfg.train.seed, d.shuffle_buffer), d.num_workers)
        text_docs = None
        if d.text_path and d.text_ratio > 0:
            text_docs = StreamReader(ShardStream(d.text_path, text_decoder, rank, world, cfg.train.seed + 1,
                                                 d.shuffle_buffer), d.num_workers)
        tok_file = Path(run_dir) / "tokenizer.json"
        if resuming and tok_file.is_file():
            self.tokenizer = load_tokenizer(run_dir)
        else:
            corpus = "\n".join(s["caption"] for s in first)
            self.tokenizer = build_tokenizer(d.tokenizer, corpus, d.vocab_size, d.tokenizer_path)
            if rank == 0:
                self.tokenizer.save(run_dir)
        spec_path = Path(run_dir) / "spec.json"
        if resuming and spec_path.is_file():
            self.scale = ModelSpec.from_json(spec_path.read_text()).image_scale
        else:
            sample = torch.stack([s["image"][:channels] for s in first])
            self.scale = float(o.sigma_d / sample.std())
        self.channels = channels
        self.layout = MixedLayout(o.caption_len, self.size // d.patch_size)
        self.tokens_per_sample = self.layout.seq_len
        self.texts = TextWindows(text_docs, self.tokenizer, self.layout.seq_len) if text_docs else None
        self.truncated = 0
        self.eval_sets = None
        self._evaluator = None
        self._text_eval = None

    # --- spec and batches ----------------------------------------------------------------------
    def spec(self) -> ModelSpec:
        return ModelSpec(vocab_size=self.tokenizer.vocab_size, image_channels=self.channels, image_size=self.size,
                         patch_size=self.cfg.data.patch_size, num_classes=0, image_scale=self.scale)

    def describe(self) -> str:
        extra = f", text shards at ratio {self.cfg.data.text_ratio}" if self.texts else ""
        return (f"mixed: {len(self.images.stream.urls)} image-caption shard(s){extra}; {self.channels}x{self.size}"
                f"x{self.size} images, {self.tokenizer.kind} tokenizer (vocab {self.tokenizer.vocab_size}), "
                f"sequences of {self.layout.seq_len} tokens")

    def _rng(self, step: int, micro: int) -> random.Random:
        return random.Random(hash((self.cfg.train.seed, step, micro, self.rank)))

    def train_batch(self, step: int, micro: int, batch_size: int) -> dict:
        rng = self._rng(step, micro)
        if self.texts is not None and rng.random() < self.cfg.data.text_ratio:
            return self._text_batch(batch_size)
        o = self.cfg.objective
        samples = self.images.take(batch_size)
        captions = []
        # a fixed number of caption -> image groups per batch, first (the samples arrive shuffled): the
        # objective's no-grad target pass over those rows then keeps one shape, and one compiled graph
        groups = batch_size // o.M
        noised = self._caption_to_image_groups(batch_size)
        directions = [CAPTION_TO_IMAGE] * (noised * o.M) + [IMAGE_TO_CAPTION] * ((groups - noised) * o.M)
        for s, d in zip(samples, directions):
            ids = self.tokenizer.encode(s["caption"])
            if len(ids) > o.caption_len:
                self.truncated += 1
            if d == CAPTION_TO_IMAGE and rng.random() < o.caption_dropout:
                ids = []
            captions.append(ids)
        batch = pack_batch(self.tokenizer, captions, directions, self.layout)
        batch["images"] = torch.stack([s["image"] for s in samples]) * self.scale
        batch["kind"] = "image_text"
        return batch

    def _text_batch(self, batch_size: int) -> dict:
        length = self.layout.seq_len
        rows = np.full((batch_size, length + 1), self.tokenizer.pad, dtype=np.int64)
        for i, ids in enumerate(self.texts.take(batch_size)):  # numpy: torch.tensor per row cost 5 of 7.5 ms
            rows[i, :len(ids)] = ids
        tokens = torch.from_numpy(rows)
        targets = tokens[:, 1:].clone()
        targets[targets == self.tokenizer.pad] = IGNORE
        return {"kind": "text", "tokens": tokens[:, :-1], "targets": targets}

    def data_state(self) -> dict:
        return {"images": self.images.consumed, "texts": self.texts.state() if self.texts else {},
                "truncated_captions": self.truncated}

    def _caption_to_image_groups(self, batch_size: int) -> int:
        return round(self.cfg.objective.p_caption_to_image * (batch_size // self.cfg.objective.M))

    @property
    def caption_to_image_images(self) -> int:
        """Images trained caption -> image so far (for the image-only model at equal images): every
        image-text batch takes a batch of images and leads with a fixed number of such groups."""
        b = self.cfg.train.batch_size
        return self.images.consumed // b * self._caption_to_image_groups(b) * self.cfg.objective.M

    @property
    def text_tokens_seen(self) -> int:
        """Tokens of text-only sequences trained on so far (for equal-text-budget comparisons)."""
        return (self.texts.windows_taken if self.texts else 0) * self.layout.seq_len

    def load_data_state(self, state: dict) -> None:
        self.images.skip_to(state.get("images", 0))
        if self.texts is not None:
            self.texts.load_state(state.get("texts", {}))
        self.truncated = state.get("truncated_captions", 0)

    def stream_stats(self) -> dict:
        out = {"data/truncated_captions": self.truncated, "data/text_tokens": self.text_tokens_seen,
               "data/caption_to_image_images": self.caption_to_image_images}
        skipped = self.images.skipped + (self.texts.reader.skipped if self.texts else Counter())
        out["data/skipped_samples"] = sum(skipped.values())
        return out

    # --- evaluation ------------------------------------------------------------------------------
    def _eval_images(self):
        if self.eval_sets is None:
            d = self.cfg.data
            path = d.eval_path if d.eval_path else ("" if not d.path else None)
            if path is None:
                self.eval_sets = ()
            else:
                self.eval_sets = load_image_sets(path, self.size, d.image_pad_value)
        return self.eval_sets

    def evaluator(self, device):
        """Scores caption -> image samples like the image task does (cached classifier and reference
        features); None without labelled evaluation images."""
        if self._evaluator is None and self._eval_images():
            from modalities.image_eval import ImageEvaluator

            self._evaluator = ImageEvaluator(*self._eval_images(), device)
        return self._evaluator

    def caption_ids(self, labels: list[int]) -> list[list[int]]:
        return [self.tokenizer.encode(caption_of(c)) for c in labels]

    @torch.no_grad()
    def evaluate(self, model, objective, ctx) -> dict:
        s = self.cfg.sample
        out: dict = self.stream_stats()
        if not ctx.is_main:
            return out
        ev = self.evaluator(ctx.device)
        if ev is not None and s.eval_images > 0:
            with ctx.autocast():
                gen = ev.generate(model, objective, "caption_to_image", s.steps, s.guidance, s.eval_images, s.seed,
                                  batch=500, objective_name="mixed", captions=(self.tokenizer, caption_of))
            scores = ev.score(gen["images"], gen["labels"], kid_subsets=10)
            out["eval/c2i_class_acc"], out["eval/c2i_fid_clf"] = scores["class_acc"], scores["fid_clf"]
            out["eval/nfe"] = gen["nfe"]
            out["eval/i2c_acc"] = caption_accuracy(model, objective, self.tokenizer, ev.test,
                                                   min(s.eval_images, len(ev.test)), ctx)
        bpb = self.text_bpb(model, ctx)
        if bpb is not None:
            out["val/bpb"] = bpb
        return out

    @torch.no_grad()
    def text_bpb(self, model, ctx) -> float | None:
        d = self.cfg.data
        if not d.text_eval_path:
            return None
        if self._text_eval is None:
            _, val = split_text(read_text_file(d.text_eval_path), d.val_fraction)
            ids = torch.tensor(self.tokenizer.encode(val))
            cap = max(1, self.cfg.train.eval_batches) * self.cfg.train.batch_size
            self._text_eval = (tile_windows(ids, self.layout.seq_len, cap), len(ids) / len(val.encode()))
        windows, tokens_per_byte = self._text_eval
        loss = mean_window_loss(model, windows, self.cfg.train.batch_size, ctx.device, ctx.autocast)
        return bits_per_byte(loss, tokens_per_byte)

    @torch.no_grad()
    def write_samples(self, model, objective, step: int, out_dir: Path, ctx) -> Path:
        from samplers import get_sampler

        s = self.cfg.sample
        labels = [c for c in range(10) for _ in range(max(1, s.num_samples))]
        g = torch.Generator(device=ctx.device).manual_seed(s.seed)
        with ctx.autocast():
            res = get_sampler("caption_to_image")(model, objective, self.caption_ids(labels), self.tokenizer, s.steps,
                                                   s.guidance, generator=g)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"step_{step:07d}.png"
        save_grid(to_uint8(res.images / self.scale).cpu(), path, nrow=max(1, s.num_samples))
        if self._eval_images():
            _, test = self._eval_images()
            x = test.images[:10].to(ctx.device) * self.scale
            with ctx.autocast():
                caps = get_sampler("image_to_caption")(model, objective, x, self.tokenizer, self.cfg.objective.caption_len)
            lines = [f"true {y}: {self.tokenizer.decode(c)!r}" for c, y in zip(caps, test.labels[:10].tolist())]
            (out_dir / f"step_{step:07d}_captions.txt").write_text("\n".join(lines) + "\n")
        return path
