import pytest
import torch

from core.config import ModelConfig
from core.masks import AttnMask
from core.model import Model, ModelSpec
from modalities.mixed_forward import prefix_condition
from modalities.mixed_sequence import IGNORE, MixedLayout, pack_batch
from modalities.tokenizers import ByteTokenizer

TOK = ByteTokenizer()
LAYOUT = MixedLayout(caption_len=6, grid=2)  # 4 patches per image, 8x8 images with patch 4


def model(seed=0, backend="auto", prefix=False):
    torch.manual_seed(seed)
    m = Model(ModelConfig(size="tiny", n_layer=2, d_model=64, n_head=4, attn_backend=backend, prefix_condition=prefix),
              ModelSpec(vocab_size=TOK.vocab_size, image_channels=1, image_size=8, patch_size=4))
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return m.eval()


def pack_row(caption: str, direction: str) -> dict:
    b = pack_batch(TOK, [TOK.encode(caption)], [direction], LAYOUT)
    return {k: v[0] for k, v in b.items() if torch.is_tensor(v)}


def batch(directions=("c2i", "i2c")):
    caps = [TOK.encode("a two"), TOK.encode("seven")]
    b = pack_batch(TOK, caps[:len(directions)], list(directions), LAYOUT)
    b["images"] = torch.randn(len(directions), 1, 8, 8)
    b["noise_t"] = torch.tensor([700.0, 0.0])[:len(directions)]
    b["noise_s"] = torch.tensor([300.0, 0.0])[:len(directions)]
    return b


def copy(b):
    return {k: v.clone() if torch.is_tensor(v) else v for k, v in b.items()}


def run(m, b, **kw):
    return m("mixed", tokens=b["tokens"], pos=b["pos"], span_ids=b["span_ids"], key_valid=b["key_valid"],
             image_start=b["image_start"], images=b["images"], noise_t=b["noise_t"], noise_s=b["noise_s"], **kw)


def test_layout_targets_and_positions():
    row = pack_row("a two", "c2i")
    t = row["tokens"].tolist()
    assert t[0] == TOK.bos and t[6] == TOK.boi and t[11] == TOK.eoi and t[12] == TOK.eos
    assert row["span_ids"].tolist()[7:11] == [1, 1, 1, 1] and row["span_ids"].sum() == 4
    tg = row["targets"].tolist()
    assert tg[0] == t[1] and tg[5] == TOK.boi and tg[6] == IGNORE and tg[10] == IGNORE and tg[11] == TOK.eos
    assert tg[12] == IGNORE  # EOS is last; nothing after it
    pos = row["pos"]
    assert pos[7].tolist() == [7, 7, 7] and pos[10].tolist() == [7, 8, 8]  # patch (1, 1)
    assert pos[11].tolist() == [9, 9, 9]  # text resumes after the grid
    long = pack_row("a very long caption", "i2c")
    assert (long["key_valid"].sum() == LAYOUT.seq_len)  # truncated to caption_len, fits exactly


def test_image_to_caption_row_positions_and_targets():
    row = pack_row("seven", "i2c")
    t, tg, pos = row["tokens"].tolist(), row["targets"].tolist(), row["pos"].tolist()
    assert t[:2] == [TOK.bos, TOK.boi] and t[6] == TOK.eoi and t[7:12] == TOK.encode("seven") and t[12] == TOK.eos
    assert pos[2] == [2, 2, 2] and pos[3] == [2, 2, 3] and pos[4] == [2, 3, 2] and pos[5] == [2, 3, 3]
    assert pos[6] == [4, 4, 4] and pos[12] == [10, 10, 10]  # text resumes at p0 + grid
    assert tg[1] == IGNORE and tg[5] == IGNORE and tg[6] == t[7] and tg[11] == TOK.eos
    assert row["key_valid"].sum() == 13 and row["image_start"] == 2


def test_rows_pack_independently_of_their_batch():
    captions, directions = ["a two", "seven", "", "a very long caption"], ["c2i", "i2c", "c2i", "i2c"]
    b = pack_batch(TOK, [TOK.encode(c) for c in captions], directions, LAYOUT)
    for i, (c, d) in enumerate(zip(captions, directions)):
        alone = pack_row(c, d)
        for k, v in alone.items():
            assert torch.equal(b[k][i], v), (i, k)
    assert b["noised"] == [True, False, True, False]


def test_mask_rules_on_a_packed_row():
    row = pack_row("a two", "c2i")
    m = AttnMask.spans(row["span_ids"][None], row["key_valid"][None]).dense(LAYOUT.seq_len, LAYOUT.seq_len, "cpu")[0, 0]
    img = [7, 8, 9, 10]
    for q in range(13):
        for k in range(13):
            if q in img:
                expected = k in img or k < 7  # whole image and everything before, nothing after
            else:
                expected = k <= q  # text: causal
            assert bool(m[q, k]) == expected, (q, k)


