"""K BetaVAEs of one architecture as one network: a beta sweep trained in one process on one device.

Each weight of the template BetaVAE is stacked along a new first dimension of size K. On a GPU torch.func.vmap runs the
K networks together: a convolution over K weight sets becomes one grouped convolution, a linear layer one batched
matrix product. A step then launches the kernels of one network, each K times wider, instead of K networks' worth,
which is what a launch-bound model at batch 64 needs. On CPU, where nothing waits on launches and grouped (above all
transposed) convolutions ran at half the speed of separate ones (567 against 292 ms for five members' forward and
backward at batch 64 on 2 cores), the members run one after another on their slices of the stacked weights (323 ms).

Every member sees the same batch and, at the same seed, the same reparameterisation noise: member k computes what a
run of its own with that seed would (one vectorised model; tests/test_stacked.py checks it).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from facevae.models.beta_vae import BetaVAE


def _key(name: str) -> str:
    return name.replace(".", "__")  # a ParameterDict key may not contain "."


class StackedBetaVAE(nn.Module):
    """K copies of `template`, each starting from its weights, trained side by side. Outputs carry K first."""

    def __init__(self, template: BetaVAE, k: int, vmap: bool | str = "auto") -> None:
        super().__init__()
        self.k = k
        self.vmap = vmap  # True, False, or "auto": on a GPU
        self.latent_dim = template.latent_dim
        self.names = [name for name, _ in template.named_parameters()]
        self.stacked = nn.ParameterDict(
            {
                _key(n): nn.Parameter(p.detach().unsqueeze(0).repeat(k, *[1] * p.ndim))
                for n, p in template.named_parameters()
            }
        )
        # The architecture without weights: functional_call lends it each member's. Kept out of the module's children,
        # so that it is neither a parameter holder nor moved between devices.
        self.__dict__["template"] = copy.deepcopy(template).to("meta")

    def _run(self, part: str, inputs: Tensor, shared: bool) -> Tensor:
        """The template's `part` (encoder or decoder) under each member's weights: K x ... outputs. `shared` inputs
        are the same for every member (the images); otherwise they carry K first (each member's latents)."""
        module = getattr(self.template, part)
        prefix = part + "."
        params = {n[len(prefix) :]: self.stacked[_key(n)] for n in self.names if n.startswith(prefix)}
        if self.vmap is True or (self.vmap == "auto" and inputs.is_cuda):
            run = vmap(lambda p, x: functional_call(module, p, (x,)), in_dims=(0, None if shared else 0))
            return run(params, inputs)
        outputs = [
            functional_call(module, {n: p[k] for n, p in params.items()}, (inputs if shared else inputs[k],))
            for k in range(self.k)
        ]
        return torch.stack(outputs)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Images B x C x H x W -> (mu, logvar), each K x B x latent_dim."""
        mu, logvar = self._run("encoder", x, shared=True).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Latents K x B x latent_dim (each member's), or B x latent_dim (the same for every member, as prior draws
        are) -> decoder means K x B x C x H x W."""
        return self._run("decoder", z, shared=z.ndim == 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """As BetaVAE.forward, each output with K first. One noise draw of one member's shape serves all members,
        as each would draw it in a run of its own."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu[0]) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar, z

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member k's weights as a BetaVAE state dict (copies on the CPU)."""
        return {n: self.stacked[_key(n)][k].detach().cpu().clone() for n in self.names}

    @torch.no_grad()
    def load_member(self, k: int, state: dict[str, Tensor]) -> None:
        """Member k's weights from a BetaVAE state dict."""
        for n in self.names:
            self.stacked[_key(n)][k].copy_(state[n])
