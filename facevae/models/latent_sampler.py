"""Sampling codes from what the encoder actually filled: a Gaussian mixture fitted to the training crops' codes.

A beta-VAE's decoder only learns the codes its encoder hands it, and the aggregate posterior q(z) = E_x q(z|x)
need not fill N(0, I): with a small beta the codes of one person's frames sit in a small region of it, and a
prior draw lands where the decoder never learned a face. Ghosh, Sajjadi, Vergari, Black & Schölkopf 2020 ("From
Variational to Deterministic Autoencoders", ICLR, section 4: ex-post density estimation) fit a Gaussian mixture to
the training codes and sample that instead; pythae ships it as GaussianMixtureSampler. Here the number of
components is the one whose mixture gives the validation frames' codes the highest likelihood, among COMPONENTS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from facevae.core.errors import FaceVAEError

COMPONENTS = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class GaussianMixtureSampler:
    """A mixture of full-covariance Gaussians over latent codes: weights (K,), means (K x D), covariances
    (K x D x D)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """n codes (float32 n x D), numpy seed `seed`: each from a component drawn by weight."""
        rng = np.random.default_rng(seed)
        component = rng.choice(len(self.weights), size=n, p=self.weights / self.weights.sum())
        noise = rng.standard_normal((n, self.means.shape[1]))
        roots = np.linalg.cholesky(self.covariances)
        z = self.means[component] + np.einsum("nij,nj->ni", roots[component], noise)
        return z.astype(np.float32)

    def save(self, path: Path) -> Path:
        """Write the mixture as an .npz (weights, means, covariances); evaluation writes it into its staging folder,
        whose files replace the previous evaluation's when all are written (facevae.core.outputs)."""
        np.savez(path, weights=self.weights, means=self.means, covariances=self.covariances)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> GaussianMixtureSampler:
        with np.load(path) as saved:
            return cls(saved["weights"], saved["means"], saved["covariances"])


def fit_gaussian_mixture(
    train_mu: np.ndarray, val_mu: np.ndarray | None = None, seed: int = 0, components: tuple[int, ...] = COMPONENTS
) -> GaussianMixtureSampler:
    """The mixture of full-covariance Gaussians over `train_mu` (N x D) that best predicts `val_mu` (without
    validation codes: the one with the lowest BIC on the training codes), fitted by EM with seed `seed`."""
    train_mu = np.asarray(train_mu, dtype=np.float64)
    if train_mu.ndim != 2 or len(train_mu) < 2:
        raise FaceVAEError(f"need two or more training codes to fit a sampler, got shape {train_mu.shape}")
    # A small floor on each covariance's diagonal, relative to the codes' own spread: codes on a low-dimensional
    # sheet would make a component singular.
    reg = 1e-4 * float(np.mean(np.var(train_mu, axis=0))) + 1e-12
    best, best_score = None, -np.inf
    for k in (c for c in components if c <= len(train_mu) // 2 or c == 1):
        gmm = GaussianMixture(k, covariance_type="full", reg_covar=reg, random_state=seed, max_iter=200)
        # One BLAS thread: EM's small matrix products spin two OpenBLAS threads against each other and against
        # any other load, 17 s instead of 1 s for 928 codes of 32 latents on two busy cores.
        with threadpool_limits(1):
            gmm.fit(train_mu)
            score = gmm.score(val_mu) if val_mu is not None and len(val_mu) else -gmm.bic(train_mu)
        if score > best_score:
            best, best_score = gmm, score
    return GaussianMixtureSampler(best.weights_, best.means_, best.covariances_)
