import numpy as np
import pytest
import torch
from PIL import Image

from modalities.image_data import crop_to, load_digits, load_image_sets, prepare, to_uint8
from modalities.text_data import DataError


def test_digits_embedded_default():
    train, test = load_digits()
    assert len(train) + len(test) == 1797 and train.images.shape[1:] == (1, 8, 8)
    assert train.images.min() >= -1 and train.images.max() <= 1 and train.num_classes == 10


def test_pad_then_crop_is_identity_and_uint8_roundtrip():
    train, _ = load_digits()
    padded = prepare(train, 12, -1.0)
    assert padded.images.shape[-1] == 12 and padded.native_size == 8
    assert (padded.images[..., :2, :] == -1).all()
    assert torch.equal(crop_to(padded.images, 8), train.images)
    u = to_uint8(train.images)
    assert torch.equal(to_uint8(u.float() / 127.5 - 1), u)


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_npz_mnist_layout(tmp_path):
    x = np.random.randint(0, 256, (20, 28, 28), dtype=np.uint8)
    y = np.arange(20) % 10
    p = write_npz(tmp_path / "m.npz", x_train=x, y_train=y, x_test=x[:5], y_test=y[:5])
    train, test = load_image_sets(p, 32)
    assert train.images.shape == (20, 1, 32, 32) and train.native_size == 28 and len(test) == 5


@pytest.mark.parametrize("arrays,match", [
    (dict(pixels=np.zeros((4, 8, 8), np.uint8)), "expected x_train"),
    (dict(images=np.zeros((4, 8, 8), np.float32), labels=np.zeros(4, np.int64)), "uint8"),
    (dict(images=np.zeros((4, 8, 9), np.uint8), labels=np.zeros(4, np.int64)), "square"),
    (dict(images=np.zeros((4, 8), np.uint8), labels=np.zeros(4, np.int64)), "shape"),
    (dict(images=np.zeros((4, 8, 8), np.uint8), labels=np.zeros(3, np.int64)), r"shape \(4,\)"),
    (dict(images=np.zeros((4, 8, 8), np.uint8), labels=np.zeros(4, np.float32)), "integer class labels"),
])
def test_bad_npz_is_refused(tmp_path, arrays, match):
    with pytest.raises(DataError, match=match):
        load_image_sets(write_npz(tmp_path / "bad.npz", **arrays), 0)


def test_folder_with_classes_and_mixed_sizes(tmp_path):
    for cls, size in (("a", 10), ("b", 10), ("b", 12)):
        d = tmp_path / cls
        d.mkdir(exist_ok=True)
        Image.fromarray(np.random.randint(0, 255, (size, size), np.uint8)).save(d / f"{size}_{len(list(d.iterdir()))}.png")
    with pytest.raises(DataError, match="mixed sizes"):
        load_image_sets(str(tmp_path), 0)
    train, test = load_image_sets(str(tmp_path), 8)
    assert train.images.shape[1:] == (1, 8, 8) and train.num_classes == 2


def test_missing_path_and_unknown_kind(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image_sets(str(tmp_path / "none.npz"), 0)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="neither"):
        load_image_sets(str(tmp_path / "x.txt"), 0)


def test_image_task_batches_are_the_scaled_images_at_the_drawn_indices(tmp_path):
    """Batches come from a training set scaled once (and moved to the device on a GPU); they must
    equal scaling each gathered batch, bitwise, and depend only on (seed, step, micro). The indices come
    from the data stream, not the objective's (whose words a generator of one seed would repeat)."""
    from core.batch_rng import DATA_STREAM, BatchRNG
    from core.config import build_config
    from modalities.image_task import ImageTask
    from objectives.imm import IMMConfig

    cfg = build_config("imm", IMMConfig, [], [])
    task = ImageTask(cfg, tmp_path, resuming=False)
    batch = task.train_batch(step=3, micro=1, batch_size=16)
    idx = BatchRNG(cfg.train.seed, 3, 1, stream=DATA_STREAM).indices(len(task.train), 16)
    assert torch.equal(batch["images"], task.train.images[idx] * task.scale)
    assert not torch.equal(idx, BatchRNG(cfg.train.seed, 3, 1).indices(len(task.train), 16))
    assert torch.equal(batch["labels"], task.train.labels[idx])
    task.to("cpu")  # what the trainer calls: same batches after it
    again = task.train_batch(step=3, micro=1, batch_size=16)
    assert torch.equal(again["images"], batch["images"]) and torch.equal(again["labels"], batch["labels"])
    assert not torch.equal(task.train_batch(step=4, micro=1, batch_size=16)["images"], batch["images"])
