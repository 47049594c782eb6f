"""Precision, recall, density, coverage and the Fréchet distance: known answers, and the authors' package."""

from __future__ import annotations

import numpy as np
import pytest

from facevae.metrics.frechet import frechet_bootstrap, frechet_distance
from facevae.metrics.prdc import knn_radii, pairwise_distances, prdc, prdc_bootstrap


def gaussian(n: int, dim: int = 16, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)) + shift


def test_identical_sets_score_one_and_distance_zero():
    x = gaussian(300)
    scores = prdc(x, x)
    assert scores.precision == scores.recall == scores.coverage == 1.0
    assert scores.density == pytest.approx(1.0, abs=0.05)  # each point sits in its own ball and about k others'
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)


def test_two_draws_of_one_distribution_score_near_one():
    scores = prdc(gaussian(500, seed=0), gaussian(500, seed=1))
    assert min(scores.precision, scores.recall, scores.coverage) > 0.85
    assert 0.8 < scores.density < 1.2


def test_a_collapsed_set_has_recall_and_coverage_near_zero():
    real = gaussian(500)
    collapsed = np.repeat(real[:1], 500, axis=0) + 1e-3 * gaussian(500, seed=2)
    scores = prdc(real, collapsed)
    assert scores.recall < 0.02 and scores.coverage < 0.02


def test_a_shifted_set_has_precision_and_density_near_zero():
    scores = prdc(gaussian(500), gaussian(500, shift=3.0, seed=1))
    assert scores.precision < 0.02 and scores.density < 0.02
    assert frechet_distance(gaussian(500), gaussian(500, shift=3.0, seed=1)) == pytest.approx(16 * 9, rel=0.1)


def test_frechet_distance_of_known_gaussians():
    # N(0, I) against N(0, 4 I) in F dimensions: Tr(I + 4I - 2 * 2I) = F.
    a, b = gaussian(20_000, dim=4), 2.0 * gaussian(20_000, dim=4, seed=1)
    assert frechet_distance(a, b) == pytest.approx(4.0, rel=0.05)


def test_matches_the_authors_prdc_package():
    prdc_package = pytest.importorskip("prdc")
    real, fake = gaussian(200, seed=3), gaussian(150, shift=0.4, seed=4)
    ours = prdc(real, fake, k=5)
    theirs = prdc_package.compute_prdc(real, fake, nearest_k=5)
    for name in ("precision", "recall", "density", "coverage"):
        assert getattr(ours, name) == pytest.approx(float(theirs[name]), abs=1e-12)


def test_knn_radius_is_the_kth_other_row():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    np.testing.assert_allclose(knn_radii(x, k=1), [1.0, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(knn_radii(x, k=2), [3.0, 2.0, 3.0, 6.0])
    np.testing.assert_allclose(pairwise_distances(x, x[:2]), [[0, 1], [1, 0], [3, 2], [7, 6]])


def test_bootstrap_is_deterministic_and_brackets_the_value():
    real, fake = gaussian(200), gaussian(200, shift=0.5, seed=1)
    point, boots = prdc_bootstrap(real, fake, n_boot=100, seed=7)
    again, boots_again = prdc_bootstrap(real, fake, n_boot=100, seed=7)
    assert point == again and boots == boots_again
    precisions = [b.precision for b in boots]
    assert np.percentile(precisions, 2.5) <= point.precision <= np.percentile(precisions, 97.5)
    fd, (low, high) = frechet_bootstrap(real, fake, n_boot=100, seed=7)
    assert low <= fd <= high and (fd, (low, high)) == frechet_bootstrap(real, fake, n_boot=100, seed=7)


def test_too_few_rows_for_k_is_an_error():
    with pytest.raises(ValueError, match="k=5"):
        prdc(gaussian(5), gaussian(10))


def test_frechet_distance_with_more_features_than_rows_matches_the_covariance_form():
    from facevae.metrics.frechet import frechet_from_stats, gaussian_stats

    a, b = gaussian(40, dim=100), 0.7 * gaussian(60, dim=100, shift=0.3, seed=1)
    direct = frechet_from_stats(*gaussian_stats(a), *gaussian_stats(b))
    assert frechet_distance(a, b) == pytest.approx(direct, rel=1e-6)
    value, (low, high) = frechet_bootstrap(a, b, n_boot=50)
    assert value == pytest.approx(direct, rel=1e-6) and low <= value <= high
