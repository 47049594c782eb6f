"""Known-answer tests for facevae.metrics.latent_stats."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from facevae.metrics import latent_stats
from facevae.metrics.latent_stats import (
    active_units,
    kl_per_dim,
    mean_pairwise_distance,
    nearest_neighbour_distance,
    nearest_neighbours,
    psnr,
)


def test_psnr_by_hand():
    x = np.zeros((3, 4, 4, 3))
    y = x.copy()
    y[0] += 0.1  # MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
    y[1, 0, 0, 0] = 0.48  # MSE 0.48^2 / 48 = 0.0048 -> 23.19 dB
    assert psnr(x, y)[:2] == pytest.approx([20.0, 10 * np.log10(48 / 0.48**2)])
    assert psnr(x, y)[2] == np.inf  # identical images
    assert psnr(x * 255, y * 255, data_range=255.0)[0] == pytest.approx(20.0)


def test_psnr_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((2, 8)), np.zeros((2, 9)))


def test_active_units_counts_variance_above_threshold():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(10_000, 4)) * np.sqrt([1.0, 0.02, 0.005, 0.0]) + [0.0, 5.0, -3.0, 2.0]
    assert active_units(mu) == 2
    assert active_units(mu, threshold=0.001) == 3


def test_kl_per_dim_by_hand_and_against_torch():
    mu = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    logvar = np.array([[0.0, 0.0, np.log(2.0)], [0.0, 0.0, np.log(2.0)]])
    # 0.5 (mu^2 + var - 1 - log var): 0, 0.5, 0.5 (1 - log 2)
    assert kl_per_dim(mu, logvar) == pytest.approx([0.0, 0.5, 0.5 * (1 - np.log(2.0))])

    rng = np.random.default_rng(1)
    mu, logvar = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    posterior = torch.distributions.Normal(torch.tensor(mu), torch.tensor(np.exp(0.5 * logvar)))
    prior = torch.distributions.Normal(0.0, 1.0)
    expected = torch.distributions.kl_divergence(posterior, prior).mean(0).numpy()
    assert kl_per_dim(mu, logvar) == pytest.approx(expected)


def test_mean_pairwise_distance_all_pairs_by_hand():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])  # distances 5, 10, 5
    assert mean_pairwise_distance(x) == pytest.approx(20.0 / 3.0)
    images = x.reshape(3, 1, 2, 1)  # any image shape is flattened
    assert mean_pairwise_distance(images) == pytest.approx(20.0 / 3.0)


def test_mean_pairwise_distance_sampled_pairs_are_distinct_rows():
    # Three corners of a simplex are all distance 1 apart: any pair of different rows reads 1, a row paired
    # with itself would read 0 and pull the mean down.
    x = np.eye(3) / np.sqrt(2.0)
    assert mean_pairwise_distance(x, max_pairs=2) == pytest.approx(1.0)


def test_mean_pairwise_distance_sampled_is_deterministic_and_close():
    # 500 zeros and 500 ones: two different rows differ with probability 500 * 500 / (1000 * 999 / 2).
    x = np.repeat([0.0, 1.0], 500)[:, None]
    exact = 500 * 500 / (1000 * 999 / 2)
    sampled = mean_pairwise_distance(x, max_pairs=20_000, seed=3)
    assert sampled == mean_pairwise_distance(x, max_pairs=20_000, seed=3)
    assert sampled == pytest.approx(exact, abs=0.02)
    assert mean_pairwise_distance(x, max_pairs=10**6) == pytest.approx(exact)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few rows, so small arrays cross many block boundaries."""
    monkeypatch.setattr(latent_stats, "BLOCK_VALUES", 7 * 48)
    monkeypatch.setattr(latent_stats, "QUERY_ROWS", 5)


def test_nearest_neighbours_match_brute_force(small_blocks):
    rng = np.random.default_rng(4)
    queries, reference = rng.random((23, 4, 4, 3)), rng.random((41, 4, 4, 3))
    full = cdist(queries.reshape(23, -1), reference.reshape(41, -1))
    dist, index = nearest_neighbours(queries, reference)
    assert index.tolist() == full.argmin(1).tolist()
    assert dist == pytest.approx(full.min(1), rel=1e-12)
    assert nearest_neighbour_distance(queries, reference) == pytest.approx(full.min(1), rel=1e-12)


def test_nearest_neighbours_exclude_self(small_blocks):
    rng = np.random.default_rng(5)
    x = rng.random((30, 48))
    full = cdist(x, x)
    np.fill_diagonal(full, np.inf)
    dist, index = nearest_neighbours(x, x, exclude_self=True)
    assert index.tolist() == full.argmin(1).tolist()
    assert dist == pytest.approx(full.min(1))
    with pytest.raises(ValueError, match="same rows"):
        nearest_neighbours(x[:5], x, exclude_self=True)


def test_nearest_neighbour_distance_is_exact_for_near_copies():
    # At 64x64x3 the expanded |q|^2 + |r|^2 - 2 q.r in float32 is off by ~1e-2; the recomputed winner is not.
    rng = np.random.default_rng(6)
    reference = rng.random((50, 64 * 64 * 3)).astype(np.float32)
    copy = reference[[7]].astype(np.float64)
    nudged = copy.copy()
    nudged[0, 100] += 1e-4
    dist, index = nearest_neighbours(np.vstack([copy, nudged]), reference)
    assert index.tolist() == [7, 7]
    assert dist[0] == 0.0
    assert dist[1] == pytest.approx(1e-4, rel=1e-6)
