"""Everything evaluate.py needs travels in the checkpoint: the resolved config and the data split."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger

import facevae

CHECKPOINT_KEY = "facevae"


class CheckpointMetadata(pl.Callback):
    def __init__(self, config: dict):
        self.config = config

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        dm = trainer.datamodule
        checkpoint[CHECKPOINT_KEY] = {
            "version": facevae.__version__,
            "config": self.config,
            "split": dm.split_ranges(),
            "cache_key": dm.data.manifest["key"],
            "source": dm.data.manifest["source"],
            "model_class": f"{type(pl_module).__module__}.{type(pl_module).__qualname__}",
            "wandb": _wandb_run(trainer),
        }


def _wandb_run(trainer: pl.Trainer) -> dict | None:
    """The training run's W&B identity, so evaluation can log into the same project and group beside it."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            run = logger.experiment
            return {
                "id": run.id,
                "project": run.project,
                "group": run.group or None,
                "name": run.name,
                "dir": str(Path(run.dir).parent) if getattr(run, "dir", None) else None,
            }
    return None
