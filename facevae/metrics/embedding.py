"""Two-dimensional views of the latent space: a PCA of every code and a t-SNE of up to TSNE_MAX_POINTS of them.

PCA's explained variance says how much of the codes' spread the view keeps; t-SNE (van der Maaten and Hinton
2008, "Visualizing Data using t-SNE", JMLR) keeps neighbours neighbours but maps no distances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

TSNE_MAX_POINTS = 3000


@dataclass
class LatentEmbedding:
    """Two groups of codes (smiling first, then the others) in a PCA of all of them and a t-SNE of a subset."""

    pca_xy: np.ndarray  # (n_smile + n_other) x 2
    pca_ratio: np.ndarray  # explained variance of PC1 and PC2
    n_smile: int
    n_other: int
    tsne_xy: np.ndarray  # rows_smile then rows_other, embedded
    rows_smile: np.ndarray
    rows_other: np.ndarray
    perplexity: float
    latent_dim: int

    def metrics(self) -> dict[str, object]:
        return {
            "pca_explained_variance": [float(r) for r in self.pca_ratio],
            "pca_explained_variance_total": float(self.pca_ratio.sum()),
            "tsne_points": len(self.tsne_xy),
        }


def _tsne_subset(n_smile: int, n_other: int, max_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices into each group for the t-SNE: all of both when they fit, otherwise an even random share of
    each, but at least min(n_smile, max_points // 2) smiles so a small smile set is never thinned away."""
    if n_smile + n_other <= max_points:
        return np.arange(n_smile), np.arange(n_other)
    rng = np.random.default_rng(seed)
    keep_smile = min(n_smile, max(round(max_points * n_smile / (n_smile + n_other)), max_points // 2))
    keep_other = max_points - keep_smile
    return np.sort(rng.choice(n_smile, keep_smile, replace=False)), np.sort(rng.choice(n_other, keep_other, False))


def latent_embedding(mu_smile: np.ndarray, mu_other: np.ndarray, seed: int = 0) -> LatentEmbedding:
    """The 2-D PCA fitted on all codes, and a t-SNE (sklearn's TSNE with init="pca", random_state `seed` and
    perplexity min(30, (n - 1) / 3)) of at most TSNE_MAX_POINTS of them, keeping at least min(n_smile,
    TSNE_MAX_POINTS // 2) smiles."""
    mu_smile, mu_other = np.asarray(mu_smile, np.float64), np.asarray(mu_other, np.float64)
    if len(mu_smile) < 1 or len(mu_other) < 1:
        raise ValueError(f"need codes in both groups, got {len(mu_smile)} smiles and {len(mu_other)} others")
    z = np.concatenate([mu_smile, mu_other])
    pca = PCA(n_components=2, random_state=seed).fit(z)
    rows_smile, rows_other = _tsne_subset(len(mu_smile), len(mu_other), TSNE_MAX_POINTS, seed)
    sub = np.concatenate([mu_smile[rows_smile], mu_other[rows_other]])
    # t-SNE needs perplexity < n; about a third of n keeps tiny test sets valid, 30 is sklearn's usual choice.
    perplexity = float(max(1.0, min(30.0, (len(sub) - 1) / 3)))
    embedded = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(sub)
    return LatentEmbedding(
        pca.transform(z),
        pca.explained_variance_ratio_,
        len(mu_smile),
        len(mu_other),
        embedded,
        rows_smile,
        rows_other,
        perplexity,
        z.shape[1],
    )
