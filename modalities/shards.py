"""Streaming webdataset shards: node and worker splitting, per-epoch shard shuffling, a sample
shuffle buffer, endless resampling, and decoding that skips, counts and logs bad samples.

A stream that yields no valid sample in a whole pass over its shards raises DataError instead of
spinning forever.
"""
from __future__ import annotations

import io
import json
import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from modalities.text_data import DataError

log = logging.getLogger("onebackbone.data")
IMAGE_EXTS = ("png", "jpg", "jpeg", "webp", "bmp")


class SkipSample(Exception):
    """Raised by a decoder: the sample is counted under ``reason`` and dropped."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def expand_shards(pattern: str) -> list[str]:
    from webdataset.shardlists import expand_urls

    urls = expand_urls(pattern)
    found = [u for u in urls if Path(u).is_file()]
    if not found:
        raise DataError(f"shard pattern {pattern!r} matches no files (expanded to {len(urls)} names, e.g. {urls[0]!r})")
    if len(found) < len(urls):
        log.warning("%d of %d shards named by %s do not exist; using the rest", len(urls) - len(found), len(urls), pattern)
    return found


def decode_image(data: bytes, size: int, channels: int) -> torch.Tensor:
    """Any PIL-readable image, any size and mode -> (channels, size, size) in [-1, 1]: RGBA is composited
    on black, the shorter side is resized to ``size``, then the centre is cropped."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            im = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            im.alpha_composite(rgba)
        im = im.convert("L" if channels == 1 else "RGB")
        w, h = im.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), Image.BICUBIC if scale > 1 else Image.LANCZOS)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
        t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(size, size, -1)
    return t.permute(2, 0, 1).float() / 127.5 - 1


def image_text_decoder(size: int, channels: int) -> Callable[[dict], dict]:
    def decode(sample: dict) -> dict:
        img_key = next((k for k in IMAGE_EXTS if k in sample), None)
        if img_key is None:
            raise SkipSample("missing image")
        if "txt" not in sample:
            raise SkipSample("missing caption")
        try:
            caption = sample["txt"].decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SkipSample("caption not UTF-8") from None
        try:
            image = decode_image(sample[img_key], size, channels)
        except Exception:  # PIL raises many kinds for bad bytes
            raise SkipSample("image does not decode") from None
        label = None
        if "json" in sample:
            try:
                label = json.loads(sample["json"]).get("label")
            except (ValueError, AttributeError):
                pass
        return {"image": image, "caption": caption, "label": -1 if label is None else int(label)}

    return decode


def text_decoder(sample: dict) -> dict:
    if "txt" not in sample:
        raise SkipSample("missing text")
    try:
        return {"text": sample["txt"].decode("utf-8")}
    except UnicodeDecodeError:
        raise SkipSample("text not UTF-8") from None


class ShardStream(IterableDataset):
    """Endless stream of decoded samples from this rank's share of the shards."""

    def __init__(self, pattern: str, decode: Callable[[dict], Any], rank: int = 0, world: int = 1, seed: int = 0,
                 shuffle_buffer: int = 1000):
        self.urls = expand_shards(pattern)
        if world > len(self.urls):
            raise DataError(f"{world} processes but only {len(self.urls)} shard(s) in {pattern!r}: "
                            "write at least one shard per process")
        self.pattern, self.decode, self.rank, self.world = pattern, decode, rank, world
        self.seed, self.buffer = seed, shuffle_buffer

    def _epoch_urls(self, epoch: int, worker: int, workers: int) -> list[str]:
        order = list(self.urls)
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order[self.rank::self.world][worker::workers]

    def _samples(self, urls: list[str], skipped: Counter) -> Iterator[dict]:
        import webdataset as wds

        def handler(exn: Exception) -> bool:
            skipped["unreadable tar data"] += 1
            log.warning("skipping unreadable shard data (%s)", exn)
            return True

        for raw in wds.tarfile_samples([{"url": u} for u in urls], handler=handler):
            try:
                yield self.decode(raw)
            except SkipSample as s:
                skipped[s.reason] += 1
                if sum(skipped.values()) <= 10:
                    log.warning("skipping sample %s: %s", raw.get("__key__"), s.reason)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        rng = random.Random(hash((self.seed, self.rank, worker)))
        skipped: Counter = Counter()
        buffer: list[dict] = []
        epoch = 0
        while True:
            produced = 0
            for sample in self._samples(self._epoch_urls(epoch, worker, workers), skipped):
                produced += 1
                sample["_skipped"], sample["_worker"] = dict(skipped), worker
                if len(buffer) < self.buffer:
                    buffer.append(sample)
                    continue
                i = rng.randrange(len(buffer))
                buffer[i], sample = sample, buffer[i]
                yield sample
            if produced == 0:
                raise DataError(f"no valid samples in {len(self.urls)} shard(s) of {self.pattern!r} "
                                f"(skipped: {dict(skipped) or 'none'}); check the shards")
            epoch += 1


class _Chunks(IterableDataset):
    """A stream's samples in lists of ``size``, tensors as numpy arrays: one queue transfer per chunk,
    and arrays travel inside the pickle (a tensor would cost a shared-memory file descriptor each,
    about a millisecond per sample)."""

    def __init__(self, stream: ShardStream, size: int):
        self.stream, self.size = stream, size

    def __iter__(self) -> Iterator[list[dict]]:
        chunk: list[dict] = []
        for sample in self.stream:
            chunk.append({k: v.numpy() if torch.is_tensor(v) else v for k, v in sample.items()})
            if len(chunk) == self.size:
                yield chunk
                chunk = []


def _as_is(chunk: list[dict]) -> list[dict]:
    """Instead of DataLoader's default_convert, which would turn the arrays back into tensors."""
    return chunk


class StreamReader:
    """Main-process side: pulls samples, keeps the count for resuming and the skip totals."""

    def __init__(self, stream: ShardStream, num_workers: int = 0, chunk: int = 32):
        workers = min(num_workers, max(1, len(stream.urls) // stream.world))
        self.stream = stream
        self.loader = DataLoader(_Chunks(stream, chunk), batch_size=None, num_workers=workers,
                                 persistent_workers=workers > 0, collate_fn=_as_is)
        self.iter = iter(self.loader)
        self.pending: list[dict] = []
        self.consumed = 0
        self.skipped_by_worker: dict[int, dict] = {}

    def next(self) -> dict:
        if not self.pending:
            self.pending = next(self.iter)[::-1]
        sample = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in self.pending.pop().items()}
        self.consumed += 1
        self.skipped_by_worker[sample.pop("_worker")] = sample.pop("_skipped")
        return sample

    def take(self, n: int) -> list[dict]:
        return [self.next() for _ in range(n)]

    def skip_to(self, consumed: int) -> None:
        """Resume: replay the deterministic stream up to where the run stopped."""
        while self.consumed < consumed:
            self.next()

    @property
    def skipped(self) -> Counter:
        total: Counter = Counter()
        for c in self.skipped_by_worker.values():
            total.update(c)
        return total
