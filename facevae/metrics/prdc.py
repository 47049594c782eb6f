"""Precision, recall, density and coverage of generated samples against real ones, in a feature space.

Naeem, Oh, Uh, Choi & Yoo 2020, "Reliable Fidelity and Diversity Metrics for Generative Models" (ICML), which
refines the k-nearest-neighbour precision and recall of Kynkäänniemi et al. 2019. Each real point i carries a ball
of radius r_i, the distance to its k-th nearest other real point; each fake point j one of radius s_j among fakes:

    precision  share of fakes inside at least one real ball                 (fidelity: do samples look real?)
    recall     share of reals inside at least one fake ball                 (diversity: is every real kind made?)
    density    mean number of real balls a fake falls in, divided by k      (fidelity, robust to outlying reals)
    coverage   share of reals whose own ball holds at least one fake        (diversity, robust to outlying fakes)

A perfect generator scores about 1 on all four (density's expectation is 1); the same numbers between two real
sets are the reference a model is read against. The comparisons are strict (<), as in the authors' `prdc` package,
so the values match it exactly (tests/test_metrics_prdc.py).

Bootstrap intervals resample the points each score averages over (fakes for precision and density, reals for
recall and coverage) and keep the balls of the full sets: a resampled set holds duplicates, whose radii would
shrink to zero and whose balls would cover less.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_K = 5  # Naeem et al. recommend k = 5 with ~10k samples; it holds up at the hundreds evaluation has


@dataclass(frozen=True)
class PRDC:
    precision: float
    recall: float
    density: float
    coverage: float


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of a (N x F) and b (M x F) -> N x M float64."""
    a, b = _rows(a, "a"), _rows(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a has {a.shape[1]} features per row, b has {b.shape[1]}")
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(d2, 0.0))


def knn_radii(x: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
    """Distance from each row of x to its k-th nearest other row -> (N,)."""
    x = _rows(x, "x")
    if not 1 <= k < len(x):
        raise ValueError(f"k={k} needs at least k + 1 = {k + 1} rows, got {len(x)}")
    d = pairwise_distances(x, x)
    return np.partition(d, k, axis=1)[:, k]  # column 0 of the sorted row is the point itself, at distance 0


def _indicators(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each score is a mean over one set's points: per fake (precision, density) and per real (recall, coverage)."""
    d = pairwise_distances(real, fake)
    fake_in_real = d < knn_radii(real, k)[:, None]  # N x M: fake j inside real i's ball
    real_in_fake = d < knn_radii(fake, k)[None, :]  # N x M: real i inside fake j's ball
    per_fake = {"precision": fake_in_real.any(axis=0), "density": fake_in_real.sum(axis=0) / k}
    # Real i's nearest fake lies inside i's ball exactly when some fake does.
    per_real = {"recall": real_in_fake.any(axis=1), "coverage": fake_in_real.any(axis=1)}
    return per_fake, per_real


def _means(per_fake: dict, per_real: dict, fake_rows: np.ndarray, real_rows: np.ndarray) -> PRDC:
    means = {m: float(v[fake_rows].mean()) for m, v in per_fake.items()}
    means |= {m: float(v[real_rows].mean()) for m, v in per_real.items()}
    return PRDC(**means)


def prdc(real: np.ndarray, fake: np.ndarray, k: int = DEFAULT_K) -> PRDC:
    """Precision, recall, density and coverage of `fake` (M x F features) against `real` (N x F)."""
    per_fake, per_real = _indicators(real, fake, k)
    return _means(per_fake, per_real, slice(None), slice(None))


def prdc_bootstrap(
    real: np.ndarray, fake: np.ndarray, k: int = DEFAULT_K, n_boot: int = 200, seed: int = 0
) -> tuple[PRDC, list[PRDC]]:
    """`prdc` of the full sets, and `n_boot` bootstrap values (numpy seed `seed`): each score is a mean over the
    points of one set, and a resample draws those points with replacement while the balls stay those of the full
    sets (a resampled set would shrink the union of its balls, biasing every value low)."""
    per_fake, per_real = _indicators(real, fake, k)
    n, m = len(per_real["recall"]), len(per_fake["precision"])
    rng = np.random.default_rng(seed)
    boots = [_means(per_fake, per_real, rng.integers(0, m, m), rng.integers(0, n, n)) for _ in range(n_boot)]
    return _means(per_fake, per_real, slice(None), slice(None)), boots


def _rows(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty N x F array, got shape {x.shape}")
    return x
