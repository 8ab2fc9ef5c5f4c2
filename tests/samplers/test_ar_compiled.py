import pytest
import torch

from samplers.ar import generate
from samplers.ar_compiled import SingleQueryAttention, StaticKVCache, _decoder, generate_compiled

PROMPTS = [[5, 9, 13, 2, 40, 7], [3], [11, 12, 90]]


def test_compiled_greedy_decode_gives_the_eager_samplers_tokens(tiny_text_model):
    m = tiny_text_model()
    eager = generate(m, PROMPTS, 20, temperature=0)
    compiled = generate_compiled(m, PROMPTS, 20, temperature=0)
    assert compiled == eager
    assert len({tuple(c) for c in eager}) > 1  # ragged rows, different continuations


def test_compiled_step_is_reused_and_stays_exact_on_a_second_call(tiny_text_model):
    m = tiny_text_model(seed=1)
    prompts = [[7, 8, 9], [1, 2, 3]]
    first = generate_compiled(m, prompts, 12, temperature=0)
    dec = _decoder(m, 2, 3 + 12)
    second = generate_compiled(m, [[4, 4, 4], [9, 8, 7]], 12, temperature=0)  # same shapes, stale cache
    assert _decoder(m, 2, 3 + 12) is dec
    assert first == generate(m, prompts, 12, temperature=0)
    assert second == generate(m, [[4, 4, 4], [9, 8, 7]], 12, temperature=0)


def test_compiled_sampling_is_reproducible_under_a_seed(tiny_text_model):
    m = tiny_text_model()
    a = generate_compiled(m, [[1, 2, 3]] * 2, 10, temperature=1.0, generator=torch.Generator().manual_seed(3))
    b = generate_compiled(m, [[1, 2, 3]] * 2, 10, temperature=1.0, generator=torch.Generator().manual_seed(3))
    assert a == b


def test_static_cache_writes_at_its_index_and_returns_the_whole_buffer():
    cache = StaticKVCache(1, 1, 1, 4, 2, "cpu", torch.float32)
    k = torch.ones(1, 1, 2, 2)
    cache.append(0, k, k)  # prefill: Python positions 0 and 1
    cache.advance(2)
    cache.index = torch.tensor([2])
    k_all, v_all = cache.append(0, 3 * torch.ones(1, 1, 1, 2), 3 * torch.ones(1, 1, 1, 2))
    assert k_all.shape == (1, 1, 4, 2)
    assert k_all[0, 0, :3, 0].tolist() == [1, 1, 3] and torch.equal(k_all[..., :3, :], v_all[..., :3, :])


def test_empty_prompt_and_no_new_tokens_are_refused(tiny_text_model):
    m = tiny_text_model()
    with pytest.raises(ValueError, match="at least one token"):
        generate_compiled(m, [[1], []], 3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_compiled(m, [[1]], 0)
    with pytest.raises(ValueError, match="use the ar sampler"):
        generate_compiled(m, [[1]], 3, use_cache=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_single_query_attention_is_sdpa_with_a_boolean_mask(dtype):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 1, 8), torch.randn(2, 3, 10, 8), torch.randn(2, 3, 10, 8)
    visible = torch.rand(2, 1, 1, 10) < 0.6
    visible[..., 0] = True  # every row sees at least one key
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=visible)
    out = SingleQueryAttention().attend(q.to(dtype), k.to(dtype), v.to(dtype), visible)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), ref, **({} if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)))
    moved = v.clone()
    moved[0, :, ~visible[0, 0, 0], :] += 100.0  # values at the keys row 0 cannot see change nothing there
    torch.testing.assert_close(SingleQueryAttention().attend(q, k, moved, visible)[0], ref[0])
