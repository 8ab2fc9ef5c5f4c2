import io
import itertools
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from modalities.shard_writer import brace_pattern, write_image_shards, write_text_shards
from modalities.shards import ShardStream, StreamReader, decode_image, image_text_decoder, text_decoder
from modalities.text_data import DataError


def png(arr, mode=None, fmt="PNG"):
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format=fmt)
    return buf.getvalue()


def add(tar, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def good_sample(tar, key, label=3):
    add(tar, f"{key}.png", png(np.full((10, 10), 200, np.uint8)))
    add(tar, f"{key}.txt", b"a handwritten three")
    add(tar, f"{key}.json", json.dumps({"label": label}).encode())


@pytest.fixture
def messy_shards(tmp_path):
    with tarfile.open(tmp_path / "s-000.tar", "w") as t:  # good, garbage image, missing caption, stray member
        good_sample(t, "a")
        add(t, "b.png", b"\x89PNG not really")
        add(t, "b.txt", b"broken image")
        add(t, "c.png", png(np.zeros((10, 10), np.uint8)))
        add(t, "README", b"garbage member")
        good_sample(t, "d")
    with tarfile.open(tmp_path / "s-001.tar", "w"):  # empty shard
        pass
    with tarfile.open(tmp_path / "s-002.tar", "w") as t:
        good_sample(t, "e")
        for i in range(5):
            good_sample(t, f"f{i}")
    data = (tmp_path / "s-002.tar").read_bytes()
    (tmp_path / "s-002.tar").write_bytes(data[: len(data) * 2 // 3])  # truncated mid-member
    return str(tmp_path / "s-{000..002}.tar")


def test_loader_survives_messy_shards(messy_shards):
    stream = ShardStream(messy_shards, image_text_decoder(8, 1), shuffle_buffer=2)
    reader = StreamReader(stream)
    got = reader.take(12)  # several passes over the shards: never crashes, never hangs
    assert all(s["image"].shape == (1, 8, 8) and s["caption"] == "a handwritten three" for s in got)
    assert {s["label"] for s in got} == {3}
    skipped = reader.skipped
    assert skipped["image does not decode"] >= 1
    # sample c lacks its caption; the truncated shard ends inside sample f3, which is incomplete too
    assert skipped["missing caption"] + skipped["unreadable tar data"] >= 2


def test_zero_valid_samples_is_an_error_not_a_hang(tmp_path):
    with tarfile.open(tmp_path / "z-000.tar", "w") as t:
        add(t, "a.txt", b"caption without image")
    stream = ShardStream(str(tmp_path / "z-000.tar"), image_text_decoder(8, 1))
    with pytest.raises(DataError, match="no valid samples"):
        StreamReader(stream).next()


def test_pattern_matching_nothing(tmp_path):
    with pytest.raises(DataError, match="matches no files"):
        ShardStream(str(tmp_path / "nothing-{000..009}.tar"), text_decoder)


def test_more_ranks_than_shards(tmp_path):
    paths = write_text_shards("hello world " * 50, str(tmp_path / "t-%06d.tar"), chunk_chars=100, per_shard=100)
    with pytest.raises(DataError, match="only 1 shard"):
        ShardStream(paths[0], text_decoder, rank=0, world=2)


def test_node_split_is_disjoint_and_covers(tmp_path):
    x = torch.linspace(-1, 1, 40 * 64).view(40, 1, 8, 8)
    paths = write_image_shards(x, torch.arange(40) % 10, str(tmp_path / "d-%06d.tar"), per_shard=10)
    pattern = brace_pattern(paths)
    keys = []
    for rank in range(2):
        stream = ShardStream(pattern, lambda s: {"key": s["__key__"]}, rank=rank, world=2, shuffle_buffer=1)
        keys.append({s["key"] for s in itertools.islice(iter(stream), 20)})
    assert keys[0].isdisjoint(keys[1]) and len(keys[0] | keys[1]) == 40


def test_writer_roundtrip_captions(tmp_path):
    x = torch.rand(12, 1, 8, 8) * 2 - 1
    paths = write_image_shards(x, torch.arange(12) % 10, str(tmp_path / "w-%06d.tar"), per_shard=5)
    assert len(paths) == 3 and brace_pattern(paths).endswith("w-{000000..000002}.tar")
    samples = list(itertools.islice(iter(ShardStream(brace_pattern(paths), image_text_decoder(8, 1), shuffle_buffer=1)), 12))
    by_label = {s["label"]: s["caption"] for s in samples}
    assert any(w in by_label[7] for w in ("seven", "7"))
    for s in samples:  # images survive the PNG round trip up to uint8 rounding
        candidates = [x[i] for i in range(12) if i % 10 == s["label"]]
        assert any(torch.allclose(s["image"], c, atol=1 / 127.5 + 1e-6) for c in candidates)


@pytest.mark.parametrize("mode,shape", [("L", (30, 20)), ("RGB", (16, 40, 3)), ("RGBA", (24, 24, 4))])
def test_decode_any_size_and_mode(mode, shape):
    arr = np.random.randint(0, 255, shape, np.uint8)
    for channels in (1, 3):
        out = decode_image(png(arr, mode), 8, channels)
        assert out.shape == (channels, 8, 8) and out.min() >= -1 and out.max() <= 1
    jpg = decode_image(png(np.random.randint(0, 255, (20, 20, 3), np.uint8), "RGB", "JPEG"), 8, 3)
    assert jpg.shape == (3, 8, 8)


def test_center_crop_keeps_the_middle():
    arr = np.zeros((10, 30), np.uint8)
    arr[:, 10:20] = 255  # a white square in the middle of a wide image
    out = decode_image(png(arr), 10, 1)
    assert out.min() > 0.9  # the crop is the white middle


def test_reader_with_workers_is_deterministic_and_resumes_mid_chunk(tmp_path):
    """Workers hand over chunks of samples; the sample order must not depend on that, and resuming at
    any count (also inside a chunk) must continue with exactly the samples an unbroken read gets."""
    x = torch.linspace(-1, 1, 48 * 64).view(48, 1, 8, 8)
    pattern = brace_pattern(write_image_shards(x, torch.arange(48) % 10, str(tmp_path / "r-%06d.tar"), per_shard=12))

    def reader():
        return StreamReader(ShardStream(pattern, image_text_decoder(8, 1), shuffle_buffer=4), num_workers=2, chunk=5)

    first = reader().take(40)
    assert all(torch.is_tensor(s["image"]) and s["image"].shape == (1, 8, 8) for s in first)
    again = reader().take(40)
    assert all(torch.equal(a["image"], b["image"]) and a["caption"] == b["caption"] for a, b in zip(first, again))
    resumed = reader()
    resumed.skip_to(23)  # inside the fifth chunk
    assert resumed.consumed == 23
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(first[23:], resumed.take(17)))
