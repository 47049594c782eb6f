"""Image grids logged each validation epoch: fixed val inputs over their reconstructions, and prior samples."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch

from facevae.callbacks.media import log_image
from facevae.images import image_grid
from facevae.models.lit_beta_vae import to_float_images


class _EveryNEpochs(pl.Callback):
    """Runs at the end of a validation epoch every `every_n_epochs` training epochs, and always at the last one, so a
    run shorter than the interval still ends with its figures."""

    def __init__(self, every_n_epochs: int = 1):
        self.every_n_epochs = every_n_epochs

    def _due(self, trainer: pl.Trainer) -> bool:
        epoch = trainer.current_epoch + 1
        last = trainer.should_stop or (trainer.max_epochs is not None and epoch >= trainer.max_epochs > 0)
        return trainer.is_global_zero and not trainer.sanity_checking and (epoch % self.every_n_epochs == 0 or last)


def fixed_val_images(trainer: pl.Trainer, n: int) -> torch.Tensor:
    """n val crops spread evenly over the val blocks, as uint8 B x H x W x 3: the same ones every epoch."""
    rows = trainer.datamodule.rows("val")
    picks = rows[np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(int)]
    return torch.from_numpy(trainer.datamodule.data.crops[picks])


class ReconstructionGrid(_EveryNEpochs):
    """Rows of 8: val inputs, then their reconstructions (decoder mean at the posterior mean) beneath them."""

    def __init__(self, n_images: int = 16, every_n_epochs: int = 1):
        super().__init__(every_n_epochs)
        self.n_images = n_images

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._due(trainer):
            return
        x = to_float_images(fixed_val_images(trainer, self.n_images).to(pl_module.device))
        recon = pl_module.reconstruct(x)
        rows = []
        for start in range(0, len(x), 8):
            rows += [x[start : start + 8], recon[start : start + 8]]
        log_image(
            trainer,
            "val/reconstructions",
            image_grid(torch.cat(rows), ncols=8),
            caption=f"epoch {trainer.current_epoch}: inputs (odd rows) over reconstructions (even rows)",
        )


class PriorSamples(_EveryNEpochs):
    """Decoded samples z ~ N(0, I), from the same z every epoch so that their change over training shows."""

    def __init__(self, n_images: int = 16, every_n_epochs: int = 1, seed: int = 0):
        super().__init__(every_n_epochs)
        self.n_images = n_images
        self.seed = seed

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._due(trainer):
            return
        generator = torch.Generator().manual_seed(self.seed)
        z = torch.randn(self.n_images, pl_module.hparams.latent_dim, generator=generator).to(pl_module.device)
        log_image(
            trainer,
            "val/prior_samples",
            image_grid(pl_module.decode(z), ncols=8),
            caption=f"epoch {trainer.current_epoch}: decoder means of z ~ N(0, I)",
        )
