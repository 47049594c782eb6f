"""The checkpoint format: what train.py adds to Lightning's checkpoint under CHECKPOINT_KEY, and reading it back.

Everything evaluate.py and the live view need travels in the checkpoint: the resolved config, the data split as
frame ranges, the crop cache's key and source, the model's class and the training run's W&B identity.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.loggers import WandbLogger

import facevae
from facevae.core.errors import FaceVAEError
from facevae.core.files import save_torch

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


def checkpoint_in(folder: Path) -> str:
    """' (here: <a checkpoint in folder>)' for a message about a folder given where a checkpoint goes; else ''."""
    inside = sorted(folder.glob("*.ckpt")) + sorted(folder.glob("checkpoints/*.ckpt"))
    return f" (here: {inside[-1]})" if inside else ""


def read_checkpoint(path: Path | str) -> dict:
    """A checkpoint train.py wrote, on the CPU; a FaceVAEError naming the file when it is anything else: missing,
    a folder, empty, truncated, damaged (a zip entry failing its checksum) or another program's file."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise FaceVAEError(f"{path}: is a folder, not a checkpoint; give a .ckpt file{checkpoint_in(path)}")
    if not path.is_file():
        raise FaceVAEError(f"{path}: {'not a regular file' if path.exists() else 'no such checkpoint'}")
    try:
        _check_zip(path)
        # weights_only=True: our own checkpoints carry plain dicts of config beside the tensors.
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FaceVAEError:
        raise
    except pickle.UnpicklingError as err:
        if "GLOBAL" not in str(err):  # torch names the function or class a pickle would have called
            raise FaceVAEError(f"{path}: not a readable checkpoint (UnpicklingError: {one_line(err)})") from None
        raise FaceVAEError(
            f"{path}: not a checkpoint train.py wrote: it holds objects other than tensors and plain values, and "
            "loading those could run code, so it is not opened"
        ) from None
    except Exception as err:  # noqa: BLE001 - whatever unpickling a foreign or damaged file raises
        raise FaceVAEError(f"{path}: not a readable checkpoint ({type(err).__name__}: {one_line(err)})") from None
    meta = ckpt.get(CHECKPOINT_KEY) if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise FaceVAEError(f"{path}: not a facevae checkpoint (no config and data split inside; train.py writes them)")
    missing = [key for key in ("model_class", "config", "split", "cache_key") if key not in meta]
    if missing or not isinstance(meta["model_class"], str) or not isinstance(meta["config"], dict):
        raise FaceVAEError(f"{path}: a facevae checkpoint without its {', '.join(missing) or 'model class and config'}")
    return ckpt


def nonfinite_weights(state_dict: dict) -> list[str]:
    """The names of the floating-point tensors holding NaN or infinity: weights of a run that diverged."""
    return [
        name
        for name, value in state_dict.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not value.isfinite().all()
    ]


def _check_zip(path: Path) -> None:
    """torch.load does not check the zip's checksums: damaged bytes inside a tensor would load as weights."""
    if not zipfile.is_zipfile(path):
        return  # torch.load says what it is not
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
    if bad is not None:
        raise FaceVAEError(f"{path}: a damaged checkpoint ({bad} fails its checksum); use another checkpoint")


def one_line(err: BaseException, limit: int = 100) -> str:
    """An exception's message on one line, shortened: for the reason part of a one-line error."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, with its temporary beside the checkpoint instead of in the system's temp
    folder: moved across file systems that is a copy, which a full disk leaves truncated under the final name.
    Written here it is renamed into place, fsync'd, or not at all (and a full disk is a one-line error)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # a remote store: fsspec's own transaction
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        save_torch(checkpoint, Path(path), setting="or give hydra.run.dir= a folder on another disk")
