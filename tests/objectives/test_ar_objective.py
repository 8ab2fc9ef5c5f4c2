import math

import torch

from modalities.text_data import bits_per_byte
from objectives.ar import AutoregressiveObjective, ARConfig


def test_loss_is_cross_entropy_of_shifted_tokens(tiny_text_model):
    m = tiny_text_model()
    tokens = torch.randint(0, 97, (2, 9))
    loss = AutoregressiveObjective(ARConfig())(m, {"tokens": tokens})["loss"]
    logits = m("text", tokens=tokens[:, :-1])
    logp = logits.log_softmax(-1)
    manual = -logp.gather(-1, tokens[:, 1:, None]).mean()
    torch.testing.assert_close(loss, manual)


def test_uniform_init_gives_log_vocab():
    from core.config import ModelConfig
    from core.model import Model, ModelSpec

    torch.manual_seed(0)
    m = Model(ModelConfig(size="tiny", init_std=1e-4), ModelSpec(vocab_size=200))
    loss = AutoregressiveObjective(ARConfig())(m, {"tokens": torch.randint(0, 200, (2, 17))})["loss"]
    assert abs(loss.item() - math.log(256)) < 1e-3  # padded table of 256 logits, all ~equal


def test_overfits_a_repeating_sequence(tiny_text_model):
    m = tiny_text_model().train()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    obj = AutoregressiveObjective(ARConfig())
    tokens = torch.arange(0, 40).remainder(7).view(1, 40).repeat(4, 1)
    first = None
    for _ in range(60):
        loss = obj(m, {"tokens": tokens})["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


def test_bits_per_byte():
    assert bits_per_byte(math.log(2), 1.0) == 1.0
    assert abs(bits_per_byte(math.log(256), 0.25) - 2.0) < 1e-12  # 4 bytes per token
