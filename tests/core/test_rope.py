import torch

from core.rope import Rotary, apply_rotary, grid_positions, text_positions


def reference_rope(x, pos, base=10000.0):
    """Textbook 1D RoPE (rotate-half layout) in float64."""
    d = x.shape[-1]
    inv = base ** (-torch.arange(d // 2, dtype=torch.float64) / (d // 2))
    ang = pos.double()[:, None] * inv[None]
    cos, sin = ang.cos()[None, :, None], ang.sin()[None, :, None]
    x1, x2 = x.double().chunk(2, -1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def test_text_positions_give_standard_rope():
    x = torch.randn(1, 9, 2, 16)
    cos, sin = Rotary(16)(text_positions(9))
    torch.testing.assert_close(apply_rotary(x, cos, sin).double(), reference_rope(x, torch.arange(9)), atol=1e-5, rtol=1e-5)


def test_scores_depend_on_relative_position_only():
    rot = Rotary(12)
    q, k = torch.randn(1, 1, 1, 12), torch.randn(1, 1, 1, 12)

    def score(pq, pk):
        cq, sq = rot(torch.tensor(pq).view(1, 1, 3))
        ck, sk = rot(torch.tensor(pk).view(1, 1, 3))
        return (apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum()

    torch.testing.assert_close(score([5, 2, 7], [3, 1, 1]), score([9, 4, 9], [7, 3, 3]))
    assert not torch.allclose(score([5, 2, 7], [3, 1, 1]), score([5, 2, 7], [3, 1, 2]))


def test_grid_positions_are_row_major():
    p = grid_positions(2, 3)
    assert p.shape == (1, 6, 3)
    assert p[0, :, 1].tolist() == [0, 0, 0, 1, 1, 1] and p[0, :, 2].tolist() == [0, 1, 2, 0, 1, 2]
