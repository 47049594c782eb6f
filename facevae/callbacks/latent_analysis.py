"""The cheap analyses, logged every N validation epochs so the runs of a sweep can be compared while they train.

An interpolation grid between three val frames, traversals of the highest-KL dimensions, the unsupervised
disentanglement scores and, when the data has ground-truth factors, MIG. The expensive ones (DCI, smiles,
expression shift, 1000 samples) stay in evaluate.py.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl

from facevae.callbacks.images import _EveryNEpochs
from facevae.callbacks.media import log_image
from facevae.core.tensors import image_grid
from facevae.metrics import disentanglement as dis
from facevae.metrics.latent_stats import kl_per_dim
from facevae.metrics.unsupervised import unsupervised_scores
from facevae.models.inference import decode_latents, encode_images
from facevae.models.latent_paths import central_code, pick_corners, three_point_grid, traversal_latents


class LatentAnalysis(_EveryNEpochs):
    needs_encoder = True
    # max_frames bounds the encoding and the scores' cost whatever the val set's size; factor_bins as in evaluate.py.
    limits = {
        **_EveryNEpochs.limits,
        "grid_size": (2, 32),
        "traversal_dims": (1, 64),
        "max_frames": (10, 20_000),
        "factor_bins": (2, 1000),
    }

    def __init__(
        self,
        every_n_epochs: int = 5,
        grid_size: int = 8,
        traversal_dims: int = 8,
        max_frames: int = 2000,
        factor_bins: int = 20,
    ):
        super().__init__(every_n_epochs)
        self.grid_size = grid_size
        self.traversal_dims = traversal_dims
        self.max_frames = max_frames
        self.factor_bins = factor_bins

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._due(trainer):
            return
        dm = trainer.datamodule
        rows = dm.rows("val")
        rows = rows[np.linspace(0, len(rows) - 1, min(len(rows), self.max_frames)).astype(int)]
        mu, logvar = encode_images(pl_module, dm.data.crops[rows])
        metrics = {f"val/{k}": v for k, v in unsupervised_scores(mu, self.factor_bins).items()}
        factors = dm.factors("val")
        if factors is not None:
            subset = factors[np.searchsorted(dm.rows("val"), rows)]
            metrics["val/mig"] = dis.mig(mu, dis.discretize(subset, self.factor_bins), self.factor_bins)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        self._log_grids(trainer, pl_module, mu, logvar)

    def _log_grids(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, mu: np.ndarray, logvar: np.ndarray
    ) -> None:
        corners = mu[pick_corners(mu, seed=0)]
        grid = decode_latents(pl_module, three_point_grid(*corners, n=self.grid_size))
        log_image(
            trainer,
            "val/interpolation",
            image_grid(grid, ncols=self.grid_size),
            caption=f"epoch {trainer.current_epoch}: between three val frames (corners top-left, top-right, "
            "bottom-left)",
        )
        kl = kl_per_dim(mu, logvar)
        dims = np.argsort(kl)[::-1][: self.traversal_dims]
        values = np.linspace(-3, 3, 9)
        base = central_code(mu)
        images = decode_latents(pl_module, traversal_latents(base, dims, values))
        log_image(
            trainer,
            "val/traversals",
            image_grid(images, ncols=len(values)),
            caption=f"epoch {trainer.current_epoch}: rows = dims {list(map(int, dims))} by KL, columns = value -3..3",
        )
