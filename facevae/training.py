"""Training from a composed Hydra config: instantiate data, model, callbacks, loggers and trainer, then fit."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from facevae.callbacks import (
    AdoptBestCheckpoint,
    CheckpointMetadata,
    MeanFaceBaseline,
    StepSeeds,
    ValidateLastEpoch,
)
from facevae.core.checkpoint import AtomicCheckpointIO
from facevae.core.config import python_command
from facevae.core.errors import FaceVAEError, user_error
from facevae.members import MemberLogger, StackedRun
from facevae.models import StackedBetaVAEModule
from facevae.sweeps import current_job, name_wandb_run
from facevae.validation import check_config

log = logging.getLogger(__name__)

# Known, harmless notices that would otherwise greet every run: the module's uint8->float hook is meant to win over
# the datamodule's, and a deprecation inside Lightning's own pytree helper.
warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
# A resume into a new run directory: facevae.callbacks.AdoptBestCheckpoint carries the best checkpoint over itself.
warnings.filterwarnings("ignore", message=".*The dirpath has changed from.*")


def instantiate_group(group: DictConfig | None) -> list:
    """Each entry of a config group that names a `_target_` becomes one object (callbacks, loggers)."""
    if not group:
        return []
    return [hydra.utils.instantiate(c) for c in group.values() if isinstance(c, DictConfig) and "_target_" in c]


def checkpoint_monitor(cfg: DictConfig, model: pl.LightningModule) -> None:
    """A model whose `checkpoint_monitor` is None has no validation metric fit to choose checkpoints by (the WGAN:
    its critic's estimate measures the critic as much as the generator). Its ModelCheckpoint then monitors nothing
    and keeps the latest checkpoint as "best"; set here, in the config, so the saved config says what was done."""
    if model.checkpoint_monitor is not None:
        return
    for name, callback in (cfg.get("callbacks") or {}).items():
        is_checkpoint = isinstance(callback, DictConfig) and str(callback.get("_target_")).endswith(".ModelCheckpoint")
        if is_checkpoint and callback.get("monitor") is not None:
            log.info("%s: no metric to choose checkpoints by, %s keeps the latest", type(model).__name__, name)
            callback.monitor = None
            callback.filename = str(callback.filename).replace("best", "latest", 1)  # and says so in its name


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (and test) as the config says; returns the final metrics, the value a sweeper optimises among them."""
    check_config(cfg, "train")  # every value, and a resume's checkpoint, before any data is extracted
    # The crops first: a video or photo folder that yields none, or a disk too full for the cache, is then one line
    # before any logger starts (W&B's lines would come first) or any model is built. Lightning's own call reuses it.
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    # Seeded next, whatever extracting the crops drew: the model's initial weights are drawn when it is built. Said in
    # the log, not on stderr, where a configuration error should be the only line.
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    log.info("seed %s", cfg.seed)
    model = hydra.utils.instantiate(cfg.model)
    ckpt_path = cfg.get("ckpt_path")
    checkpoint_monitor(cfg, model)
    name_wandb_run(cfg, current_job())  # each job of a sweep is its own W&B run, grouped by sweep
    resolved = OmegaConf.to_container(cfg, resolve=True)
    callbacks = instantiate_group(cfg.get("callbacks")) + [CheckpointMetadata(resolved), StepSeeds(cfg.seed)]
    callbacks += [AdoptBestCheckpoint(), ValidateLastEpoch()]
    stacked = None
    if isinstance(model, StackedBetaVAEModule):  # one model per beta: each with its own loggers and checkpoints
        stacked = StackedRun(cfg, model, Path(resolved["paths"]["output_dir"]))
        callbacks.append(stacked.callback)
    loggers = stacked.make_loggers() if stacked else instantiate_group(cfg.get("logger"))
    if not loggers:  # logger=none: the learning rate has nowhere to go, and Lightning refuses the monitor
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.LearningRateMonitor)]
    # Checkpoints are written beside their final name and renamed into place: never half a file under it.
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    for logger in loggers:
        logger.log_hyperparams(resolved)

    try:
        metrics = _fit_and_test(cfg, trainer, model, datamodule, ckpt_path)
    except BaseException as err:
        _finish_loggers(loggers, exit_code=1)  # the W&B run is marked failed; a sweep goes on to its next job
        if stacked and trainer.is_global_zero:
            stacked.finish(None, error=str(user_error(err) or f"{type(err).__name__}: {err}"))
        raise
    baseline = next((c.psnr for c in callbacks if isinstance(c, MeanFaceBaseline)), None)
    if baseline is not None:
        metrics["val/psnr_mean_face"] = baseline
    if trainer.is_global_zero and stacked:
        stacked.finish(metrics)
        print("\n".join(stacked.report(metrics)))
    elif trainer.is_global_zero:
        _report(trainer, metrics, _best_checkpoint(trainer))
    _finish_loggers(loggers)
    if stacked and model.diverged:  # the others are done and kept; the exit status still says one failed
        raise FaceVAEError(
            f"{len(model.diverged)} of {len(model.members)} betas diverged (see status.json); the others finished"
        )
    return metrics


