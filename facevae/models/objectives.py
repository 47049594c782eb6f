"""The beta-VAE objective as plain functions of tensors, and the schedules that change it during training.

Per image, with a Gaussian decoder p(x|z) = N(x_mean, sigma^2 I) over pixels in [0,1]:

    beta-VAE (Higgins et al. 2017):            -log p(x|z) + beta * KL(q(z|x) || N(0, I))
    controlled capacity (Burgess et al. 2018): -log p(x|z) + gamma * |KL(q(z|x) || N(0, I)) - C|

The KL is summed over latent dimensions and the negative log-likelihood over pixels, then both are averaged
over the batch: the loss is in nats per image, comparable between batch sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
MIN_LOG_SIGMA = -6.0  # Rybkin et al.'s floor: a pixel the decoder gets exactly right must not weigh infinitely


@dataclass
class VAELoss:
    """One batch's objective. loss, recon and kl are batch means in nats per image; kl_per_dim is the batch
    mean of each latent's KL (latent_dim,), the numbers that show which dimensions carry information."""

    loss: Tensor
    recon: Tensor
    kl: Tensor
    kl_per_dim: Tensor


def gaussian_nll(x: Tensor, x_mean: Tensor, log_sigma: Tensor | float) -> Tensor:
    """-log N(x; x_mean, sigma^2) summed over all but the batch dimension: B values, in nats.

    Per pixel 0.5 * ((x - m) / sigma)^2 + log sigma + 0.5 * log(2 pi). The log sigma term gives a learned
    sigma the right gradient, and with the constant the loss is a true negative log-likelihood. log_sigma is a
    scalar or anything that broadcasts against x.
    """
    log_sigma = torch.as_tensor(log_sigma, dtype=x.dtype, device=x.device)
    per_pixel = 0.5 * ((x - x_mean) * torch.exp(-log_sigma)) ** 2 + log_sigma + HALF_LOG_2PI
    return per_pixel.flatten(1).sum(dim=1)


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) for each image and latent dimension: B x latent_dim, in nats.

    The closed form 0.5 * (mu^2 + sigma^2 - 1 - log sigma^2) (Kingma & Welling 2014, appendix B).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def beta_vae_loss(
    x: Tensor,
    x_mean: Tensor,
    mu: Tensor,
    logvar: Tensor,
    log_sigma: Tensor | float,
    beta: float,
    capacity: float | None = None,
    gamma: float = 1000.0,
) -> VAELoss:
    """The beta-VAE objective of a batch; with `capacity` (C, nats) the controlled-capacity one, which ignores
    beta and pulls the KL towards C with weight gamma instead (Burgess et al. 2018)."""
    recon = gaussian_nll(x, x_mean, log_sigma)  # B
    kl_per_image_dim = kl_divergence(mu, logvar)  # B x latent_dim
    kl = kl_per_image_dim.sum(dim=1)  # B
    if capacity is None:
        per_image = recon + beta * kl
    else:
        per_image = recon + gamma * (kl - capacity).abs()
    return VAELoss(
        loss=per_image.mean(),
        recon=recon.mean(),
        kl=kl.mean(),
        kl_per_dim=kl_per_image_dim.mean(dim=0),
    )


def kl_warmup_weight(step: int, warmup_steps: int) -> float:
    """The factor on the KL weight at `step`: rises linearly from 0 at step 0 to 1 at `warmup_steps`, then
    stays at 1; warmup_steps=0 turns warm-up off (always 1). Warm-up lets the decoder learn before the KL term
    can pull every posterior onto the prior."""
    if warmup_steps <= 0:
        return 1.0
    return min(max(step, 0) / warmup_steps, 1.0)


def capacity_at(step: int, c_max: float, c_steps: int) -> float:
    """The capacity C at `step`: rises linearly from 0 to `c_max` nats over `c_steps` steps, then stays there
    (Burgess et al. 2018). c_steps=0 gives c_max from the start."""
    if c_steps <= 0:
        return float(c_max)
    return float(c_max) * min(max(step, 0) / c_steps, 1.0)


def optimal_log_sigma(x: Tensor, x_mean: Tensor, per_pixel: bool = False) -> Tensor:
    """The decoder's maximum-likelihood log sigma given these reconstructions, as the sigma-VAE sets it (Rybkin,
    Daniilidis & Levine 2021, "Simple and Effective VAE Training with Calibrated Decoders"): sigma^2 = the batch's
    mean squared error, one shared value, or with `per_pixel` one per pixel and channel (its mean over the batch)."""
    dims = (0,) if per_pixel else (0, 1, 2, 3)
    return (0.5 * (x - x_mean).pow(2).mean(dim=dims).log()).clamp(min=MIN_LOG_SIGMA)
