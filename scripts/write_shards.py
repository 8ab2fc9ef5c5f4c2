#!/usr/bin/env python
"""Write webdataset shards for mixed runs.

  python scripts/write_shards.py --source digits --out shards/digits-train
  python scripts/write_shards.py --source ../shared/data/mnist.npz --split train --out shards/mnist-train
  python scripts/write_shards.py --source photos/ --out shards/photos   # NAME.txt captions beside the images
  python scripts/write_shards.py --text ../shared/data/tinyshakespeare.txt --out shards/shakespeare

Labelled images get generated captions ("a handwritten seven", ...); a folder of images uses the
caption in NAME.txt beside each NAME.png when there is one. Text files are cut into chunks (of the
first 1 - val_fraction of the file, so the validation split stays unseen).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.errors import friendly_errors  # noqa: E402
from modalities.image_data import IMAGE_SUFFIXES, load_image_sets  # noqa: E402
from modalities.shard_writer import brace_pattern, write_image_shards, write_text_shards  # noqa: E402
from modalities.text_data import read_text_file, split_text  # noqa: E402


def write_folder(folder: Path, pattern: str, per_shard: int) -> list[str]:
    """Original image bytes (any size and format) with the caption of NAME.txt beside NAME.ext;
    images without a caption are skipped and counted."""
    import webdataset as wds

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    Path(pattern).parent.mkdir(parents=True, exist_ok=True)
    missing = 0
    with wds.ShardWriter(pattern, maxcount=per_shard, verbose=0) as sink:
        for i, f in enumerate(files):
            cap = f.with_suffix(".txt")
            if not cap.is_file():
                missing += 1
                continue
            ext = f.suffix.lower().lstrip(".").replace("jpeg", "jpg")
            sink.write({"__key__": f"{i:08d}", ext: f.read_bytes(), "txt": cap.read_text().strip()})
        count = sink.shard
    if missing:
        print(f"skipped {missing} image(s) without a .txt caption")
    return [pattern % k for k in range(count)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", help="digits, an .npz with labels, or a folder of images")
    p.add_argument("--text", help="a UTF-8 text file to cut into text-only shards")
    p.add_argument("--split", choices=["train", "test"], default="train")
    p.add_argument("--image-size", type=int, default=0, help="resize .npz images (0 keeps their size)")
    p.add_argument("--per-shard", type=int, default=1000)
    p.add_argument("--chunk-chars", type=int, default=2048)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--out", required=True, help="output prefix; shards are PREFIX-000000.tar, ...")
    args = p.parse_args()
    if bool(args.source) == bool(args.text):
        p.error("give exactly one of --source and --text")
    with friendly_errors():
        if args.text:
            train, _ = split_text(read_text_file(args.text), args.val_fraction)
            paths = write_text_shards(train, f"{args.out}-%06d.tar", args.chunk_chars, args.per_shard)
        elif Path(args.source).is_dir():
            paths = write_folder(Path(args.source), f"{args.out}-%06d.tar", args.per_shard)
        else:
            source = "" if args.source == "digits" else args.source
            train, test = load_image_sets(source, args.image_size)
            ds = train if args.split == "train" else test
            paths = write_image_shards(ds.images, ds.labels, f"{args.out}-%06d.tar", args.per_shard)
    print(f"wrote {len(paths)} shard(s): {brace_pattern(paths)}")


if __name__ == "__main__":
    main()
