"""What every analysis of one checkpoint reads: the trained run, its data and split, the codes of every frame, the
settings, the output folder, the `smiles=` and `neutral=` sets, and what earlier analyses left for later ones."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facevae.core.checkpoint import TrainedRun, run_dir_of
from facevae.data.cache import load_cache
from facevae.data.datamodule import FaceCropDataModule
from facevae.data.extract import prepare_cache
from facevae.data.split import cv_groups


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


@dataclass
class ExtraSet:
    """A `smiles=` or `neutral=` set of the same person: its crops and its groups for cross-validation."""

    path: Path
    crops: np.ndarray
    groups: np.ndarray
    grouping: str  # how the groups were made, in words


def extra_set(path: str, dm: FaceCropDataModule, block_s: float) -> ExtraSet:
    """A `smiles=` or `neutral=` video or photo folder through the training data's extraction (and cache), with
    groups for cross-validation: blocks of time, each photo its own, or a short clip cut into stretches."""
    result = prepare_cache(Path(path), dm.hparams.cache_dir, dm.params, progress=False)
    data = load_cache(result.path)
    photos = data.manifest.get("kind") == "images"
    groups, grouping = cv_groups(data.frames["time_s"].to_numpy(), block_s, independent=photos)
    return ExtraSet(Path(path), np.array(data.crops), groups, grouping)  # a writable copy, as torch wants


@dataclass
class Evaluation:
    """One checkpoint under evaluation. `mu` and `logvar` are the codes of every frame of the data (N x D, in the
    data's order); `shared` holds what an analysis leaves for the ones after it (the reconstruction's KL per latent,
    the fitted sampler and the samplers' verdicts, the smile sets), each read with a fallback when that analysis
    was not selected."""

    run: TrainedRun
    dm: FaceCropDataModule
    cfg: DictConfig
    out: Path
    mu: np.ndarray
    logvar: np.ndarray
    smiles: ExtraSet | None = None
    neutral: ExtraSet | None = None
    shared: dict = field(default_factory=dict)

    @property
    def model(self):
        return self.run.model

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)

    @cached_property
    def test(self) -> np.ndarray:
        return self.dm.images("test")

    @cached_property
    def train(self) -> np.ndarray:
        return self.dm.images("train")

    def rows(self, split: str) -> np.ndarray:
        return self.dm.rows(split)
