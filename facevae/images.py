"""Small image helpers shared by the training callbacks and the analyses: tensors to uint8, and grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def to_uint8_hwc(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """B x 3 x H x W floats in [0, 1] (or B x H x W x 3 uint8) -> B x H x W x 3 uint8."""
    if isinstance(images, torch.Tensor):
        images = images.detach().float().cpu().numpy()
    if images.dtype == np.uint8:
        return images
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)
    return (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8)


def image_grid(images: torch.Tensor | np.ndarray, ncols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile B images row by row into one H x W x 3 uint8 picture, `pad` pixels of `fill` between them."""
    images = to_uint8_hwc(images)
    n, h, w, c = images.shape
    nrows = -(-n // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), fill, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = image
    return grid


def save_figure(fig, path, **savefig_kwargs) -> Path:
    """Write a matplotlib figure to `path` (its folder made if needed) and close it, freeing its memory."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, **savefig_kwargs)
    plt.close(fig)
    return path
