"""What each latent does over its range in the data: the pixel change along a traversal row, rows ordered by KL.

A beta-VAE pushes each latent towards the prior unless it earns its keep; the ones that carry information about
the frame have a large KL(q(z_d|x) || N(0, 1)), the ones the decoder ignores sit near 0 nats (Higgins et al. 2017,
"beta-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework", ICLR, section 4). The
reference for a row's pixel change is an inactive latent's: 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TraversalScores:
    """The latents shown, highest KL first, with each row's `row_pixel_change` and KL (nats)."""

    order: list[int]
    pixel_change: list[float]
    kl: list[float]

    def metrics(self) -> dict[str, list]:
        return {"order": self.order, "traversal_pixel_change": self.pixel_change, "traversal_kl": self.kl}


def kl_order(kl_per_dim: np.ndarray, max_dims: int | None = None) -> np.ndarray:
    """Latent indices by KL, highest first (ties in index order), the first `max_dims` of them."""
    kl = np.asarray(kl_per_dim, dtype=np.float64).reshape(-1)
    return np.argsort(-kl, kind="stable")[: max_dims if max_dims is not None else len(kl)]


def row_pixel_change(images: np.ndarray, n_values: int) -> np.ndarray:
    """Mean absolute change of a pixel between neighbouring images of each traversal row -> (rows,).

    images: (rows * n_values) x H x W x C, row-major as from `traversal_latents`; uint8 is divided by 255 so the
    answer is in [0, 1] intensity units. 0 for a dimension that changes nothing; with rows that span each latent's
    range in the data, how much the face changes over the range that latent takes.
    """
    x = np.asarray(images)
    x = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    if n_values < 2 or len(x) % n_values:
        raise ValueError(f"{len(x)} images do not split into rows of n_values={n_values} (need n_values >= 2)")
    x = x.reshape(len(x) // n_values, n_values, -1)
    return np.abs(np.diff(x, axis=1)).mean(axis=(1, 2))


def traversal_scores(images: np.ndarray, order: np.ndarray, kl_per_dim: np.ndarray, n_values: int) -> TraversalScores:
    """The scores of traversal rows `images` ((rows * n_values) x H x W x C) of the latents `order`."""
    kl = np.asarray(kl_per_dim, dtype=np.float64).reshape(-1)
    change = row_pixel_change(images, n_values)
    return TraversalScores([int(d) for d in order], [float(c) for c in change], [float(kl[d]) for d in order])
