import torch

from modalities.pixel_stats import (despeckle, edge_energy, histogram, match_histogram, near_strokes, pixel_stats,
                                    spatial_stats)


def _set(values, weights, n=1000, seed=0):
    g = torch.Generator().manual_seed(seed)
    idx = torch.multinomial(torch.tensor(weights, dtype=torch.float64), n * 16, replacement=True, generator=g)
    return torch.tensor(values, dtype=torch.uint8)[idx].reshape(n, 1, 4, 4)


def test_matching_a_set_onto_itself_changes_nothing():
    x = _set([0, 3, 90, 200, 255], [0.6, 0.05, 0.1, 0.05, 0.2])
    assert torch.equal(match_histogram(x, x), x)


def test_matching_takes_the_reference_histogram_and_keeps_the_order_of_grey_levels():
    x = _set([10, 120, 200], [0.7, 0.1, 0.2], seed=1)
    ref = _set([0, 128, 255], [0.7, 0.1, 0.2], seed=2)
    y = match_histogram(x, ref)
    assert torch.equal(torch.unique(y), torch.tensor([0, 128, 255], dtype=torch.uint8))
    assert pixel_stats(y, ref)["hist_tv"] < 0.02  # the two sets are samples of one histogram
    flat_x, flat_y = x.flatten().long(), y.flatten().long()
    order = torch.argsort(flat_x)
    assert bool((flat_y[order].diff() >= 0).all())  # monotone: brighter stays brighter


def test_histogram_distance_is_zero_for_equal_sets_and_one_for_disjoint_ones():
    a = _set([0, 255], [0.5, 0.5])
    assert pixel_stats(a, a)["hist_tv"] == 0
    assert abs(pixel_stats(a, _set([7, 9], [0.5, 0.5]))["hist_tv"] - 1) < 1e-12
    h = histogram(a)
    assert abs(float(h.sum()) - 1) < 1e-12 and h.shape == (256,)


def test_blurring_lowers_edge_energy_and_saturation():
    sharp = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    sharp[..., 4:12, 6:10] = 255
    blurred = torch.nn.functional.avg_pool2d(sharp.float(), 3, 1, 1).round().to(torch.uint8)
    s, b = pixel_stats(sharp), pixel_stats(blurred)
    assert b["edge_energy"] < s["edge_energy"]
    assert b["frac_255"] < s["frac_255"] and b["frac_mid"] > s["frac_mid"] == 0
    assert edge_energy(torch.full((2, 1, 5, 5), 9, dtype=torch.uint8)) == 0


def test_specks_count_faint_pixels_far_from_strokes_only():
    img = torch.zeros(1, 1, 12, 12, dtype=torch.uint8)
    img[..., 2:4, 2:4] = 255  # a stroke: pixels within 2 of it are rows/cols 0..5
    assert int(near_strokes(img).sum()) == 36
    assert spatial_stats(img) == {"speck_frac": 0.0, "speck_level": 0.0, "edge_mid": 0.0}
    edged = img.clone()
    edged[..., 4, 2] = 60  # a soft edge next to the stroke: not a speck
    assert spatial_stats(edged)["speck_frac"] == 0 and spatial_stats(edged)["edge_mid"] == 1 / 144
    specked = img.clone()
    specked[..., 10, 10] = 1  # one grey level, far from the stroke
    assert spatial_stats(specked)["speck_frac"] == 1 / (144 - 36) and spatial_stats(specked)["speck_level"] == 1
    assert spatial_stats(specked)["edge_mid"] == 0
    assert torch.equal(despeckle(specked), img) and torch.equal(despeckle(edged), edged)  # specks go, edges stay
    blank = torch.zeros(3, 1, 8, 8, dtype=torch.uint8)
    assert spatial_stats(blank)["speck_frac"] == 0  # all background, nothing lit
    noisy = blank.clone()
    noisy[:, :, ::2, ::2] = 5
    assert spatial_stats(noisy)["speck_frac"] == 0.25 and spatial_stats(noisy)["speck_level"] == 5
