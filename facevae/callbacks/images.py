"""Image grids logged each validation epoch: fixed val inputs over their reconstructions, prior samples, and the
three-point interpolation grid between prior draws."""

from __future__ import annotations

import logging

import numpy as np
import pytorch_lightning as pl
import torch

from facevae.callbacks.media import log_image
from facevae.core import rules
from facevae.core.tensors import image_grid, to_float_images
from facevae.models.inference import prior_grid

log = logging.getLogger(__name__)


class _EveryNEpochs(pl.Callback):
    """Runs at the end of a validation epoch every `every_n_epochs` training epochs, and always at the last one, so a
    run shorter than the interval still ends with its figures."""

    # A method the model must have for this callback to apply ("encode", "reconstruct"); None: any model. The
    # WGAN has a generator but no encoder, so the callbacks that look at encoded frames skip it.
    needs_encoder = False
    # Each setting's range (all are whole numbers): grids and image counts stay small enough to draw every few epochs.
    limits: dict[str, tuple[int, int | None]] = {"every_n_epochs": (1, None), "seed": (0, 2**32 - 1)}

    @classmethod
    def check_settings(cls, values: dict, prefix: str) -> None:
        """Every setting of this callback in the config (facevae.validation runs this before training)."""
        for key, value in values.items():
            rules.whole(f"{prefix}.{key}", value, *cls.limits[key])

    def __init__(self, every_n_epochs: int = 1):
        self.every_n_epochs = every_n_epochs
        self.applies = True

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        stacked = pl_module.stacked  # many models in one: evaluate.py sweep_dir= draws each
        self.applies = not stacked and (pl_module.encodes or not self.needs_encoder)
        if not self.applies and stage == "fit":
            why = "draws one model, not a stacked sweep's members" if stacked else "has no encoder"
            log.info("%s skipped: %s %s", type(self).__name__, type(pl_module).__name__, why)

    def _due(self, trainer: pl.Trainer) -> bool:
        epoch = trainer.current_epoch + 1
        last = trainer.should_stop or (trainer.max_epochs is not None and epoch >= trainer.max_epochs > 0)
        due = epoch % self.every_n_epochs == 0 or last
        return self.applies and trainer.is_global_zero and not trainer.sanity_checking and due


def fixed_val_images(trainer: pl.Trainer, n: int) -> torch.Tensor:
    """n val crops spread evenly over the val blocks, as uint8 B x H x W x 3: the same ones every epoch."""
    rows = trainer.datamodule.rows("val")
    picks = rows[np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(int)]
    return torch.from_numpy(trainer.datamodule.data.crops[picks])


class ReconstructionGrid(_EveryNEpochs):
    """Rows of 8: val inputs, then their reconstructions (decoder mean at the posterior mean) beneath them."""

    needs_encoder = True
    limits = {**_EveryNEpochs.limits, "n_images": (1, 256)}

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

    limits = {**_EveryNEpochs.limits, "n_images": (1, 256)}

    def __init__(self, n_images: int = 16, every_n_epochs: int = 1, seed: int = 0):
        super().__init__(every_n_epochs)
        self.n_images = n_images
        self.seed = seed

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._due(trainer):
            return
        generator = torch.Generator().manual_seed(self.seed)
        z = torch.randn(self.n_images, pl_module.latent_dim, generator=generator).to(pl_module.device)
        log_image(
            trainer,
            "val/prior_samples",
            image_grid(pl_module.decode(z), ncols=8),
            caption=f"epoch {trainer.current_epoch}: decoded z ~ N(0, I), the same z every epoch",
        )


class PriorInterpolation(_EveryNEpochs):
    """The seed's three-point interpolation grid between three fixed prior draws a, b, c: columns move from a
    towards b, rows from a towards c (`three_point_grid`). Needs only a decoder, so it shows a generator too."""

    limits = {**_EveryNEpochs.limits, "grid_size": (2, 32)}

    def __init__(self, grid_size: int = 8, every_n_epochs: int = 1, seed: int = 0):
        super().__init__(every_n_epochs)
        self.grid_size = grid_size
        self.seed = seed

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._due(trainer):
            return
        log_image(
            trainer,
            "val/prior_interpolation",
            image_grid(prior_grid(pl_module, self.seed, self.grid_size), ncols=self.grid_size),
            caption=f"epoch {trainer.current_epoch}: between three draws z ~ N(0, I) at the top-left, top-right and "
            "bottom-left corners",
        )
