"""Moving between crops and latents in batches: the one place analyses touch the model."""

from __future__ import annotations

import numpy as np
import torch

from facevae.core.tensors import to_float_images, to_uint8_hwc


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_images(model, images: np.ndarray, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N x H x W x 3 crops -> (mu, logvar), each N x D float32 numpy."""
    model.eval()
    device = _device(model)
    mus, logvars = [], []
    for start in range(0, len(images), batch_size):
        x = to_float_images(torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device))
        mu, logvar = model.encode(x)
        mus.append(mu.float().cpu().numpy())
        logvars.append(logvar.float().cpu().numpy())
    return np.concatenate(mus), np.concatenate(logvars)


@torch.no_grad()
def decode_latents(model, z: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """N x D latents -> uint8 N x H x W x 3 decoder means."""
    model.eval()
    device = _device(model)
    out = []
    for start in range(0, len(z), batch_size):
        batch = torch.as_tensor(np.asarray(z[start : start + batch_size]), dtype=torch.float32, device=device)
        out.append(to_uint8_hwc(model.decode(batch)))
    return np.concatenate(out) if out else np.zeros((0, 0, 0, 3), np.uint8)
