"""Feature spaces for sample-quality scores that need no download and are not the judged model's own encoder.

FID's Inception weights cannot be fetched offline, and a VAE's own encoder would grade its own decoder. Two
candidates computed from the crops alone:

    pixel PCA    whitened principal components of the pixels, fitted on the training crops: each direction of
                 variation among real frames counts by how unusual a move along it is (Mahalanobis distance in
                 the leading components)
    random CNN   a convolutional network with random weights drawn from a fixed seed, its last feature map
                 flattened: the random embeddings Naeem et al. 2020 (section 5) recommend where no pretrained
                 network fits the domain; local texture and the spatial layout of the face both survive

`evaluation.sample_quality` uses the one that ranks flawed sample sets correctly (docs/performance.md has the
measurement; tests/test_metrics_features.py keeps the ranking as a test).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

PCA_COMPONENTS = 64
CNN_COMPONENTS = 128
RANDOM_CNN_WIDTHS = (32, 64, 128, 128)


def _float_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 N x H x W x 3 crops, got {images.dtype} {images.shape}")
    return images.reshape(len(images), -1).astype(np.float64) / 255.0


@dataclass(frozen=True)
class PixelPCA:
    """Whitened PCA of [0, 1] pixels: x -> (x - mean) @ components.T / sqrt(variances)."""

    mean: np.ndarray  # (P,)
    components: np.ndarray  # (C, P), orthonormal rows
    variances: np.ndarray  # (C,)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = _float_images(images) - self.mean
        return (x @ self.components.T) / np.sqrt(self.variances)


def fit_pixel_pca(train: np.ndarray, n_components: int = PCA_COMPONENTS) -> PixelPCA:
    """The leading principal components of the training crops' pixels (exact SVD: deterministic)."""
    x = _float_images(train)
    mean = x.mean(axis=0)
    n_components = min(n_components, len(x) - 1)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    variances = s[:n_components] ** 2 / (len(x) - 1)
    return PixelPCA(mean, vt[:n_components], np.maximum(variances, 1e-12))


def random_cnn(seed: int = 0, widths: tuple[int, ...] = RANDOM_CNN_WIDTHS) -> nn.Module:
    """3x3 convolutions with ReLU, each followed by 2x2 average pooling, with He-normal weights from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for c_in, c_out in zip((3, *widths[:-1]), widths, strict=True):
        conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
        with torch.no_grad():
            conv.weight.normal_(0.0, (2.0 / (9 * c_in)) ** 0.5, generator=generator)
        layers += [conv, nn.ReLU(), nn.AvgPool2d(2)]
    return nn.Sequential(*layers).eval()


@torch.no_grad()
def random_cnn_features(images: np.ndarray, seed: int = 0, batch_size: int = 256) -> np.ndarray:
    """The random network's last feature map, flattened (128 x 4 x 4 = 2048 values for a 64-pixel crop)."""
    images = np.asarray(images)
    _float_images(images[:1])  # the same check as every feature space
    net = random_cnn(seed)
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.array(images[start : start + batch_size])).permute(0, 3, 1, 2)  # a writable copy
        # Centred inputs: a random ReLU network otherwise spends its first layer on the mean brightness.
        out.append(net(x.float().div(255.0).sub(0.5)).flatten(1).double().numpy())
    return np.concatenate(out)


@dataclass(frozen=True)
class RandomCNN:
    """`random_cnn_features` projected on their leading principal directions among the training crops (not
    whitened: distances keep the network's scale). 128 of 2048 directions hold most of the variance, and the
    Fréchet distance's covariances, and their bootstrap, become cheap."""

    seed: int
    mean: np.ndarray  # (2048,)
    components: np.ndarray  # (C, 2048)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return (random_cnn_features(images, self.seed) - self.mean) @ self.components.T


def fit_random_cnn(train: np.ndarray, n_components: int = CNN_COMPONENTS, seed: int = 0) -> RandomCNN:
    x = random_cnn_features(train, seed)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    return RandomCNN(seed, mean, vt[: min(n_components, len(vt))])
