import pytest
import torch
import torch.nn.functional as F

from core.attention import FlexBackend, SDPABackend, resolve_backend
from core.masks import AttnMask


def brute(mask: AttnMask, b: int, lq: int, lk: int) -> torch.Tensor:
    out = torch.zeros(b, 1, lq, lk, dtype=torch.bool)
    for bi in range(b):
        for i in range(lq):
            qa = i + mask.q_offset
            for j in range(lk):
                ok = (j <= qa) or not mask.causal
                if mask.span_ids is not None:
                    s = mask.span_ids[bi]
                    ok = ok or (s[qa] == s[j] and s[qa] > 0)
                if mask.key_valid is not None:
                    ok = ok and (bool(mask.key_valid[bi, j]) or j == qa)
                out[bi, 0, i, j] = ok
    return out


def spans_example():
    span = torch.zeros(2, 12, dtype=torch.long)
    span[0, 3:7] = 1
    span[1, 1:4] = 1
    span[1, 6:11] = 2
    return span


def test_dense_matches_brute_force_rule():
    span = spans_example()
    valid = torch.ones(2, 12, dtype=torch.bool)
    valid[1, :2] = False
    for m in (AttnMask(), AttnMask.full(), AttnMask.spans(span), AttnMask.spans(span, valid)):
        assert torch.equal(m.dense(12, 12, "cpu").expand(2, 1, 12, 12), brute(m, 2, 12, 12))
        shifted = m.shifted(8)
        assert torch.equal(shifted.dense(4, 12, "cpu").expand(2, 1, 4, 12), brute(shifted, 2, 4, 12))


def test_span_semantics():
    span = spans_example()
    d = AttnMask.spans(span).dense(12, 12, "cpu")[0, 0]
    assert d[3, 6] and d[6, 3]  # within the image: both ways
    assert d[3, 0] and not d[2, 3]  # image sees the past; text before never sees the image
    assert d[8, 6] and not d[6, 8]  # text after sees the image; image never sees later text


@pytest.mark.parametrize("mask_kind", ["causal", "full", "spans"])
def test_sdpa_and_flex_agree_with_explicit_softmax(mask_kind):
    torch.manual_seed(0)
    b, h, l, d = 2, 2, 12, 8
    q, k, v = (torch.randn(b, h, l, d, dtype=torch.float64) for _ in range(3))
    mask = {"causal": AttnMask(), "full": AttnMask.full(), "spans": AttnMask.spans(spans_example())}[mask_kind]
    dense = mask.dense(l, l, "cpu")
    scores = (q @ k.transpose(-1, -2)) / d ** 0.5
    ref = scores.masked_fill(~dense, float("-inf")).softmax(-1) @ v
    sdpa = SDPABackend()
    out = sdpa.attend(q, k, v, sdpa.prepare(mask, b, l, l, torch.device("cpu")))
    torch.testing.assert_close(out, ref)
    flex = FlexBackend()
    out_flex = flex.attend(q.float(), k.float(), v.float(), flex.prepare(mask, b, l, l, torch.device("cpu")))
    torch.testing.assert_close(out_flex.double(), ref, atol=1e-5, rtol=1e-5)


def test_sdpa_span_mask_has_backward_on_cpu():
    q, k, v = (torch.randn(2, 2, 12, 8, requires_grad=True) for _ in range(3))
    sdpa = SDPABackend()
    out = sdpa.attend(q, k, v, sdpa.prepare(AttnMask.spans(spans_example()), 2, 12, 12, torch.device("cpu")))
    out.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_is_causal_fast_path_equals_dense():
    q, k, v = (torch.randn(1, 2, 10, 8, dtype=torch.float64) for _ in range(3))
    sdpa = SDPABackend()
    state = sdpa.prepare(AttnMask(), 1, 10, 10, torch.device("cpu"))
    assert state == (None, True)
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=AttnMask().dense(10, 10, "cpu"))
    torch.testing.assert_close(sdpa.attend(q, k, v, state), dense)


def test_unavailable_backend_names_usable_ones():
    with pytest.raises(RuntimeError, match="usable here: .*sdpa"):
        resolve_backend("flash_attn", torch.device("cpu"))


def test_auto_backend_is_sdpa_and_flex_is_reached_by_name():
    """SDPA with the dense span mask measured faster than the flex block mask on the GPU, so 'auto'
    never picks flex; asking for it by name still gets it."""
    for dev in (torch.device("cuda"), torch.device("cpu")):
        assert resolve_backend("auto", dev).name == "sdpa"
    assert resolve_backend("flex", torch.device("cpu")).name == "flex"


def _sets(num: torch.Tensor, idx: torch.Tensor) -> list:
    """Each row's block indices as a set (the order within a row is free)."""
    flat_n, flat_i = num.flatten(), idx.flatten(0, -2)
    return [set(flat_i[r, :flat_n[r]].tolist()) for r in range(len(flat_n))]


def test_block_mask_from_dense_matches_create_block_mask_across_tiles():
    """Several 16-wide tiles, spans that straddle tile edges, a length that is no multiple of 16:
    the same empty/partial/full tiles as create_block_mask, and flex with it equals the dense softmax."""
    from torch.nn.attention.flex_attention import create_block_mask

    from core.attention import block_mask_from_dense

    b, h, l, d = 2, 2, 40, 8
    span = torch.zeros(b, l, dtype=torch.long)
    span[0, 5:21] = 1
    span[0, 30:38] = 2
    span[1, 14:34] = 1
    mask = AttnMask.spans(span)
    ours = block_mask_from_dense(mask.dense(l, l, "cpu"), mask.flex_mask_mod(), block=16)
    ref = create_block_mask(mask.flex_mask_mod(), b, None, l, l, device="cpu", BLOCK_SIZE=16)
    assert _sets(ours.kv_num_blocks, ours.kv_indices) == _sets(ref.kv_num_blocks, ref.kv_indices)
    assert _sets(ours.full_kv_num_blocks, ours.full_kv_indices) == _sets(ref.full_kv_num_blocks, ref.full_kv_indices)
    assert int(ours.full_kv_num_blocks.sum()) > 0 and int(ours.kv_num_blocks.sum()) > 0  # both kinds occur

    torch.manual_seed(0)
    q, k, v = (torch.randn(b, h, l, d) for _ in range(3))
    dense = mask.dense(l, l, "cpu")
    want = ((q @ k.transpose(-1, -2)) / d ** 0.5).masked_fill(~dense, float("-inf")).softmax(-1) @ v
    got = FlexBackend().attend(q, k, v, ours)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_flex_attends_in_the_value_dtype():
    """Flex is no autocast op: float32 q, k beside a bf16 v run in v's dtype, and agree with the
    same inputs all in that dtype."""
    torch.manual_seed(0)
    mask = AttnMask.spans(spans_example())
    q, k = (torch.randn(2, 2, 12, 8) for _ in range(2))
    v = torch.randn(2, 2, 12, 8).to(torch.bfloat16)
    flex = FlexBackend()
    state = flex.prepare(mask, 2, 12, 12, torch.device("cpu"))
    out = flex.attend(q, k, v, state)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, flex.attend(q.bfloat16(), k.bfloat16(), v, state))