def _fit_and_test(
    cfg: DictConfig,
    trainer: pl.Trainer,
    model: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    ckpt_path: str | None,
) -> dict[str, float]:
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except SystemExit:
        # Lightning meets Ctrl-C with its own shutdown and exit(1); said as every other command says it, with the
        # checkpoints it kept to resume from.
        if trainer.interrupted:
            last = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none yet"
            log.info("interrupted at step %d; the last checkpoint: %s", trainer.global_step, last)
            raise KeyboardInterrupt from None
        raise
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    best = _best_checkpoint(trainer)
    if not best and not trainer.fast_dev_run and not model.stacked:
        # A run that ends before its first checkpoint (trainer.max_steps, max_time) would "finish" with nothing.
        raise FaceVAEError(
            f"training stopped at step {trainer.global_step} (epoch {trainer.current_epoch}) before writing any "
            "checkpoint: train at least until the first validation (trainer.max_steps, trainer.max_time, "
            "trainer.check_val_every_n_epoch)"
        )
    _refuse_unvalidated(trainer, model)
    if cfg.get("test") and best:
        test_metrics = trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)
        metrics.update({k: float(v) for k, v in (test_metrics[0] if test_metrics else {}).items()})
    return metrics


def _refuse_unvalidated(trainer: pl.Trainer, model: pl.LightningModule) -> None:
    """A run stopped before its first validation (trainer.max_steps, max_time) kept last.ckpt, but nothing chose it:
    testing it and calling it "best" would report an unvalidated model as a result."""
    ckpt = trainer.checkpoint_callback
    if trainer.fast_dev_run or model.stacked or ckpt is None or ckpt.monitor is None:
        return
    if ckpt.best_model_score is None:
        raise FaceVAEError(
            f"training stopped at step {trainer.global_step}, before its first validation, so no checkpoint was "
            f"chosen by {ckpt.monitor}: train at least until the first validation (trainer.max_steps, "
            "trainer.max_time, trainer.check_val_every_n_epoch); the unvalidated weights are in "
            f"{ckpt.last_model_path or 'no checkpoint'}"
        )


def _best_checkpoint(trainer: pl.Trainer) -> str | None:
    ckpt = trainer.checkpoint_callback
    if ckpt is None:
        return None
    return ckpt.best_model_path or ckpt.last_model_path or None


def _report(trainer: pl.Trainer, metrics: dict[str, float], best: str | None) -> None:
    """The closing lines `make train` promises: results, where things are, and what to run next."""
    lines = ["", "training finished"]
    if "val/psnr" in metrics:
        base = metrics.get("val/psnr_mean_face")
        beside = f" (mean training face: {base:.2f} dB)" if base is not None else ""
        lines.append(
            f"  val PSNR {metrics['val/psnr']:.2f} dB{beside}, val loss {metrics.get('val/loss', float('nan')):.1f}"
        )
    if "val/wasserstein" in metrics:
        lines.append(f"  val Wasserstein estimate {metrics['val/wasserstein']:.3f} (the critic's; see evaluate.py)")
    if "test/psnr" in metrics:
        lines.append(f"  test PSNR {metrics['test/psnr']:.2f} dB, SSIM {metrics.get('test/ssim', float('nan')):.3f}")
    lines.append(f"  run directory: {trainer.default_root_dir}")
    if best:
        # The WGAN has no metric to choose checkpoints by: its checkpoint is the latest, and says so.
        which = "best" if trainer.checkpoint_callback.monitor is not None else "latest"
        lines.append(f"  {which} checkpoint: {best}")
    for logger in trainer.loggers:
        if isinstance(logger, pl.loggers.WandbLogger) and logger.experiment is not None:
            run_dir = getattr(logger.experiment, "dir", None)
            if run_dir:
                lines.append(f"  W&B run ({os.environ.get('WANDB_MODE', 'offline')}): {Path(run_dir).parent}")
                lines.append(f"    sync it later with: wandb sync {Path(run_dir).parent}")
    if best:
        lines.append(f"  evaluate it: {python_command()} evaluate.py ckpt_path={best}")
    print("\n".join(lines))


def _finish_loggers(loggers: list, exit_code: int = 0) -> None:
    """Close each W&B run here, so every job of a multirun gets its own run instead of continuing the last one."""
    for logger in loggers:
        if isinstance(logger, MemberLogger):  # a stacked run's member loggers each hold their own W&B run
            logger = logger.inner
        if isinstance(logger, pl.loggers.WandbLogger) and logger._experiment is not None:
            logger.experiment.finish(exit_code=exit_code)
