"""Text corpora and next-token batches.

The embedded default corpus is CPython's ``pydoc_data.topics`` (the help() topics, ~465 kB), so a
fresh install can train with no download. Any UTF-8 file works by path. Splits are by position:
the first (1 - val_fraction) of the characters train, the rest validate.

Batches are a pure function of (seed, step): resuming at step N reproduces the data exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from core.batch_rng import DATA_STREAM, BatchRNG
from modalities.tokenizers import Tokenizer, build_tokenizer


class DataError(ValueError):
    pass


def embedded_corpus() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def read_text_file(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"text file {p} does not exist")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{p} is not UTF-8 text (byte {e.start}: {e.reason}); convert it with iconv first") from None
    if not text.strip():
        raise DataError(f"{p} is empty: give a text file with some content")
    return text


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    if not 0 < val_fraction < 1:
        raise DataError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


@dataclass
class TokenSplit:
    ids: torch.Tensor  # (N,) int64
    n_bytes: int

    @property
    def tokens_per_byte(self) -> float:
        return len(self.ids) / self.n_bytes


class TextData:
    """Training windows drawn at random offsets; validation windows tiled in order."""

    def __init__(self, tokenizer: Tokenizer, train_text: str, val_text: str, seq_len: int, seed: int = 0):
        self.tokenizer, self.seq_len, self.seed = tokenizer, seq_len, seed
        self.train = TokenSplit(torch.tensor(tokenizer.encode(train_text), dtype=torch.long), len(train_text.encode()))
        self.val = TokenSplit(torch.tensor(tokenizer.encode(val_text), dtype=torch.long), len(val_text.encode()))
        for name, split in (("training", self.train), ("validation", self.val)):
            if len(split.ids) < seq_len + 1:
                raise DataError(
                    f"the {name} split has {len(split.ids)} tokens, fewer than data.seq_len + 1 = {seq_len + 1}: "
                    "lower data.seq_len or give a longer text"
                )

    def batch(self, step: int, batch_size: int, micro: int = 0, rank: int = 0, world: int = 1) -> dict:
        """(B, T+1) windows for one micro-batch: this rank's slice of a global batch that is a pure
        function of (seed, step, micro), so N ranks see what one process with N times the batch sees."""
        rng = BatchRNG(self.seed, step, micro, rank, world, stream=DATA_STREAM)
        starts = rng.indices(len(self.train.ids) - self.seq_len, batch_size)
        idx = starts[:, None] + torch.arange(self.seq_len + 1)
        return {"tokens": self.train.ids[idx]}

    def val_windows(self, max_windows: int) -> torch.Tensor:
        return tile_windows(self.val.ids, self.seq_len, max_windows)


def tile_windows(ids: torch.Tensor, length: int, max_windows: int | None = None) -> torch.Tensor:
    """Non-overlapping (length+1)-token windows covering ids (evenly spaced ones if capped)."""
    n = (len(ids) - 1) // length
    picks = torch.arange(n) if max_windows is None or n <= max_windows else torch.linspace(0, n - 1, max_windows).long()
    return ids[picks[:, None] * length + torch.arange(length + 1)]


@torch.no_grad()
def mean_window_loss(model, windows: torch.Tensor, batch: int, device, autocast) -> float:
    """Mean next-token loss (nats per token) of a text model over windows, ``batch`` at a time."""
    total = 0.0
    for i in range(0, len(windows), batch):
        w = windows[i:i + batch].to(device)
        with autocast():
            total += float(model("text", tokens=w[:, :-1], targets=w[:, 1:])) * len(w)
    return total / len(windows)


def bits_per_byte(loss_nats_per_token: float, tokens_per_byte: float) -> float:
    return loss_nats_per_token * tokens_per_byte / math.log(2)


def build_text_data(data_cfg, seed: int, tokenizer: Tokenizer | None = None) -> TextData:
    text = read_text_file(data_cfg.path) if data_cfg.path else embedded_corpus()
    train_text, val_text = split_text(text, data_cfg.val_fraction)
    if tokenizer is None:
        tokenizer = build_tokenizer(data_cfg.tokenizer, train_text, data_cfg.vocab_size, data_cfg.tokenizer_path)
    return TextData(tokenizer, train_text, val_text, data_cfg.seq_len, seed)
