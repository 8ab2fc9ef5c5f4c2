import pytest
import torch

from core import checkpoint as ck
from core.config import TrainConfig
from core.ema import EMA
from core.optim import build_optimizer
from core.state import load_model_state, load_optim_state


def make(tiny_text_model, seed=0):
    m = tiny_text_model(seed=seed)
    opt = build_optimizer(m, TrainConfig(), torch.device("cpu"))
    return m, opt


def train_a_bit(m, opt):
    for _ in range(2):
        m("text", tokens=torch.randint(0, 97, (2, 8))).sum().backward()
        opt.step()
        opt.zero_grad()


def test_roundtrip_is_exact(tmp_path, tiny_text_model):
    m, opt = make(tiny_text_model)
    train_a_bit(m, opt)
    ema = EMA(m, 0.9)
    ema.update(m, 100)
    path = ck.save_module_checkpoint(tmp_path, 5, m, opt, ema, {"step": 5})
    m2, opt2 = make(tiny_text_model, seed=1)
    ema2 = EMA(m2, 0.9)
    data = ck.read_checkpoint(path)
    load_model_state(m2, data["model"], False)
    load_optim_state(m2, opt2, data["optim"], False)
    ema2.load_state(data["ema"])
    assert data["meta"]["trainer"]["step"] == 5
    for a, b in zip(ema.shadow, ema2.shadow):
        assert torch.equal(a, b)
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    for pid in s1:
        for k in s1[pid]:
            assert torch.equal(torch.as_tensor(s1[pid][k]), torch.as_tensor(s2[pid][k]))
    assert m2.text.head.weight is m2.text.embed.weight  # tying survives loading


def test_truncated_file_is_refused(tmp_path, tiny_text_model):
    m, opt = make(tiny_text_model)
    path = ck.save_module_checkpoint(tmp_path, 1, m, opt)
    f = path / "model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(ck.CheckpointError, match="truncated"):
        ck.read_checkpoint(path)


def test_corrupt_safetensors_with_matching_size_is_refused(tmp_path, tiny_text_model):
    m, opt = make(tiny_text_model)
    path = ck.save_module_checkpoint(tmp_path, 1, m, opt)
    f = path / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[:8] = b"\xff" * 8  # header length now absurd
    f.write_bytes(bytes(data))
    with pytest.raises(ck.CheckpointError):
        ck.read_checkpoint(path)


def test_unpublished_writes_are_invisible(tmp_path, tiny_text_model):
    m, _ = make(tiny_text_model)
    ck.save_module_checkpoint(tmp_path, 1, m)
    (tmp_path / ".tmp_step_0000002_123").mkdir()  # a writer killed before its rename
    (tmp_path / "step_0000003").mkdir()  # or a directory without meta.json
    found = ck.list_checkpoints(tmp_path)
    assert [p.name for p in found] == ["step_0000001", "step_0000003"]
    with pytest.raises(ck.CheckpointError, match="no meta.json"):
        ck.verify(found[-1])
    assert ck.latest_valid_before(tmp_path, found[-1]).name == "step_0000001"


def test_keep_prunes_old(tmp_path, tiny_text_model):
    m, _ = make(tiny_text_model)
    for s in range(1, 5):
        ck.save_module_checkpoint(tmp_path, s, m, keep=2)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == ["step_0000003", "step_0000004"]


def test_ema_warms_up_then_follows_its_decay(tiny_text_model):
    m = tiny_text_model()
    ema = EMA(m, 0.999)
    assert ema.decay_at(0) == 0.1 and ema.decay_at(10_000) == 0.999
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    ema.update(m, 0)  # decay 0.1: the shadow moves 90% of the way
    name = ema.names.index("backbone.blocks.0.attn.qkv.weight")
    p = dict(m.named_parameters())["backbone.blocks.0.attn.qkv.weight"]
    torch.testing.assert_close(ema.shadow[name], p - 0.1)
