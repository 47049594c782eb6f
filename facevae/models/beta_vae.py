"""The beta-VAE of Higgins et al. 2017 ("beta-VAE: Learning Basic Visual Concepts with a Constrained
Variational Framework", ICLR 2017), with the convolutional architecture the paper uses for CelebA (appendix).

    x  3x64x64 in [0,1]
    -> Conv 4x4/2 32 -> Conv 4x4/2 32 -> Conv 4x4/2 64 -> Conv 4x4/2 64   (ReLU after each)   64x4x4
    -> flatten 1024 -> Linear 256 (ReLU) -> Linear 2*latent               mu, log sigma^2
    z = mu + eps * sigma
    -> Linear 256 (ReLU) -> Linear 1024 (ReLU) -> reshape 64x4x4
    -> ConvT 4x4/2 64 -> ConvT 4x4/2 32 -> ConvT 4x4/2 32 -> ConvT 4x4/2 3  (ReLU between)
    -> sigmoid                                                             x_mean 3x64x64 in [0,1]

The decoder's output is the mean of a Gaussian over pixels; its standard deviation lives with the objective
(objectives.py), not here, so the network itself is the paper's exactly: 783,235 weights at the defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from facevae.core import rules
from facevae.core.errors import require

# Weights beyond this (1 GB in float32, 3 GB more with Adam's moments and the gradients) are a typo, not a face model:
# refused before torch tries to allocate them. The seed's model has 783,235.
MAX_PARAMETERS = 250_000_000
# Beyond this many latents every analysis of the code (its covariance, traversals, the per-dimension charts) only
# slows down: the unsupervised scores are O(D^3), half a second at 1024 on one core.
MAX_LATENTS = 1024


def check_network(
    latent_dim: int,
    channels: Sequence[int],
    hidden: int,
    image_size: int,
    members: int = 1,
    prefix: str = "model.net",
) -> None:
    """The network's settings as the model config names them (under `prefix`); image_size is data.size unless set
    apart."""
    # Two at least: the analyses look at the code in a plane (the smile plot's PCA, the live view's map, the
    # three-point interpolation) and score pairs of latents.
    why = " (every analysis needs two latents; the seed's model has 32)"
    rules.whole(f"{prefix}.latent_dim", latent_dim, 2, MAX_LATENTS, why=why)
    channels = rules.whole_list(f"{prefix}.channels", channels, 1, 4096, max_len=8)
    rules.whole(f"{prefix}.hidden", hidden, lo=1)
    # Each conv halves the side exactly (kernel 4, stride 2, padding 1) and each transposed conv doubles
    # it, so the decoder only lands back on image_size when the encoder never had to round.
    factor = 2 ** len(channels)
    nearest = factor * max(1, round(image_size / factor)) if isinstance(image_size, int) else factor * 4
    require(
        isinstance(image_size, int) and image_size >= factor and image_size % factor == 0,
        f"data.size={image_size}: must be a multiple of {factor} for the beta-VAE's {len(channels)} conv layers "
        f"({prefix}.channels), each halving it; e.g. {nearest}",
    )
    n = members * parameter_count(latent_dim, channels, hidden, image_size)
    require(
        n <= MAX_PARAMETERS,
        f"{prefix}.latent_dim={latent_dim}, {prefix}.channels={rules.shown(channels)}, {prefix}.hidden={hidden}: "
        f"{n:,} weights{f' for {members} members' if members > 1 else ''}, more than the {MAX_PARAMETERS:,} "
        "this tool builds (the seed's model has 783,235)",
    )


def parameter_count(
    latent_dim: int, channels: Sequence[int], hidden: int, image_size: int, in_channels: int = 3
) -> int:
    """The weights BetaVAE(...) would have, counted without allocating them."""
    chain = [in_channels, *channels]
    convs = sum(c_in * c_out * 16 + c_out for c_in, c_out in zip(chain[:-1], chain[1:], strict=True))
    deconvs = sum(c_in * c_out * 16 + c_out for c_in, c_out in zip(chain[:0:-1], chain[-2::-1], strict=True))
    flat = channels[-1] * (image_size // 2 ** len(channels)) ** 2
    encoder = convs + flat * hidden + hidden + hidden * 2 * latent_dim + 2 * latent_dim
    decoder = latent_dim * hidden + hidden + hidden * flat + flat + deconvs
    return encoder + decoder


class BetaVAE(nn.Module):
    """Convolutional encoder q(z|x) = N(mu, diag sigma^2) and decoder mean E[x|z], for square RGB images."""

    def __init__(
        self,
        latent_dim: int = 32,
        channels: Sequence[int] = (32, 32, 64, 64),
        hidden: int = 256,
        image_size: int = 64,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        check_network(latent_dim, channels, hidden, image_size)
        factor = 2 ** len(channels)

        self.latent_dim = latent_dim
        self.hidden = hidden
        self.image_size = image_size
        self.in_channels = in_channels
        self.channels = channels
        side = image_size // factor  # 4 at the defaults
        self.feature_shape = (channels[-1], side, side)
        flat = channels[-1] * side * side  # 64 * 4 * 4 = 1024 at the defaults

        convs: list[nn.Module] = []
        for c_in, c_out in zip((in_channels, *channels[:-1]), channels, strict=True):
            convs += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(
            *convs,
            nn.Flatten(),
            nn.Linear(flat, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * latent_dim),  # mu and log sigma^2, side by side
        )

        # The mirror image: channels reversed, ending on the image's channels. No ReLU after the last layer,
        # the sigmoid puts the Gaussian's mean in the pixels' range [0, 1].
        ups = list(reversed(channels))
        deconvs: list[nn.Module] = []
        for c_in, c_out in zip(ups, (*ups[1:], in_channels), strict=True):
            deconvs += [nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, flat),
            nn.ReLU(),
            nn.Unflatten(1, self.feature_shape),
            *deconvs[:-1],
            nn.Sigmoid(),
        )

    @staticmethod
    def check_settings(values: dict, prefix: str = "model.net") -> None:
        """The network's values in a config node, before it is built (facevae.validation runs this)."""
        v = rules.with_defaults(BetaVAE.__init__, values)
        check_network(v["latent_dim"], v["channels"], v["hidden"], v["image_size"], prefix=prefix)
        rules.whole(f"{prefix}.in_channels", v["in_channels"], 1, 64)

    def config(self) -> dict[str, Any]:
        """What builds this network again (hydra.utils.instantiate): the model config's `net` node, plain."""
        return {
            "_target_": "facevae.models.BetaVAE",
            "latent_dim": self.latent_dim,
            "channels": list(self.channels),
            "hidden": self.hidden,
            "image_size": self.image_size,
            "in_channels": self.in_channels,
        }

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Images B x C x H x W in [0,1] -> (mu, logvar), each B x latent_dim; logvar is log sigma^2."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Latents B x latent_dim -> the decoder's mean image B x C x H x W in [0,1]."""
        return self.decoder(z)

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
        """One sample z = mu + eps * sigma, eps ~ N(0, I): differentiable in mu and logvar (Kingma & Welling).

        It samples in eval mode too; use mu itself for a deterministic code.
        """
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Images -> (x_mean, mu, logvar, z): the decoder mean at a posterior sample z, and the posterior."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar, z
