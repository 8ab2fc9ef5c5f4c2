"""FID and KID against closed forms and their defining properties."""
import numpy as np
import pytest
import torch

from core.fid import fid, frechet_distance, kid


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    # for commuting (diagonal) covariances Tr(C1 + C2 - 2 sqrt(C1 C2)) = sum (sqrt(v1) - sqrt(v2))^2
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64), torch.tensor([0.5, 1.0, 0.0], dtype=torch.float64)
    v1, v2 = torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64), torch.tensor([9.0, 1.0, 0.25], dtype=torch.float64)
    expected = float(((mu1 - mu2) ** 2).sum() + ((v1.sqrt() - v2.sqrt()) ** 2).sum())
    assert frechet_distance(mu1, torch.diag(v1), mu2, torch.diag(v2)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_of_rotated_covariances():
    # C2 = R C1 R^T with a rotation: traces equal, sqrt(C1 C2) non-trivial; check against scipy-free
    # reference computed from the eigendecomposition of C1^(1/2) C2 C1^(1/2) in numpy
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    c1 = a @ a.T + np.eye(4)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    c2 = q @ c1 @ q.T
    w, v = np.linalg.eigh(c1)
    s1 = (v * np.sqrt(w)) @ v.T
    ref = np.trace(c1) + np.trace(c2) - 2 * np.sqrt(np.linalg.eigvalsh(s1 @ c2 @ s1)).sum()
    z = torch.zeros(4, dtype=torch.float64)
    assert frechet_distance(z, torch.tensor(c1), z, torch.tensor(c2)) == pytest.approx(ref, rel=1e-9)


def test_fid_is_zero_for_identical_sets_and_symmetric_otherwise():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(500, 8)), rng.normal(loc=0.3, size=(400, 8))
    assert abs(fid(a, a)) < 1e-8
    assert fid(a, b) == pytest.approx(fid(b, a), rel=1e-9)
    assert fid(a, b) > 8 * 0.3 ** 2 * 0.5  # mostly the mean shift of 0.3 in each of 8 dimensions


def test_fid_accepts_tensors_and_arrays_alike():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 6)), rng.normal(size=(300, 6)) * 1.5
    assert fid(torch.tensor(a, dtype=torch.float32), b) == pytest.approx(fid(a.astype(np.float32), b), rel=1e-9)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(3)
    a, b, c = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16)), rng.normal(loc=0.5, size=(2000, 16))
    same, diff = kid(a, b, subsets=10, subset_size=500), kid(a, c, subsets=10, subset_size=500)
    assert abs(same) < 0.02 * diff
    assert diff > 0
    assert kid(a, c, subsets=10, subset_size=500) == diff  # fixed seed: deterministic subsets
