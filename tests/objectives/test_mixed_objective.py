from pathlib import Path

import pytest
import torch

from core.batch_rng import BatchRNG
from core.config import ModelConfig
from core.model import Model, ModelSpec
from modalities.mixed_sequence import MixedLayout, pack_batch
from modalities.tokenizers import ByteTokenizer
from objectives.mixed import MixedConfig, MixedObjective

TOK = ByteTokenizer()
SPEC = ModelSpec(vocab_size=TOK.vocab_size, image_channels=1, image_size=8, patch_size=4)


def setup(directions):
    torch.manual_seed(0)
    m = Model(ModelConfig(size="tiny", n_layer=1, d_model=32, n_head=2), SPEC)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    caps = [TOK.encode(f"digit {i}") for i in range(len(directions))]
    b = pack_batch(TOK, caps, directions, MixedLayout(8, 2))
    b["images"] = torch.randn(len(directions), 1, 8, 8) * 0.5
    b["kind"] = "image_text"
    return m, b


def test_two_passes_clean_rows_and_loss_composition():
    m, b = setup(["c2i"] * 2 + ["i2c"] * 2)
    calls = []
    m.register_forward_pre_hook(lambda mod, a, kw: calls.append((torch.is_grad_enabled(), kw["noise_t"].clone(),
                                                                 kw["tokens"].shape[0])), with_kwargs=True)
    obj = MixedObjective(MixedConfig(M=2, lam=3.0), SPEC)
    out = obj(m, b)
    (g1, nt1, rows1), (g2, nt2, rows2) = calls
    assert g1 and not g2  # target pass without gradients
    assert rows1 == 4 and rows2 == 2  # the target pass runs only the caption -> image rows
    assert nt1[0] == nt1[1] > 0 and (nt1[2:] == 0).all()  # a group shares t; clean rows have t = 0
    torch.testing.assert_close(out["loss"], out["ar_loss"] + 3.0 * out["imm_loss"])
    out["loss"].backward()
    assert m.image.patch_embed.weight.grad.abs().sum() > 0 and m.text.embed.weight.grad.abs().sum() > 0


def test_image_to_caption_only_batch_has_no_imm_term():
    m, b = setup(["i2c"] * 4)
    out = MixedObjective(MixedConfig(M=2), SPEC)(m, b)
    assert "imm_loss" not in out and torch.equal(out["loss"], out["ar_loss"] + 0)


def test_text_only_batches_train_next_token_loss():
    m, _ = setup(["c2i"] * 2)
    tokens = torch.randint(0, 256, (2, 10))
    out = MixedObjective(MixedConfig(M=2), SPEC)(m, {"kind": "text", "tokens": tokens[:, :-1], "targets": tokens[:, 1:]})
    logits = m("text", tokens=tokens[:, :-1])
    ref = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
    torch.testing.assert_close(out["loss"], ref)


def test_caption_to_image_rows_must_lead_the_batch():
    m, b = setup(["i2c"] * 2 + ["c2i"] * 2)
    with pytest.raises(ValueError, match="caption -> image rows first"):
        MixedObjective(MixedConfig(M=2), SPEC)(m, b)


def test_compiled_objective_does_not_recompile_from_batch_to_batch():
    """The direction layout is a host list the compiled loss guards on; with the caption -> image rows
    always first it is the same list every step, so new images, captions and times reuse the graphs."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    obj = MixedObjective(MixedConfig(M=2), SPEC)
    compiled = torch.compile(obj.__call__, backend=counter)
    frames = []
    for seed in range(3):
        m, b = setup(["c2i"] * 2 + ["i2c"] * 2)
        torch.manual_seed(seed)
        b["images"] = torch.randn_like(b["images"])
        b["rng"] = BatchRNG(seed, seed, 0, 0, 1, torch.device("cpu"))
        b["progress"] = seed / 7  # as the trainer sends it: a new float every step, unread without a curriculum
        compiled(m, b)["loss"].backward()
        frames.append(counter.frame_count)
    torch._dynamo.reset()
    assert frames[0] > 0 and frames[1] == frames[0] and frames[2] == frames[0]


def test_task_batches_lead_with_the_same_caption_to_image_rows(tmp_path):
    """The training batches keep one direction layout, caption -> image groups first, whatever the step."""
    from core.config import build_config
    from modalities.mixed_task import MixedTask

    cfg = build_config("mixed", MixedConfig, [Path(__file__).resolve().parents[2] / "configs" / "mixed.yaml"], ["train.batch_size=16", "data.num_workers=0"])
    task = MixedTask(cfg, tmp_path, resuming=False)
    layouts = [task.train_batch(step, 0, 16)["noised"] for step in range(4)]
    assert all(layout == layouts[0] for layout in layouts)
    assert layouts[0] == [True] * 12 + [False] * 4  # p_caption_to_image 0.75 of 4 groups of M = 4
    # the caption -> image images trained on are counted, and the count resumes with the data position
    assert task.stream_stats()["data/caption_to_image_images"] == 4 * 12
    resumed = MixedTask(cfg, tmp_path, resuming=True)
    resumed.load_data_state(task.data_state())
    assert resumed.stream_stats()["data/caption_to_image_images"] == 48


def test_label_groups_is_refused_by_the_mixed_objective():
    from core.config import ConfigError

    MixedObjective(MixedConfig(), SPEC)  # the default is accepted: the refusal below is the knob's
    with pytest.raises(ConfigError, match="label_groups is for --objective imm"):
        MixedObjective(MixedConfig(label_groups=True), SPEC)
