"""train.py --objective mixed end to end, and its bad input."""
import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import train
from modalities.shard_writer import brace_pattern, write_image_shards, write_text_shards

TINY = ["model.n_layer=1", "model.d_model=32", "model.n_head=2", "train.batch_size=8", "sample.eval_images=20",
        "sample.num_samples=1", "train.eval_batches=1"]


def run_main(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        train.main(list(argv) + ["--quiet"])
    return e.value.code, capsys.readouterr().err


def test_default_mixed_run_writes_shards_and_trains(tmp_path, explicit_grid_samples):
    run = tmp_path / "r"
    text_shards = brace_pattern(write_text_shards("To be, or not to be. " * 300, str(tmp_path / "t-%06d.tar"), 200, 10))
    (tmp_path / "val.txt").write_text("To be, or not to be, that is the question. " * 40)
    summary = train.main(["--objective", "mixed", "--run-dir", str(run), "--quiet", "train.steps=6", "train.eval_every=6",
                          f"data.text_path={text_shards}", "data.text_ratio=0.3", f"data.text_eval_path={tmp_path / 'val.txt'}",
                          *TINY])
    assert sorted(p.name for p in (run / "shards").iterdir())[0] == "train-000000.tar"
    for key in ("eval/c2i_class_acc", "eval/i2c_acc", "val/bpb", "data/skipped_samples"):
        assert key in summary
    assert (run / "samples" / "step_0000006.png").is_file() and (run / "samples" / "step_0000006_captions.txt").is_file()
    explicit_grid_samples(run)  # caption -> image from the run runs the explicit grid it is given


def test_resume_continues_the_stream(tmp_path):
    """Images and text windows: the text documents (200 characters) span several windows, so the
    checkpoints fall inside a document."""
    run, straight = tmp_path / "r", tmp_path / "s"
    text = "".join(f"line {i}: to be, or not to be.\n" for i in range(400))
    text_shards = brace_pattern(write_text_shards(text, str(tmp_path / "t-%06d.tar"), 200, 10))
    common = ["--objective", "mixed", "--quiet", "train.eval_every=0", "train.ckpt_every=2", *TINY,
              f"data.text_path={text_shards}", "data.text_ratio=0.5"]
    train.main([*common, "--run-dir", str(run), "train.steps=4"])
    summary = train.main(["--run-dir", str(run), "--resume", "--quiet", "train.steps=6"])
    assert summary["step"] == 6
    # the resumed run ends where an uninterrupted one does in the stream, with the same weights
    train.main([*common, "--run-dir", str(straight), "train.steps=6"])
    last = lambda r: sorted((r / "ckpt").glob("step_*"))[-1]  # noqa: E731
    data = lambda r: json.loads((last(r) / "meta.json").read_text())["trainer"]["data"]  # noqa: E731
    assert data(run) == data(straight) and data(run)["images"] > 0 and data(run)["texts"]["windows"] > 0
    a, b = load_file(str(last(run) / "model.safetensors")), load_file(str(last(straight) / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_shard_pattern_matching_nothing(tmp_path, capsys):
    code, err = run_main(capsys, "--objective", "mixed", "--run-dir", str(tmp_path / "r"), "--data",
                         str(tmp_path / "none-{000..003}.tar"), "data.image_size=8", *TINY)
    assert code == 2 and "matches no files" in err and not (tmp_path / "r").exists()


def test_shards_without_valid_samples(tmp_path, capsys):
    with tarfile.open(tmp_path / "bad-000.tar", "w") as t:
        for name, data in (("a.png", b"not an image"), ("a.txt", b"caption"), ("b.txt", b"no image here")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    code, err = run_main(capsys, "--objective", "mixed", "--run-dir", str(tmp_path / "r"), "--data",
                         str(tmp_path / "bad-000.tar"), "data.image_size=8", *TINY)
    assert code == 2 and "no valid samples" in err


def test_long_captions_are_truncated_and_counted(tmp_path):
    x = torch.rand(16, 1, 8, 8) * 2 - 1
    caps = ["a handwritten digit with a very long description that goes on and on"] * 16
    shards = brace_pattern(write_image_shards(x, None, str(tmp_path / "c-%06d.tar"), per_shard=8, captions=caps))
    summary = train.main(["--objective", "mixed", "--run-dir", str(tmp_path / "r"), "--data", shards, "--quiet",
                          "data.image_size=8", "objective.caption_len=10", "train.steps=2", "train.eval_every=2",
                          "sample.eval_images=0", *TINY[:-3]])
    assert summary["data/truncated_captions"] == 16


def test_undecodable_images_are_skipped_and_counted(tmp_path):
    x = torch.rand(8, 1, 8, 8) * 2 - 1
    paths = write_image_shards(x, torch.arange(8), str(tmp_path / "g-%06d.tar"), per_shard=8)
    with tarfile.open(tmp_path / "g-000001.tar", "w") as t:
        for name, data in (("z.png", b"\x89PNG\r\n garbage"), ("z.txt", b"a broken one")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        buf = io.BytesIO()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="PNG")
        for name, data in (("y.png", buf.getvalue()), ("y.txt", b"a good one")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    pattern = str(tmp_path / "g-{000000..000001}.tar")
    summary = train.main(["--objective", "mixed", "--run-dir", str(tmp_path / "r"), "--data", pattern, "--quiet",
                          "data.image_size=8", "train.steps=4", "train.eval_every=4", "sample.eval_images=0",
                          "data.shuffle_buffer=2", *TINY[:-3]])
    assert summary["data/skipped_samples"] >= 1
    del paths
