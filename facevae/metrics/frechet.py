"""The Fréchet distance between two sets of features, each summarised by a Gaussian.

    FD = |mu_a - mu_b|^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2))

the squared 2-Wasserstein distance between N(mu_a, C_a) and N(mu_b, C_b) (Dowson & Landau 1982), which FID applies
to Inception features (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium"). Here it applies to whatever features the caller gives. It is biased upwards at small sample sizes
(Chong & Forsyth 2020), so only compare values from sets of the same sizes: evaluation reports the same distance
between two real sets of the generated set's sizes beside it.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and covariance (F x F, unbiased) of the rows of x (N x F, N >= 2)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need an N x F array with N >= 2 rows, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def frechet_from_stats(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """The Fréchet distance between N(mu_a, cov_a) and N(mu_b, cov_b).

    Tr((C_a C_b)^(1/2)) is the sum of square roots of the eigenvalues of C_a^(1/2) C_b C_a^(1/2), a symmetric
    positive semi-definite matrix: no complex square root to clean up, unlike scipy.linalg.sqrtm of C_a C_b.
    """
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0.0, None)).sum()
    diff = np.asarray(mu_a) - np.asarray(mu_b)
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to the rows of a (N x F) and b (M x F).

    With more features than rows (2048 random-CNN features of a few hundred crops) it works on the rows' Gram
    matrices instead of the F x F covariances: the nonzero eigenvalues of C_a C_b are the squared singular values
    of A B^T / sqrt((N - 1)(M - 1)), A and B the centred rows, so the trace of the root costs an N x N eigenproblem.
    """
    a, b = _rows(a), _rows(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a has {a.shape[1]} features per row, b has {b.shape[1]}")
    if a.shape[1] <= min(len(a), len(b)):
        return frechet_from_stats(*gaussian_stats(a), *gaussian_stats(b))
    return _GramFD(a, b).value(np.arange(len(a)), np.arange(len(b)))


class _GramFD:
    """The Fréchet distance of any resample of a's and b's rows, from their Gram matrices computed once."""

    def __init__(self, a: np.ndarray, b: np.ndarray):
        self.aa, self.bb, self.ab = a @ a.T, b @ b.T, a @ b.T

    @staticmethod
    def _square_and_trace(gram: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
        """|mean of the rows|^2 and the sum of their squared norms, from how often each row was drawn."""
        w = np.bincount(rows, minlength=len(gram)).astype(np.float64)
        return float(w @ gram @ w) / len(rows) ** 2, float(w @ np.diag(gram))

    def value(self, i: np.ndarray, j: np.ndarray) -> float:
        n, m = len(i), len(j)
        square_a, norms_a = self._square_and_trace(self.aa, i)
        square_b, norms_b = self._square_and_trace(self.bb, j)
        ab = self.ab[np.ix_(i, j)]
        mean_gap = square_a + square_b - 2.0 * ab.mean()  # |mean_a - mean_b|^2
        trace_a = (norms_a - n * square_a) / (n - 1)  # the covariance's trace: the rows' centred squared norms
        trace_b = (norms_b - m * square_b) / (m - 1)
        # Centring both sets' rows centres the cross Gram matrix on both sides.
        cross = ab - ab.mean(axis=0) - ab.mean(axis=1, keepdims=True) + ab.mean()
        cross /= np.sqrt((n - 1) * (m - 1))
        small = cross @ cross.T if n <= m else cross.T @ cross
        trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(small), 0.0, None)).sum()
        return float(mean_gap + trace_a + trace_b - 2.0 * trace_root)


def frechet_bootstrap(
    a: np.ndarray, b: np.ndarray, n_boot: int = 200, seed: int = 0, level: float = 0.95
) -> tuple[float, tuple[float, float]]:
    """`frechet_distance` of the full sets and its bootstrap interval at `level`, resampling the rows of both.

    A resample's repeated rows act as fewer rows and raise the FD's small-sample bias, so the resampled values sit
    above the value itself (by 10% for 200 x 200 rows of 16 features). The interval is their percentiles moved by
    that shift, their mean minus the value: the bootstrap's spread, centred where the value is.
    """
    a, b = _rows(a), _rows(b)
    value = frechet_distance(a, b)
    rng = np.random.default_rng(seed)
    draws = [(rng.integers(0, len(a), len(a)), rng.integers(0, len(b), len(b))) for _ in range(n_boot)]
    # One BLAS thread for these small products and eigenproblems: beside torch's OpenMP threads OpenBLAS's own
    # spin, and a 224 x 224 eigenproblem took 330 ms instead of 7 on two cores.
    with threadpool_limits(1):
        if a.shape[1] <= min(len(a), len(b)):
            boots = [frechet_distance(a[i], b[j]) for i, j in draws]
        else:
            gram = _GramFD(a, b)
            boots = [gram.value(i, j) for i, j in draws]
    shift = float(np.mean(boots)) - value
    low, high = np.percentile(boots, [50 * (1 - level), 50 * (1 + level)]) - shift
    return value, (max(0.0, float(low)), float(high))


def _rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need an N x F array with N >= 2 rows, got shape {x.shape}")
    return x
