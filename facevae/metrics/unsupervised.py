"""Disentanglement without ground-truth factors: how far the codes of a representation depend on each other.

These follow google-research/disentanglement_lib's `evaluation/metrics/unsupervised_metrics.py` (Gaussian total
correlation, Gaussian Wasserstein correlation, mean pairwise mutual information of discretised codes); deviations
are named in each docstring. The supervised metrics (MIG, SAP, DCI) are in facevae.metrics.disentanglement.
"""

from __future__ import annotations

import logging

import numpy as np

from facevae.metrics.disentanglement import _DEAD_VAR, _as_2d, _paired_mutual_info, discretize

log = logging.getLogger(__name__)

# Pairs of codes mutual_info_latents scores exactly: every pair up to 64 codes; beyond, a uniform sample this size.
MAX_PAIRS = 2016


def _live_cov(mu: np.ndarray) -> tuple[np.ndarray, float]:
    """Covariance of the non-dead codes, and the total variance of all codes.

    A dead code is independent of every other, so it adds nothing to total or Wasserstein correlation;
    dropping it keeps log(0) and a singular matrix out of the formulas.
    """
    mu = _as_2d(mu, "mu").astype(np.float64)
    if len(mu) < 2:
        raise ValueError("need at least 2 rows to estimate a covariance")
    cov = np.cov(mu, rowvar=False).reshape(mu.shape[1], mu.shape[1])
    live = np.diag(cov) > _DEAD_VAR
    return cov[np.ix_(live, live)], float(np.trace(cov))


def gaussian_total_correlation(mu: np.ndarray) -> float:
    """Total correlation (nats) of a Gaussian fitted to mu: KL(N(0, C) || N(0, diag C)).

    = 0.5 * (sum log diag C - log det C); 0 for independent codes, -0.5 log(1 - rho^2) for two codes with
    correlation rho, inf when codes are exactly collinear.

    Reference: disentanglement_lib `evaluation/metrics/unsupervised_metrics.py::gaussian_total_correlation`.
    """
    return _total_correlation(_live_cov(mu)[0])


def _total_correlation(cov: np.ndarray) -> float:
    if cov.size == 0:
        return 0.0
    sign, logdet = np.linalg.slogdet(cov)
    if sign <= 0:
        return float("inf")
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - logdet))


def gaussian_wasserstein_correlation(mu: np.ndarray) -> float:
    """Squared 2-Wasserstein distance between a Gaussian fitted to mu and the product of its marginals.

    = 2 tr C - 2 tr sqrtm(diag(C) C). disentanglement_lib calls scipy.linalg.sqrtm on the non-symmetric
    diag(C) C; that matrix is similar to S C S with S = diag(C)^(1/2), which is symmetric PSD, so the trace of
    its square root is the sum of square roots of eigvalsh(S C S): the same number without complex round-off.

    Reference: disentanglement_lib
    `evaluation/metrics/unsupervised_metrics.py::gaussian_wasserstein_correlation`.
    """
    return _wasserstein_correlation(_live_cov(mu)[0])


def _wasserstein_correlation(cov: np.ndarray) -> float:
    if cov.size == 0:
        return 0.0
    s = np.sqrt(np.diag(cov))
    eig = np.linalg.eigvalsh(s[:, None] * cov * s[None, :])
    return float(2.0 * np.trace(cov) - 2.0 * np.sum(np.sqrt(np.clip(eig, 0.0, None))))


def gaussian_wasserstein_correlation_norm(mu: np.ndarray) -> float:
    """`gaussian_wasserstein_correlation` divided by the total variance tr C (0 when every code is dead).

    Reference: disentanglement_lib `unsupervised_metrics.py::unsupervised_metrics`, key
    "gaussian_wasserstein_correlation_norm".
    """
    cov, total_var = _live_cov(mu)
    return _wasserstein_correlation(cov) / total_var if total_var > _DEAD_VAR else 0.0


def mutual_info_latents(mu: np.ndarray, bins: int = 20, max_pairs: int = MAX_PAIRS) -> float:
    """Mean mutual information (nats) between pairs of different discretised codes.

    The D x D MI matrix with its diagonal zeroed, summed and divided by D^2 - D. Dead codes count, with MI 0.
    0 for a single code. With more than `max_pairs` pairs (D > 64 at the default) the mean is estimated from
    `max_pairs` pairs drawn uniformly without replacement (seed 0): the same quantity, at a cost that stays
    bounded in D (a 1000-latent model has 499,500 pairs).

    Reference: disentanglement_lib `evaluation/metrics/unsupervised_metrics.py::unsupervised_metrics`, key
    "mutual_info_score" (there with `utils._histogram_discretize`, 20 bins in the published configs).
    """
    codes = discretize(mu, bins)
    d = codes.shape[1]
    if d < 2:
        return 0.0
    if d * (d - 1) // 2 <= max_pairs:
        i, j = np.triu_indices(d, 1)  # MI is symmetric: the pair (i, j) stands for (j, i) too
        return float(2.0 * _paired_mutual_info(codes, codes, i, j).sum() / (d * d - d))
    log.info("mutual_info_score: %d latents, estimated from %d of their %d pairs", d, max_pairs, d * (d - 1) // 2)
    # Distinct cells of the D x D matrix in random order; those above the diagonal are distinct pairs, uniformly.
    i, j = np.divmod(np.random.default_rng(0).choice(d * d, size=4 * max_pairs, replace=False), d)
    above = i < j
    return float(_paired_mutual_info(codes, codes, i[above][:max_pairs], j[above][:max_pairs]).mean())


def unsupervised_scores(mu: np.ndarray, bins: int = 20) -> dict[str, float]:
    """All of disentanglement_lib's unsupervised scores for mu, under its key names.

    Keys: gaussian_total_correlation, gaussian_wasserstein_correlation, gaussian_wasserstein_correlation_norm,
    mutual_info_score.

    Reference: disentanglement_lib `evaluation/metrics/unsupervised_metrics.py::unsupervised_metrics`.
    """
    cov, total_var = _live_cov(mu)  # once for the three Gaussian scores: O(N D^2) for D latents
    wasserstein = _wasserstein_correlation(cov)
    return {
        "gaussian_total_correlation": _total_correlation(cov),
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": wasserstein / total_var if total_var > _DEAD_VAR else 0.0,
        "mutual_info_score": mutual_info_latents(mu, bins),
    }
