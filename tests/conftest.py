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
