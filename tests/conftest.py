import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

torch.set_num_threads(2)
# cached classifiers go to a fresh folder, not the user's cache (subprocesses inherit it)
os.environ["ONEBACKBONE_CACHE"] = tempfile.mkdtemp(prefix="onebackbone-cache-")


@pytest.fixture
def tiny_text_model():
    """A small random text model whose logits are spread enough that greedy choices are stable."""
    from core.config import ModelConfig
    from core.model import Model, ModelSpec

    def make(vocab=97, seed=0, **kw):
        torch.manual_seed(seed)
        cfg = ModelConfig(size="tiny", n_layer=2, n_head=4, d_model=64, init_std=0.2, **kw)
        return Model(cfg, ModelSpec(vocab_size=vocab)).eval()

    return make


@pytest.fixture
def explicit_grid_samples(tmp_path):
    """Checks that sample.py runs an explicit --times grid on an IMM or mixed run: the uniform 4-step grid
    written out gives the default images, bitwise, and a shifted grid others. Returns the sampling
    function, images(run, name, *flags) -> uint8 array, for more checks."""
    import numpy as np

    import sample

    def images(run, name, *flags):
        sample.main(["--run-dir", str(run), "--num", "10", "--out", str(tmp_path / f"{name}.png"), *flags])
        return np.load(tmp_path / f"{name}.npz")["images"]

    def check(run):
        default = images(run, "default", "--steps", "4")
        assert np.array_equal(images(run, "uniform", "--times", "0.994/0.747/0.5/0.253/0.006"), default)
        assert not np.array_equal(images(run, "shifted", "--times", "0.994/0.85/0.6/0.33/0.006"), default)
        return images

    return check
