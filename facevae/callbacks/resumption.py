"""What makes a resumed run continue the interrupted one exactly: per-step seeds, and the best checkpoint so far.

Lightning's checkpoint restores the weights, the optimiser, the step and epoch counters and the data order
(FaceCropDataModule's permutations are seeded by seed and epoch), but not the random state: the reparameterisation
noise of the step after a resume would follow `seed_everything` at start-up, not the draws the interrupted run had
made by then, and those depend on what else drew before (validation's own noise, a callback). `StepSeeds` instead
seeds torch, numpy and Python's `random` at the start of every training batch from (seed, epoch, batch), and of
every validation and test pass from (seed, epoch, stage): each step draws the same numbers however the run got
there, whether it ran straight through, was stopped cleanly or killed with SIGKILL, and resumed from `last.ckpt`.

A resumed run writes into a new directory, where Lightning's ModelCheckpoint forgets which checkpoint was best
(its score is only restored in the same directory) and would call the first epoch after the resume the best.
`AdoptBestCheckpoint` copies the best checkpoint so far into the new directory and gives the ModelCheckpoint back
its score, so the run ends with the best checkpoint the uninterrupted run would have, and tests that one.
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

log = logging.getLogger(__name__)

STAGES = {"train": 0, "validate": 1, "test": 2}


def step_seed(seed: int, epoch: int, batch: int, stage: str = "train") -> int:
    """A 64-bit seed from the run's seed and the step's place, mixed by numpy's SeedSequence (no two collide)."""
    words = np.random.SeedSequence([seed, STAGES[stage], epoch, batch]).generate_state(2, np.uint32)
    return int(words[0]) << 32 | int(words[1])


def seed_all(seed: int) -> None:
    """torch (CPU and every GPU), numpy's global generator and Python's random, from one 64-bit seed."""
    if torch.cuda.is_initialized() or torch.backends.mps.is_available():
        torch.manual_seed(seed)
    else:  # CPU alone: torch.manual_seed would also queue a seed for a GPU never started, at 0.1 ms a call
        torch.default_generator.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class StepSeeds(pl.Callback):
    """Seeds every training batch, validation pass and test pass from the run's seed and its place in the run."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int):
        seed_all(step_seed(self.seed, trainer.current_epoch, batch_idx))

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seed_all(step_seed(self.seed, trainer.current_epoch, 0, "validate"))

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seed_all(step_seed(self.seed, trainer.current_epoch, 0, "test"))


class AdoptBestCheckpoint(pl.Callback):
    """On a resume into another directory, the resumed run's best checkpoint so far becomes this run's, copied here."""

    def __init__(self) -> None:
        self._restored: dict | None = None

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self._restored = checkpoint.get("callbacks") or {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        saver = trainer.checkpoint_callback
        state = (self._restored or {}).get(getattr(saver, "state_key", None))
        self._restored = None
        if not state or not saver.dirpath or state.get("dirpath") == saver.dirpath:
            return  # not a resume, or one in place: Lightning restores it all
        best, score = Path(state.get("best_model_path") or ""), state.get("best_model_score")
        if score is None or not best.is_file():
            return
        here = Path(saver.dirpath) / best.name
        if trainer.is_global_zero:  # every process takes the score; one copies the file
            here.parent.mkdir(parents=True, exist_ok=True)
            tmp = here.with_name(f".{here.name}.tmp")
            shutil.copyfile(best, tmp)
            tmp.replace(here)  # a checkpoint under its final name is whole
            log.info("best checkpoint so far (%s %.6g) copied from the resumed run: %s", saver.monitor, score, here)
        saver.best_model_path, saver.best_model_score = str(here), score
        saver.best_k_models = {str(here): score}
        saver.kth_best_model_path, saver.kth_value = str(here), score
