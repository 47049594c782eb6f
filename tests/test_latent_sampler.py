"""The sampler fitted to the training codes: it reproduces their distribution, deterministically, and round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from facevae.models.latent_sampler import GaussianMixtureSampler, fit_gaussian_mixture


def codes(n: int, seed: int = 0) -> np.ndarray:
    """Two clusters of correlated 6-D codes on a small scale, as a low-beta encoder's codes are."""
    rng = np.random.default_rng(seed)
    mix = np.linalg.qr(rng.standard_normal((6, 6)))[0] * [3, 2, 1, 0.5, 0.2, 0.1]
    centres = np.array([[0.5] * 6, [-0.5] * 6])
    return 0.05 * (rng.standard_normal((n, 6)) @ mix + centres[rng.integers(0, 2, n)])


def test_samples_reproduce_the_training_codes_mean_and_covariance():
    train = codes(900)
    sampler = fit_gaussian_mixture(train, codes(200, seed=1))
    z = sampler.sample(40_000, seed=3)
    scale = np.sqrt(np.var(train, axis=0).max())
    np.testing.assert_allclose(z.mean(axis=0), train.mean(axis=0), atol=0.03 * scale)
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.cov(train, rowvar=False), atol=0.03 * scale**2)


def test_a_mixture_is_chosen_for_clustered_codes_and_one_gaussian_for_a_gaussian():
    assert len(fit_gaussian_mixture(codes(900), codes(200, seed=1)).weights) > 1
    rng = np.random.default_rng(0)
    assert len(fit_gaussian_mixture(rng.standard_normal((900, 6)), rng.standard_normal((200, 6))).weights) == 1


def test_sampling_is_deterministic_for_a_seed_and_survives_saving(tmp_path):
    sampler = fit_gaussian_mixture(codes(500), seed=0)
    assert np.array_equal(sampler.sample(100, seed=5), sampler.sample(100, seed=5))
    assert not np.array_equal(sampler.sample(100, seed=5), sampler.sample(100, seed=6))
    again = GaussianMixtureSampler.load(sampler.save(tmp_path / "sampler.npz"))
    assert np.array_equal(again.sample(100, seed=5), sampler.sample(100, seed=5))
    assert fit_gaussian_mixture(codes(500), seed=0).means.tobytes() == sampler.means.tobytes()


def test_too_few_codes_is_an_error():
    from facevae.core.errors import FaceVAEError

    with pytest.raises(FaceVAEError, match="two or more"):
        fit_gaussian_mixture(np.zeros((1, 4)))
