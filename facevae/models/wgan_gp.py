"""The WGAN-GP baseline: a DCGAN generator and critic (Radford, Metz & Chintala 2016, "Unsupervised Representation
Learning with Deep Convolutional Generative Adversarial Networks") trained with the gradient penalty of Gulrajani
et al. 2017 ("Improved Training of Wasserstein GANs"). The seed trained such a GAN on its crops before the beta-VAE.

At the defaults (latent 32, width w = 64, 64x64 crops):

    Generator  z 32 -> ConvT 4x4/1 8w  4x4   (BatchNorm, ReLU)
                    -> ConvT 4x4/2 4w  8x8   (BatchNorm, ReLU)
                    -> ConvT 4x4/2 2w 16x16  (BatchNorm, ReLU)
                    -> ConvT 4x4/2  w 32x32  (BatchNorm, ReLU)
                    -> ConvT 4x4/2  3 64x64  -> tanh              images in [-1, 1]
    Critic     x 3x64x64 in [-1, 1]
                    -> Conv 4x4/2 w 32x32 -> Conv 4x4/2 2w 16x16 -> Conv 4x4/2 4w 8x8 -> Conv 4x4/2 8w 4x4
                       (LeakyReLU 0.2 after each; no batch norm)
                    -> Conv 4x4/1 1 -> one linear score per image

No batch norm in the critic: the gradient penalty constrains the gradient of each image's score with respect to
that image alone, which batch norm breaks by mixing the images of a batch (Gulrajani et al., section 4); layer norm
is the drop-in they suggest, here an option and off. Both networks work on [-1, 1], the range of the reference
implementations and of tanh; the LightningModule maps the crops' [0, 1] in and the generator's output back out.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from facevae.core import rules
from facevae.core.errors import require
from facevae.models.beta_vae import MAX_PARAMETERS


def _levels(image_size: int) -> int:
    """How many 2x steps lie between the 4x4 feature map and the image: 4 for 64x64."""
    ok = isinstance(image_size, int) and not isinstance(image_size, bool) and image_size >= 8
    levels = (image_size // 4).bit_length() - 1 if ok else 0
    require(
        ok and 4 * 2**levels == image_size,
        f"data.size={image_size}: the DCGAN networks (model=wgan_gp) need 4 x a power of two, e.g. 32 or 64",
    )
    return levels


def check_networks(latent_dim: int, width: int, image_size: int, prefix: str = "model.generator") -> None:
    """A generator's or critic's settings as the model config names them (under `prefix`); image_size is
    data.size."""
    rules.whole(f"{prefix}.latent_dim", latent_dim, lo=1)
    rules.whole(f"{prefix}.width", width, 1, 1024)
    levels = _levels(image_size)
    # Both networks' convolutions, counted without building them: the widest layer holds width * 2**(levels-1).
    top = width * 2 ** (levels - 1)
    n = latent_dim * top * 16 + sum(16 * c * c // 2 for c in (width * 2**i for i in range(1, levels)))
    require(
        2 * n <= MAX_PARAMETERS,
        f"{prefix}.width={width}, {prefix}.latent_dim={latent_dim}: about {2 * n:,} weights, more than the "
        f"{MAX_PARAMETERS:,} this tool builds",
    )


def dcgan_init(module: nn.Module) -> None:
    """Weights from N(0, 0.02), batch-norm scales from N(1, 0.02), biases 0 (Radford et al. 2016, section 4)."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z ~ N(0, I), B x latent_dim -> images B x 3 x H x W in [-1, 1]."""

    def __init__(self, latent_dim: int = 32, width: int = 64, image_size: int = 64) -> None:
        super().__init__()
        check_networks(latent_dim, width, image_size)
        levels = _levels(image_size)
        self.latent_dim, self.width, self.image_size = latent_dim, width, image_size
        # Channels halve as the side doubles: 8w at 4x4, w at image_size / 2 (for 64x64).
        channels = [width * 2 ** (levels - 1 - i) for i in range(levels)]
        # The first transposed conv turns z, seen as a 1x1 image, into the 4x4 map; no bias before batch norm.
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, channels[0], 4, stride=1, padding=0, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(),
        ]
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out)]
            layers.append(nn.ReLU())
        layers += [nn.ConvTranspose2d(channels[-1], 3, 4, stride=2, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    @staticmethod
    def check_settings(values: dict, prefix: str = "model.generator") -> None:
        """The generator's values in a config node, before it is built (facevae.validation runs this)."""
        v = rules.with_defaults(Generator.__init__, values)
        check_networks(v["latent_dim"], v["width"], v["image_size"], prefix)

    def config(self) -> dict[str, Any]:
        """What builds this network again (hydra.utils.instantiate): the model config's `generator` node."""
        return {
            "_target_": "facevae.models.Generator",
            "latent_dim": self.latent_dim,
            "width": self.width,
            "image_size": self.image_size,
        }

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None])


class Critic(nn.Module):
    """Images B x 3 x H x W in [-1, 1] -> B scores, unbounded (no sigmoid: a Wasserstein critic, not a classifier)."""

    def __init__(self, width: int = 64, image_size: int = 64, layer_norm: bool = False) -> None:
        super().__init__()
        check_networks(1, width, image_size, prefix="model.critic")
        levels = _levels(image_size)
        self.width, self.image_size, self.layer_norm = width, image_size, layer_norm
        channels = [width * 2**i for i in range(levels)]  # w at image_size / 2, 8w at 4x4 (for 64x64)
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip((3, *channels[:-1]), channels, strict=True)):
            layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1))
            if layer_norm and i > 0:
                # One group = layer norm over each image's C x H x W, per image: the penalty stays per image.
                layers.append(nn.GroupNorm(1, c_out))
            layers.append(nn.LeakyReLU(0.2))
        layers += [nn.Conv2d(channels[-1], 1, 4, stride=1, padding=0), nn.Flatten(0)]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    @staticmethod
    def check_settings(values: dict, prefix: str = "model.critic") -> None:
        """The critic's values in a config node, before it is built (facevae.validation runs this)."""
        v = rules.with_defaults(Critic.__init__, values)
        check_networks(1, v["width"], v["image_size"], prefix)
        rules.flag(f"{prefix}.layer_norm", v["layer_norm"])

    def config(self) -> dict[str, Any]:
        """What builds this network again (hydra.utils.instantiate): the model config's `critic` node."""
        return {
            "_target_": "facevae.models.Critic",
            "width": self.width,
            "image_size": self.image_size,
            "layer_norm": self.layer_norm,
        }

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, eps: Tensor | None = None) -> Tensor:
    """The WGAN-GP penalty E[(||grad_x D(x_hat)||_2 - 1)^2], x_hat = eps * real + (1 - eps) * fake, eps ~ U[0, 1].

    Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville 2017, "Improved Training of Wasserstein GANs", eq. (3) and
    Algorithm 1: an optimal critic has gradient norm 1 on the lines between real and generated images, so the
    penalty holds it there softly instead of clipping weights. One eps per image (shape B, drawn when not given);
    the norm is over each image's pixels. The graph is kept (create_graph) so the penalty trains the critic.
    Returns the batch mean, without the weight lambda.
    """
    if eps is None:
        eps = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    eps = eps.reshape(-1, *([1] * (real.ndim - 1)))
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
