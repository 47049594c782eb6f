"""The checkpoint format: what train.py adds to Lightning's checkpoint under CHECKPOINT_KEY, and reading it back.

Everything evaluate.py and the live view need travels in the checkpoint: the resolved config, the data split as
frame ranges, the crop cache's key and source, the model's class and the training run's W&B identity.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

import facevae
from facevae.core.errors import FaceVAEError

CHECKPOINT_KEY = "facevae"


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


def read_checkpoint(path: Path | str) -> dict:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FaceVAEError(f"{path}: no such checkpoint")
    try:
        # weights_only=False: our own checkpoints carry plain dicts of config beside the tensors.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise FaceVAEError(f"{path}: not a readable checkpoint ({type(err).__name__}: {str(err)[:80]})") from None
    if not isinstance(ckpt, dict) or CHECKPOINT_KEY not in ckpt or "state_dict" not in ckpt:
        raise FaceVAEError(f"{path}: not a facevae checkpoint (no config and data split inside; train.py writes them)")
    return ckpt
