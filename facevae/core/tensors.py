"""Conversions between the crop cache's uint8 images and the float tensors models take, and image grids."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from facevae.core.errors import FaceVAEError


def to_float_images(images: Tensor, memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """uint8 B x H x W x 3 (channels-last, as the crop cache has them) -> float32 B x 3 x H x W in [0,1].

    torch.channels_last keeps the cache's layout (the permuted view already has those strides): no copy."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise FaceVAEError(f"expected face crops as uint8 B x H x W x 3, got {images.dtype} {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float().div(255.0).contiguous(memory_format=memory_format)


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
