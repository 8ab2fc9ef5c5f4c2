"""Write webdataset tar shards: images as .png with a generated .txt caption and .json metadata, or
text chunks as .txt. Labelled images get captions from several templates ("a handwritten seven")."""
from __future__ import annotations

import io
import json
import random
from pathlib import Path

import torch
from PIL import Image

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEMPLATES = [
    "a handwritten {word}",
    "the digit {digit}",
    "a picture of the number {word}",
    "an image of a {digit}",
    "handwritten digit {word}",
    "a {word}, written by hand",
]
EVAL_TEMPLATE = TEMPLATES[0]


def caption_of(label: int) -> str:
    """The caption that asks for a digit in evaluation."""
    return EVAL_TEMPLATE.format(word=DIGIT_WORDS[label])


def caption_for(label: int, rng: random.Random, class_names: list[str] | None = None) -> str:
    word = class_names[label] if class_names else DIGIT_WORDS[label] if label < 10 else str(label)
    return rng.choice(TEMPLATES).format(word=word, digit=label if not class_names else word)


def png_bytes(image: torch.Tensor) -> bytes:
    """(C, H, W) float in [-1, 1] -> PNG bytes."""
    arr = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


def write_image_shards(images: torch.Tensor, labels: torch.Tensor | None, pattern: str, per_shard: int = 1000,
                       seed: int = 0, captions: list[str] | None = None) -> list[str]:
    """pattern like 'dir/train-%06d.tar'. Returns the shard paths written."""
    import webdataset as wds

    Path(pattern).parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with wds.ShardWriter(pattern, maxcount=per_shard, verbose=0) as sink:
        for i in range(len(images)):
            sample = {"__key__": f"{i:08d}", "png": png_bytes(images[i])}
            meta = {}
            if labels is not None:
                meta["label"] = int(labels[i])
            if captions is not None:
                sample["txt"] = captions[i]
            elif labels is not None:
                sample["txt"] = caption_for(int(labels[i]), rng)
            sample["json"] = json.dumps(meta)
            sink.write(sample)
        count = sink.shard
    return [pattern % k for k in range(count)]


def write_text_shards(text: str, pattern: str, chunk_chars: int = 2048, per_shard: int = 200) -> list[str]:
    import webdataset as wds

    Path(pattern).parent.mkdir(parents=True, exist_ok=True)
    with wds.ShardWriter(pattern, maxcount=per_shard, verbose=0) as sink:
        for i, start in enumerate(range(0, len(text), chunk_chars)):
            sink.write({"__key__": f"{i:08d}", "txt": text[start:start + chunk_chars]})
        count = sink.shard
    return [pattern % k for k in range(count)]


def brace_pattern(paths: list[str]) -> str:
    """'dir/train-{000000..000009}.tar' for consecutive shards written by the functions above."""
    first, last = Path(paths[0]).stem, Path(paths[-1]).stem
    prefix, a = first.rsplit("-", 1)
    b = last.rsplit("-", 1)[1]
    return str(Path(paths[0]).parent / f"{prefix}-{{{a}..{b}}}.tar") if a != b else paths[0]


def images_from_source(source: str, split: str, image_size: int = 0):
    """(images, labels) from 'digits', an .npz or an image folder (see modalities/image_data.py)."""
    from modalities.image_data import load_image_sets

    train, test = load_image_sets("" if source == "digits" else source, image_size)
    ds = train if split == "train" else test
    return ds.images, ds.labels

