"""Running a trained model on arrays: encoding crops, decoding codes, sampling, and the terms of a reconstruction.

The one place the analyses, callbacks and the live view touch a model: everything here takes numpy arrays and gives
numpy arrays back, so the measures in facevae.metrics never see a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facevae.core.tensors import to_float_images, to_uint8_hwc
from facevae.models.latent_paths import lerp, prior_corners, slerp, three_point_grid
from facevae.models.objectives import gaussian_nll, kl_divergence
from facevae.models.ssim import ssim_per_image


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


def decode_paths(model, latents: np.ndarray) -> np.ndarray:
    """N x S x D paths of codes -> uint8 N x S x H x W x 3, each step decoded."""
    n, s, d = latents.shape
    images = decode_latents(model, latents.reshape(n * s, d))
    return images.reshape(n, s, *images.shape[1:])


def reconstruct(model, images: np.ndarray) -> np.ndarray:
    """uint8 crops -> uint8 decoder means at their posterior means."""
    mu, _ = encode_images(model, images)
    return decode_latents(model, mu)


def prior_samples(model, n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n codes z ~ N(0, I) drawn with numpy's generator seeded by `seed`, and their decodes.

    Returns (z float32 n x D, images uint8 n x H x W x 3, the decoder means). The same seed gives the same z on
    any device, so samples of two checkpoints compare face to face.
    """
    z = np.random.default_rng(seed).standard_normal((n, int(model.hparams.latent_dim))).astype(np.float32)
    return z, decode_latents(model, z)


def prior_grid(model, seed: int, n: int) -> np.ndarray:
    """The n x n three-point grid between `prior_corners`, decoded by `model` -> uint8 (n*n) x H x W x 3, row-major."""
    corners = prior_corners(int(model.hparams.latent_dim), seed)
    return decode_latents(model, three_point_grid(*corners, n=n).astype(np.float32))


def decode_interpolations(
    model, corners: dict[str, np.ndarray], n: int = 8, strip_len: int = 10
) -> tuple[dict[str, np.ndarray], dict[tuple[str, str], np.ndarray]]:
    """For each kind of corners (3 x D codes a, b, c), the decoded n x n `three_point_grid` between them, and the
    decoded line of `strip_len` steps from a to b by lerp and by slerp -> (grids by kind, strips by (kind, how))."""
    grids, strips = {}, {}
    for kind, given in corners.items():
        abc = np.asarray(given, dtype=np.float64)
        if abc.ndim != 2 or len(abc) != 3:
            raise ValueError(f"{kind}_corners must be 3 x D, got shape {abc.shape}")
        grids[kind] = decode_latents(model, three_point_grid(*abc, n=n).astype(np.float32))
        for how, line in (("lerp", lerp), ("slerp", slerp)):
            strips[kind, how] = decode_latents(model, line(abc[0], abc[1], strip_len).astype(np.float32))
    return grids, strips


@dataclass
class ReconstructionTerms:
    """Per-frame terms of a model on a set of crops (N rows each), from which facevae.metrics.reconstruction scores:
    the squared error and SSIM of the decoder mean at the posterior mean on [0, 1], the negative log-likelihood of
    one sampled z ~ q(z|x) (nats), the KL per latent (N x D, nats), and the posterior means and log-variances."""

    mse: np.ndarray
    ssim: np.ndarray
    nll: np.ndarray
    kl: np.ndarray
    mu: np.ndarray
    logvar: np.ndarray


@torch.no_grad()
def reconstruction_terms(model, images: np.ndarray, batch_size: int = 256, seed: int = 0) -> ReconstructionTerms:
    """`ReconstructionTerms` of `model` on uint8 crops; the one z per image is drawn from a CPU generator seeded by
    `seed`, so the negative ELBO is the same on any device."""
    model.eval()
    device = _device(model)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    out = {k: [] for k in ("mse", "ssim", "nll", "kl", "mu", "logvar")}
    for start in range(0, len(images), batch_size):
        x = to_float_images(torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device))
        mu, logvar = model.encode(x)
        mean = model.decode(mu).clamp(0, 1)
        eps = torch.randn(mu.shape, generator=generator).to(device)
        sampled = model.decode(mu + eps * torch.exp(0.5 * logvar))
        diff = x.cpu().numpy().astype(np.float64) - mean.cpu().numpy().astype(np.float64)
        out["mse"].append(np.mean(diff.reshape(len(diff), -1) ** 2, axis=1))
        out["ssim"].append(ssim_per_image(mean, x, data_range=1.0).cpu().numpy())
        out["nll"].append(gaussian_nll(x, sampled, model.log_sigma).cpu().numpy())
        out["kl"].append(kl_divergence(mu, logvar).cpu().numpy())
        out["mu"].append(mu.cpu().numpy())
        out["logvar"].append(logvar.cpu().numpy())
    return ReconstructionTerms(**{k: np.concatenate(v) for k, v in out.items()})
