"""Statistics logged beside the loss: KL per latent dimension as a chart, and the mean-face PSNR baseline."""

from __future__ import annotations

import logging

import numpy as np
import pytorch_lightning as pl

from facevae.callbacks.images import _EveryNEpochs
from facevae.callbacks.media import figure_to_array, log_image
from facevae.metrics import psnr as psnr_metrics
from facevae.models.kl_per_dim import ACTIVE_KL_NATS

log = logging.getLogger(__name__)

MAX_BARS = 64


class KLPerDimChart(_EveryNEpochs):
    """A bar chart of the last validation epoch's KL per latent dimension, sorted: how many units are in use."""

    needs_encoder = True

    @staticmethod
    def chart(kl: np.ndarray, epoch: int) -> np.ndarray:
        # matplotlib is heavy and needed only when a chart is drawn; the Agg backend set before pyplot is imported.
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        # The highest MAX_BARS only: a chart of a thousand latents costs seconds each time and shows nothing more.
        order = np.argsort(kl)[::-1][:MAX_BARS]
        fig, ax = plt.subplots(figsize=(8, 3), dpi=80)
        ax.bar(range(len(order)), kl[order], color="tab:blue")
        ax.set_xticks(range(len(order)), [str(i) for i in order], fontsize=7)
        shown = "" if len(order) == len(kl) else f", the {len(order)} highest of {len(kl)}"
        ax.set_xlabel(f"latent dimension (sorted by KL{shown})")
        ax.set_ylabel("KL (nats per image)")
        active = int((kl > ACTIVE_KL_NATS).sum())
        ax.set_title(f"KL(q(z|x) || N(0,1)) per dimension on val, epoch {epoch}: {active} of {len(kl)} in use")
        fig.tight_layout()
        return figure_to_array(fig)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.applies or pl_module.last_val_kl_per_dim is None or not self._due(trainer):
            return
        kl = pl_module.last_val_kl_per_dim
        log_image(trainer, "val/kl_per_dim", self.chart(kl.numpy(), trainer.current_epoch))


def mean_face_psnr(train: np.ndarray, val: np.ndarray) -> float:
    """PSNR (data_range 1) of the mean training face as the reconstruction of every val face: the trivial baseline a
    model has to beat, as `facevae.metrics.psnr.mean_face_psnr` computes it."""
    return psnr_metrics.mean_face_psnr(train, val)


class MeanFaceBaseline(pl.Callback):
    """Logs `val/psnr_mean_face` at the start so each run's val/psnr has its trivial baseline beside it."""

    def __init__(self) -> None:
        self.psnr: float | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not pl_module.encodes:  # a baseline for reconstructions: nothing to set it beside
            log.info("MeanFaceBaseline skipped: %s has no encoder", type(pl_module).__name__)
            return
        dm = trainer.datamodule
        self.psnr = mean_face_psnr(dm.images("train"), dm.images("val"))
        for logger in trainer.loggers:
            logger.log_metrics({"val/psnr_mean_face": self.psnr}, step=0)
