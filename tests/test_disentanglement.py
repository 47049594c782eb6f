"""Known-answer tests for facevae.metrics.disentanglement and facevae.metrics.unsupervised."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from scipy.linalg import hadamard
from scipy.stats import special_ortho_group

from facevae.metrics.disentanglement import (
    _dci_scores,
    _mutual_info_matrix,
    dci,
    discretize,
    mig,
    mig_details,
    sap,
    sap_matrix,
)
from facevae.metrics.unsupervised import (
    gaussian_total_correlation,
    gaussian_wasserstein_correlation,
    gaussian_wasserstein_correlation_norm,
    mutual_info_latents,
    unsupervised_scores,
)

N, K, NOISE_DIMS = 2000, 4, 4


@pytest.fixture(scope="module")
def world() -> dict[str, np.ndarray]:
    """K independent uniform factors of 10 values, and latents built from them in several ways."""
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 10, size=(N, K))
    noise = rng.normal(size=(N, NOISE_DIMS))
    # Code k is factor k plus a little noise (well inside one of the 20 bins), then pure-noise codes.
    aligned = np.concatenate([factors + 0.05 * rng.normal(size=(N, K)), noise], axis=1)
    standardised = (aligned - aligned.mean(0)) / aligned.std(0)
    rotation = special_ortho_group.rvs(K + NOISE_DIMS, random_state=1)
    return {
        "factors": factors,
        "aligned": aligned,
        # Every code is +-(all factors and noise codes)/sqrt(8): each factor sits in every code, equally.
        "mixed": standardised @ (hadamard(K + NOISE_DIMS) / np.sqrt(K + NOISE_DIMS)),
        # A random rotation mixes too, but unevenly: some codes lean on one factor.
        "rotation": rotation,
        "rotated": standardised @ rotation,
        "noise": rng.normal(size=(N, K + NOISE_DIMS)),
        # Every factor twice: all the information is there, but no code is the only one holding a factor.
        "duplicated": np.concatenate([aligned[:, :K], aligned], axis=1),
    }


# -- discretize --------------------------------------------------------------------------------------------------


def test_discretize_equal_width_bins_by_hand():
    values = np.array([0.0, 0.1, 0.26, 0.5, 0.74, 1.0])[:, None]
    # 4 bins on [0, 1]: edges 0, .25, .5, .75, 1; the maximum belongs to the last bin.
    assert discretize(values, bins=4)[:, 0].tolist() == [0, 0, 1, 2, 2, 3]


def test_discretize_twenty_bins_fill_evenly():
    labels = discretize(np.linspace(0.0, 1.0, 1000)[:, None])[:, 0]
    assert labels.min() == 0 and labels.max() == 19
    assert np.bincount(labels).tolist() == [50] * 20


def test_discretize_keeps_categorical_and_constant_columns():
    values = np.stack([np.tile([-3.0, 7.5, 100.0], 10), np.full(30, 4.2)], axis=1)
    out = discretize(values, bins=20)
    assert out[:3, 0].tolist() == [0, 1, 2]  # three values stay three classes, not bins 0, 2, 19
    assert np.all(out[:, 1] == 0)


# -- MIG ---------------------------------------------------------------------------------------------------------


def test_mig_by_hand():
    factor = np.array([0, 1, 2, 3] * 25)[:, None]
    half = factor // 2  # knows one of the two bits: MI = log 2 of H = log 4
    constant = np.zeros_like(factor)
    assert mig(np.hstack([factor, constant]).astype(float), factor) == pytest.approx(1.0)
    assert mig(np.hstack([half, constant]).astype(float), factor) == pytest.approx(0.5)
    assert mig(np.hstack([factor, factor]).astype(float), factor) == pytest.approx(0.0)
    assert mig(np.hstack([factor, half]).astype(float), factor) == pytest.approx(0.5)


def test_mig_aligned_mixed_rotated_noise(world):
    f = world["factors"]
    # Not exactly 1: the finite-sample MI of a noise code with a 10-class factor is ~0.02 of H(factor).
    assert mig(world["aligned"], f) > 0.95
    assert mig(world["mixed"], f) < 0.05
    assert mig(world["rotated"], f) < 0.3
    assert mig(world["noise"], f) < 0.05


def test_mig_duplicated_factor_has_no_gap(world):
    f = world["factors"]
    assert mig(world["duplicated"], f) < 0.02
    one_copy = np.concatenate([world["aligned"][:, :1], world["aligned"]], axis=1)
    per_factor = mig_details(one_copy, f)["per_factor"]
    assert per_factor[0] < 0.02 and np.all(per_factor[1:] > 0.95)


def test_mig_ignores_dead_codes_and_constant_factors(world):
    f, mu = world["factors"], world["aligned"]
    dead = np.concatenate([mu, np.zeros((N, 3))], axis=1)
    with_constant = np.concatenate([f, np.full((N, 1), 7)], axis=1)
    details = mig_details(dead, with_constant)
    assert np.isnan(details["per_factor"][-1])
    assert details["mig"] == pytest.approx(mig(mu, f))
    assert np.isnan(mig(mu, np.full((N, 2), 3)))


def test_mig_discretises_float_factors():
    rng = np.random.default_rng(3)
    factor = rng.uniform(-1, 1, size=(N, 1))  # continuous, as the demo video's smile is
    mu = np.hstack([factor, rng.normal(size=(N, 3))])
    assert mig(mu, factor) > 0.95


# -- SAP ---------------------------------------------------------------------------------------------------------


def test_sap_matrix_is_squared_correlation_on_training_rows():
    rng = np.random.default_rng(4)
    mu, factors = rng.normal(size=(100, 3)), rng.normal(size=(100, 2))
    mu[:, 0] += factors[:, 1]
    score = sap_matrix(mu, factors, continuous=True, train_fraction=0.8)
    for i in range(3):
        for j in range(2):
            assert score[i, j] == pytest.approx(np.corrcoef(mu[:80, i], factors[:80, j])[0, 1] ** 2)


def test_sap_continuous_aligned_mixed_rotated_noise(world):
    f = world["factors"]
    assert sap(world["aligned"], f) > 0.95
    assert sap(world["mixed"], f) < 0.05
    assert sap(world["rotated"], f) < 0.5
    assert sap(world["noise"], f) < 0.05


def test_sap_categorical_binary_factors():
    rng = np.random.default_rng(5)
    f = rng.integers(0, 2, size=(N, 3))
    exact = np.hstack([f, rng.normal(size=(N, 3))]).astype(float)
    # The matching code is right every time (1.0), the next best is a noise code at chance (0.5): gap 0.5.
    assert sap(exact, f, continuous=False) == pytest.approx(0.5, abs=0.05)
    assert sap(rng.normal(size=(N, 6)), f, continuous=False) < 0.05


def test_sap_dead_codes_and_constant_factor_stay_finite(world):
    f, mu = world["factors"], world["aligned"]
    dead = np.concatenate([mu, np.zeros((N, 2))], axis=1)
    with_constant = np.concatenate([f, np.ones((N, 1), dtype=int)], axis=1)
    assert sap(dead, with_constant) == pytest.approx(sap(mu, f))
    assert np.all(np.isfinite(sap_matrix(dead, with_constant, continuous=False)))


def test_sap_trains_on_the_first_rows_and_tests_on_the_last():
    # The code equals the binary factor for the first 80% of rows and its opposite after: a contiguous split
    # trains on "equal" and tests on "opposite" (balanced accuracy 0); a random split would score ~0.8.
    rng = np.random.default_rng(6)
    f = rng.integers(0, 2, size=(1000, 1))
    code = np.where(np.arange(1000)[:, None] < 800, f, 1 - f).astype(float)
    assert sap_matrix(code, f, continuous=False, train_fraction=0.8)[0, 0] == pytest.approx(0.0)


# -- DCI ---------------------------------------------------------------------------------------------------------


def test_dci_scores_by_hand():
    assert _dci_scores(np.eye(3)) == pytest.approx((1.0, 1.0))
    assert _dci_scores(np.ones((3, 3))) == pytest.approx((0.0, 0.0), abs=1e-9)
    # Two codes share factor 0 equally and factor 1 is constant (a zero column): each code is about one factor
    # only (D = 1), but the factor is spread over two codes (C = 1 - log_2 2 = 0).
    assert _dci_scores(np.array([[0.5, 0.0], [0.5, 0.0]])) == pytest.approx((1.0, 0.0), abs=1e-9)
    assert _dci_scores(np.zeros((3, 2))) == (0.0, 0.0)


def test_dci_aligned(world):
    scores = dci(world["aligned"], world["factors"])
    assert scores["disentanglement"] > 0.9
    assert scores["completeness"] > 0.9
    assert scores["informativeness"] > 0.9


def test_dci_mixed_and_noise(world):
    f = world["factors"]
    mixed = dci(world["mixed"], f)
    assert mixed["disentanglement"] < 0.1
    assert mixed["completeness"] < 0.1
    noise = dci(world["noise"], f)
    assert noise["informativeness"] < 0.15  # 10 classes: chance is 0.1
    assert noise["disentanglement"] < 0.1


def test_dci_random_rotation_tracks_its_loadings(world):
    # Were each code's importance for factor k its squared loading on k, D and C would be those of the
    # rotation's first K rows squared: 0.43 and 0.34 here. The estimate lands within 0.1 of them (0.48, 0.38;
    # six other rotations checked while writing this were within 0.07).
    ideal_d, ideal_c = _dci_scores(world["rotation"][:K].T ** 2)
    scores = dci(world["rotated"], world["factors"])
    assert scores["disentanglement"] == pytest.approx(ideal_d, abs=0.1)
    assert scores["completeness"] == pytest.approx(ideal_c, abs=0.1)
    assert scores["disentanglement"] < 0.6


def test_dci_duplicated_keeps_informativeness(world):
    scores = dci(world["duplicated"], world["factors"])
    assert scores["informativeness"] > 0.9
    assert scores["completeness"] < 0.75  # each factor is shared by two codes: at most 1 - log_8 2 = 0.67


def test_dci_gbt_reference_model(world):
    rows = slice(0, 500)
    scores = dci(world["aligned"][rows], world["factors"][rows, :2] % 2, model="gbt")
    assert scores["disentanglement"] > 0.9 and scores["informativeness"] > 0.95


def test_dci_dead_codes_constant_factor_and_contiguous_split():
    rng = np.random.default_rng(7)
    f = rng.integers(0, 2, size=(1000, 1))
    flipped = np.where(np.arange(1000)[:, None] < 800, f, 1 - f).astype(float)
    mu = np.hstack([flipped, np.zeros((1000, 2)), rng.normal(size=(1000, 1))])
    scores = dci(mu, np.hstack([f, np.zeros((1000, 1), dtype=int)]))
    per_factor = scores.pop("informativeness_per_factor")
    assert all(np.isfinite(v) for v in scores.values())
    assert np.isfinite(per_factor[0]) and np.isnan(per_factor[1])  # the constant factor: nothing to predict
    assert scores["informativeness_train"] == pytest.approx(1.0)
    assert scores["informativeness"] < 0.05  # tested on the flipped last 20%, never trained on them


def test_dci_rejects_unknown_model(world):
    with pytest.raises(ValueError, match="model"):
        dci(world["aligned"], world["factors"], model="svm")


# -- unsupervised ------------------------------------------------------------------------------------------------


def test_total_correlation_two_dimensional_closed_form():
    rng = np.random.default_rng(8)
    for rho in (0.0, 0.5, 0.9):
        cov = np.array([[1.0, rho], [rho, 1.0]])
        mu = rng.multivariate_normal([0, 0], cov, size=20_000)
        assert gaussian_total_correlation(mu) == pytest.approx(-0.5 * np.log(1 - rho**2), abs=0.01)


def test_total_correlation_is_kl_to_product_of_marginals():
    rng = np.random.default_rng(9)
    mu = rng.normal(size=(500, 5)) @ rng.normal(size=(5, 5))
    cov = np.cov(mu, rowvar=False)
    diag = np.diag(np.diag(cov))
    # KL(N(0, C) || N(0, diag C)) from the textbook formula.
    kl = 0.5 * (np.trace(np.linalg.inv(diag) @ cov) - 5 + np.log(np.linalg.det(diag) / np.linalg.det(cov)))
    assert gaussian_total_correlation(mu) == pytest.approx(kl)


def test_wasserstein_correlation_matches_scipy_sqrtm_formula():
    rng = np.random.default_rng(10)
    mu = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    cov = np.cov(mu, rowvar=False)
    expected = 2 * np.trace(cov) - 2 * np.trace(scipy.linalg.sqrtm(cov * np.diag(cov)[:, None])).real
    assert gaussian_wasserstein_correlation(mu) == pytest.approx(expected, rel=1e-6)
    assert gaussian_wasserstein_correlation_norm(mu) == pytest.approx(expected / np.trace(cov), rel=1e-6)
    independent = rng.normal(size=(20_000, 4)) * [1.0, 2.0, 3.0, 0.5]
    assert gaussian_wasserstein_correlation_norm(independent) < 0.005


def test_unsupervised_scores_ignore_dead_codes():
    rng = np.random.default_rng(11)
    mu = rng.multivariate_normal([0, 0], [[1.0, 0.8], [0.8, 1.0]], size=5000)
    dead = np.hstack([mu, np.full((5000, 2), 3.0)])
    for key in ("gaussian_total_correlation", "gaussian_wasserstein_correlation"):
        assert unsupervised_scores(dead)[key] == pytest.approx(unsupervised_scores(mu)[key])
    assert np.isfinite(gaussian_total_correlation(np.zeros((10, 3))))


def test_mutual_info_latents_by_hand():
    a = np.tile([0.0, 1.0, 2.0, 3.0], 250)
    # Two copies of a 4-valued code: each off-diagonal entry is H = log 4.
    assert mutual_info_latents(np.stack([a, a], axis=1)) == pytest.approx(np.log(4))
    # Add a constant code: 2 of the 6 off-diagonal entries are log 4.
    assert mutual_info_latents(np.stack([a, a, np.zeros_like(a)], axis=1)) == pytest.approx(np.log(4) / 3)
    rng = np.random.default_rng(12)
    assert mutual_info_latents(rng.normal(size=(N, 3))) < 0.15  # only the 20-bin estimator's bias


def test_unsupervised_scores_keys():
    mu = np.random.default_rng(13).normal(size=(200, 4))
    assert set(unsupervised_scores(mu)) == {
        "gaussian_total_correlation",
        "gaussian_wasserstein_correlation",
        "gaussian_wasserstein_correlation_norm",
        "mutual_info_score",
    }


def test_mutual_info_matrix_is_sklearns_for_every_pair():
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(3)
    mu = rng.standard_normal((500, 6))
    mu[:, 1] = mu[:, 0] + 0.3 * mu[:, 1]  # a dependent pair
    codes, factors = discretize(mu, 20), rng.integers(0, 4, (500, 3))
    expected = np.array([[mutual_info_score(factors[:, j], codes[:, i]) for j in range(3)] for i in range(6)])
    np.testing.assert_allclose(_mutual_info_matrix(codes, factors), expected, rtol=1e-12, atol=1e-15)
    pairs = np.array([[mutual_info_score(codes[:, i], codes[:, j]) for j in range(6)] for i in range(6)])
    np.fill_diagonal(pairs, 0)
    assert mutual_info_latents(mu) == pytest.approx(pairs.sum() / 30, rel=1e-12)


def test_mutual_info_of_many_latents_is_estimated_from_a_bounded_sample_of_pairs():
    rng = np.random.default_rng(4)
    mu = rng.standard_normal((400, 120))  # 7,140 pairs
    mu[:, 60:] = mu[:, :60] + 0.5 * rng.standard_normal((400, 60))  # half the pairs' partners are dependent
    exact = mutual_info_latents(mu, max_pairs=10_000)
    sampled = mutual_info_latents(mu, max_pairs=2016)
    assert sampled == pytest.approx(exact, rel=0.05)  # the same mean, estimated
    assert mutual_info_latents(mu, max_pairs=2016) == sampled  # from the same pairs every time
