"""Everything evaluate.py needs travels in the checkpoint: the resolved config and the data split."""

from __future__ import annotations

import pytorch_lightning as pl

from facevae.core.checkpoint import CHECKPOINT_KEY, checkpoint_metadata, wandb_run


class CheckpointMetadata(pl.Callback):
    def __init__(self, config: dict):
        self.config = config

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        model_class = f"{type(pl_module).__module__}.{type(pl_module).__qualname__}"
        checkpoint[CHECKPOINT_KEY] = checkpoint_metadata(trainer, self.config, model_class, wandb_run(trainer.loggers))
