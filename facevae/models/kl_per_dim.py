"""Each latent's KL over an epoch, and the threshold below which a latent counts as unused."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

# A latent whose posterior stays within 0.01 nats of the prior tells the decoder almost nothing: "inactive".
ACTIVE_KL_NATS = 0.01


class KLPerDim(Metric):
    """Each latent's KL averaged over all images seen since the last reset. The states are summed across
    processes, so under DDP every rank computes the mean over the whole validation set."""

    full_state_update = False

    def __init__(self, latent_dim: int | tuple[int, ...]) -> None:
        super().__init__()  # latent_dim, or (members, latent_dim) for a stacked model
        self.add_state("total", default=torch.zeros(latent_dim), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, kl_per_dim: Tensor, n: int) -> None:
        """kl_per_dim: the batch mean of each latent's KL; n: the number of images in the batch."""
        self.total += kl_per_dim.detach() * n
        self.count += n

    def compute(self) -> Tensor:
        return self.total / self.count.clamp(min=1.0)

    def per_dim(self) -> Tensor:
        """compute() in the states' shape: torchmetrics would squeeze a single latent's value to a scalar."""
        return self.compute().reshape(self.total.shape)
