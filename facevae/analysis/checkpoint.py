"""Opening a checkpoint written by train.py: the model, its config, and the data split it was trained on."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch

from facevae.core.checkpoint import CHECKPOINT_KEY, one_line, read_checkpoint
from facevae.core.errors import FaceVAEError
from facevae.data.datamodule import FaceCropDataModule


@dataclass
class TrainedRun:
    path: Path
    model: pl.LightningModule
    config: dict
    meta: dict  # what CheckpointMetadata stored: config, split, cache key, source, W&B run

    @property
    def run_dir(self) -> Path:
        return run_dir_of(self.path)


def run_dir_of(ckpt_path: Path | str) -> Path:
    """The Hydra run directory of the training run (checkpoints live in its `checkpoints/`)."""
    ckpt_path = Path(ckpt_path)
    return ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path.parent


def evaluation_dir(ckpt_path: Path | str) -> Path:
    """Where evaluate.py writes a checkpoint's results unless given output_dir: <run>/evaluation/<checkpoint name>."""
    return run_dir_of(ckpt_path) / "evaluation" / Path(ckpt_path).stem


def saved_metrics(ckpt_path: Path | str, n_samples: int, seed: int) -> dict | None:
    """The metrics.json evaluate.py wrote in its default place for this very checkpoint, after it was saved, from
    as many prior samples with the same seed; None when there is none to trust, so the measures are computed again.
    """
    ckpt_path = Path(ckpt_path)
    path = evaluation_dir(ckpt_path) / "metrics.json"
    if not path.is_file() or path.stat().st_mtime < ckpt_path.stat().st_mtime:
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # damaged or edited by hand: computed again
    if not isinstance(metrics, dict):
        return None
    same_checkpoint = Path(metrics.get("checkpoint", "")).resolve() == ckpt_path.resolve()
    same_samples = metrics.get("n_samples") == int(n_samples) and metrics.get("seed") == int(seed)
    return metrics if same_checkpoint and same_samples else None


def load_run(path: Path | str, device: str | torch.device = "cpu") -> TrainedRun:
    """The trained model in eval mode on `device`, with the resolved config and metadata from training."""
    path = Path(path).expanduser()
    ckpt = read_checkpoint(path)
    meta = ckpt[CHECKPOINT_KEY]
    module_name, _, class_name = meta["model_class"].rpartition(".")
    if class_name == "StackedBetaVAEModule":
        raise FaceVAEError(
            f"{path}: holds every beta of a stacked run; evaluate one member's checkpoint "
            f"({run_dir_of(path)}/<k>/checkpoints/) or compare them all with sweep_dir={run_dir_of(path)}"
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        model = cls.load_from_checkpoint(path, map_location=device)
    except (ImportError, AttributeError, KeyError, TypeError, RuntimeError, ValueError) as err:
        raise FaceVAEError(
            f"{path}: the model inside cannot be rebuilt ({type(err).__name__}: {one_line(err)})"
        ) from None
    broken = [
        name for name, value in model.state_dict().items() if value.is_floating_point() and not value.isfinite().all()
    ]
    if broken:
        raise FaceVAEError(
            f"{path}: {len(broken)} weight tensors hold NaN or infinite values (first: {broken[0]}): training "
            "diverged before this checkpoint; evaluate an earlier one"
        )
    model.eval()
    return TrainedRun(path, model, meta["config"], meta)


def datamodule_for(run: TrainedRun, overrides: dict | None = None) -> FaceCropDataModule:
    """The training data module with the training split; `overrides` (e.g. video, cache_dir) point it elsewhere.

    The crops must be the ones the model was trained on: same source content and extraction parameters, which
    the cache key encodes. A mismatch is an error rather than a silently different test set.
    """
    data_cfg = {k: v for k, v in run.config["data"].items() if k != "_target_"}
    data_cfg.update({k: v for k, v in (overrides or {}).items() if v is not None})
    data_cfg["progress"] = False
    try:
        dm = FaceCropDataModule(**data_cfg)
    except TypeError as err:
        raise FaceVAEError(f"{run.path}: its data config does not fit this version of facevae ({err})") from None
    if dm.hparams.video and not dm.source.exists():  # the crops are found by the video's content: it is needed
        raise FaceVAEError(
            f"{dm.source}: the data {run.path.name} was trained on is not there; give data.video= where it is now"
        )
    dm.load_state_dict({"split": run.meta["split"]})
    dm.setup("test")
    key = dm.data.manifest["key"]
    if key != run.meta["cache_key"]:
        raise FaceVAEError(
            f"{dm.source}: the data no longer matches the checkpoint {run.path.name} (crop cache {key}, trained on "
            f"{run.meta['cache_key']}): the video or the extraction parameters changed"
        )
    return dm