def test_model_respects_the_mask():
    m = model()
    b = batch()
    logits, g = run(m, b)
    b2 = copy(b)
    b2["tokens"][0, 12] = 5  # change the final text token of row 0: nothing before it may change
    logits2, g2 = run(m, b2)
    torch.testing.assert_close(logits[0, :12], logits2[0, :12])
    torch.testing.assert_close(g, g2)
    b3 = copy(b)
    b3["images"][0, :, :4, :4] += 1  # change the first patch of row 0
    logits3, g3 = run(m, b3)
    assert not torch.allclose(g[0, :, 4:, 4:], g3[0, :, 4:, 4:])  # the last patch sees the first
    torch.testing.assert_close(logits[0, :7], logits3[0, :7])  # the caption before the image does not
    assert not torch.allclose(logits[0, 11:], logits3[0, 11:])  # text after the image does
    torch.testing.assert_close(g[1], g3[1])  # rows are independent


def test_text_tokens_see_no_modulation():
    m = model()
    b = batch(("i2c",))
    logits, _ = run(m, b)
    b["noise_t"], b["noise_s"] = torch.tensor([900.0]), torch.tensor([10.0])
    logits2, g2 = run(m, b)
    torch.testing.assert_close(logits[0, :2], logits2[0, :2])  # BOS, BOI precede the image: untouched


@torch.no_grad()  # FlexAttention has no backward on CPU; the GPU benchmark checks it with gradients
def test_flex_and_sdpa_agree_on_mixed_batches():
    b = batch()
    ref_logits, ref_g = run(model(backend="sdpa"), b)
    flex_logits, flex_g = run(model(backend="flex"), b)
    torch.testing.assert_close(flex_logits, ref_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(flex_g, ref_g, atol=1e-4, rtol=1e-4)


def test_cached_image_to_caption_matches_uncached():
    m = model()
    b = batch(("i2c",))
    full_logits, _ = run(m, b)
    start = int(b["image_start"][0])
    cut = start + LAYOUT.n_image + 1  # BOS BOI image EOI
    cache = m.new_cache(1, LAYOUT.seq_len)
    pre = {k: (v[:, :cut] if torch.is_tensor(v) and v.dim() > 1 and k != "images" else v) for k, v in b.items()}
    logits_pre, _ = m("mixed", tokens=pre["tokens"], pos=pre["pos"], span_ids=pre["span_ids"], key_valid=None,
                      image_start=b["image_start"], images=b["images"], noise_t=b["noise_t"], noise_s=b["noise_s"], cache=cache)
    torch.testing.assert_close(logits_pre, full_logits[:, :cut], atol=1e-5, rtol=1e-5)
    n_text = int(b["key_valid"].sum()) - cut
    for i in range(cut, cut + n_text):
        step = m("text", tokens=b["tokens"][:, i:i + 1], pos=b["pos"][:, i:i + 1], cache=cache)
        torch.testing.assert_close(step[:, 0], full_logits[:, i], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("prefix", [False, True])
def test_cached_caption_to_image_matches_uncached(prefix):
    m = model(prefix=prefix)
    b = batch(("c2i",))
    _, full_g = run(m, b)
    start = int(b["image_start"][0])
    n = LAYOUT.n_image
    cache = m.new_cache(1, LAYOUT.seq_len)
    m("text", tokens=b["tokens"][:, :start], pos=b["pos"][:, :start], cache=cache)
    text = b["tokens"][:, :start]
    pooled = prefix_condition(m, text, torch.ones_like(text, dtype=torch.bool))
    assert (pooled is not None) == prefix
    for _ in range(2):  # the same prefix serves every refinement step
        _, g = m("mixed", tokens=None, pos=b["pos"][:, start:start + n], span_ids=b["span_ids"][:, :start + n],
                 images=b["images"], noise_t=b["noise_t"], noise_s=b["noise_s"], cache=cache, prefix=pooled)
        cache.truncate(start)
        torch.testing.assert_close(g, full_g, atol=1e-5, rtol=1e-5)


def test_prefix_condition_pools_only_the_text_before_the_image():
    """An image -> caption row's caption comes after its image: changing it must not reach the image
    (pooling it would hand the answer to the image tokens). The caption before a caption -> image
    row's image does reach it through the pooled vector, beyond attention."""
    m = model(prefix=True)
    b = batch(("i2c",))
    after = copy(b)
    eoi = int(b["image_start"][0]) + LAYOUT.n_image
    after["tokens"][0, eoi + 1:] = TOK.encode("z")[0]
    torch.testing.assert_close(run(m, after)[1], run(m, b)[1], atol=0, rtol=0)
    c2i = batch(("c2i",))
    plain = model(prefix=True)
    torch.nn.init.zeros_(plain.prefix_cond.weight)
    torch.nn.init.zeros_(plain.prefix_cond.bias)
    assert not torch.allclose(run(m, c2i)[1], run(plain, c2i)[1])
