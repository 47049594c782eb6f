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
        model_class = f"{type(pl_module).__module__}.{type(pl_module).__qualname__}"
        checkpoint[CHECKPOINT_KEY] = checkpoint_metadata(trainer, self.config, model_class, wandb_run(trainer.loggers))


def checkpoint_metadata(trainer: pl.Trainer, config: dict, model_class: str, wandb: dict | None) -> dict:
    """What a checkpoint of `model_class` trained with `config` carries: config, data split and source, W&B run."""
    dm = trainer.datamodule
    return {
        "version": facevae.__version__,
        "config": config,
        "split": dm.split_ranges(),
        "cache_key": dm.data.manifest["key"],
        "source": dm.data.manifest["source"],
        "model_class": model_class,
        "wandb": wandb,
    }


def wandb_run(loggers: list) -> dict | None:
    """The training run's W&B identity, so evaluation can log into the same project and group beside it."""
    for logger in loggers:
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
