"""Whether `train.py ckpt_path=...` can resume from a checkpoint: one line saying why not, before any work.

A resumed run continues the one that wrote the checkpoint step for step (facevae.callbacks.resumption makes every
step's randomness a function of the seed and the step), so it must be given the same network, the same crops, the
same seed and batch size, and epochs left to train. Other changed values (beta, the learning rate, ...) apply from
the resumed step on, and are listed in the log.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from facevae.core.checkpoint import CHECKPOINT_KEY, checkpoint_in, nonfinite_weights, read_checkpoint
from facevae.core.errors import FaceVAEError, require
from facevae.core.rules import shown
from facevae.data.extract import cache_key_for
from facevae.members import listed

log = logging.getLogger(__name__)


def check_resumable(ckpt_path: str | None, cfg: DictConfig) -> None:
    """A checkpoint to resume from must exist and hold what this config trains, with its optimiser: checked before
    any logger or directory is made, so a wrong resume is one line and leaves nothing behind."""
    if not ckpt_path:
        return
    path = Path(ckpt_path).expanduser()
    if path.is_dir():
        raise FaceVAEError(f"ckpt_path={ckpt_path}: is a folder, not a checkpoint to resume from{checkpoint_in(path)}")
    if not path.is_file():
        raise FaceVAEError(f"ckpt_path={ckpt_path}: no such checkpoint to resume from")
    ckpt = read_checkpoint(ckpt_path)
    _finite_weights(ckpt, ckpt_path)
    _same_model_class(ckpt, cfg, ckpt_path)
    _same_weights(ckpt, cfg, ckpt_path)
    _same_data(ckpt, cfg, ckpt_path)
    _same_steps(ckpt, cfg, ckpt_path)
    _epochs_left(ckpt, cfg, ckpt_path)
    _log_changes(ckpt, cfg)


def _finite_weights(ckpt: dict, ckpt_path: str) -> None:
    """Weights that diverged would train an epoch of NaN before the loss check stopped the run. A stacked run's
    checkpoint names its diverged members itself: they stay frozen on resume while the others train on."""
    if ckpt.get("diverged"):
        return
    broken = nonfinite_weights(ckpt["state_dict"])
    if broken:
        raise FaceVAEError(
            f"ckpt_path={ckpt_path}: {len(broken)} weight tensors hold NaN or infinite values (first: {broken[0]}): "
            "training diverged before this checkpoint; resume from an earlier one"
        )


def _same_model_class(ckpt: dict, cfg: DictConfig, ckpt_path: str) -> None:
    meta = ckpt[CHECKPOINT_KEY]
    stacked_run = (meta.get("config") or {}).get("stacked_run")
    if "optimizer_states" not in ckpt:
        where = f"{stacked_run['dir']}/checkpoints/last.ckpt" if stacked_run else "the run's checkpoints/last.ckpt"
        raise FaceVAEError(
            f"ckpt_path={ckpt_path}: weights without the optimiser's state (a stacked run's member) cannot resume "
            f"training; resume the whole stacked run from {where}"
        )
    trained = meta["model_class"].rpartition(".")[2]
    configured = str(cfg.model.get("_target_", "")).rpartition(".")[2]
    if trained != configured:
        hint = ""
        if trained == "StackedBetaVAEModule":
            betas = listed(ckpt["hyper_parameters"]["betas"])
            hint = f" (a stacked run: add sweep=beta_stacked model.betas=[{betas}])"
        raise FaceVAEError(f"ckpt_path={ckpt_path}: trained as {trained}; this config trains {configured}{hint}")
    if trained == "StackedBetaVAEModule":
        betas, asked = list(ckpt["hyper_parameters"]["betas"]), [float(b) for b in cfg.model.betas]
        if betas != asked:
            raise FaceVAEError(
                f"ckpt_path={ckpt_path}: its members were trained with model.betas=[{listed(betas)}], not "
                f"[{listed(asked)}]; resume with sweep=beta_stacked model.betas=[{listed(betas)}]"
            )


def _same_weights(ckpt: dict, cfg: DictConfig, ckpt_path: str) -> None:
    """The settings that shape the weights (model.net.latent_dim, ...) as trained: others would not load."""
    cls = hydra.utils.get_class(cfg.model._target_)
    trained, asked = _settings(cls, ckpt), _leaves(OmegaConf.to_container(cfg.model, resolve=True))
    for key in cls.weight_settings:
        if key in trained and key in asked and _plain(trained[key]) != _plain(asked[key]):
            raise FaceVAEError(
                f"ckpt_path={ckpt_path}: trained with model.{key}={shown(trained[key])}, not {shown(asked[key])}; "
                f"resume with model.{key}={shown(trained[key])}, or train a new run without ckpt_path"
            )


def _settings(cls: type, ckpt: dict) -> dict:
    """The checkpoint's hyperparameters as the model config names them (model.net.latent_dim, ...): each leaf under
    its dotted path, those of earlier flat checkpoints included."""
    return _leaves(cls.upgrade_hparams(ckpt.get("hyper_parameters") or {}))


def _leaves(node: dict, prefix: str = "") -> dict:
    """A nested config as {dotted path: value} for every value that is not itself a node."""
    leaves = {}
    for key, value in node.items():
        if isinstance(value, dict):
            leaves.update(_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def _same_data(ckpt: dict, cfg: DictConfig, ckpt_path: str) -> None:
    """The crops this config would train on are the ones the checkpoint trained on: the same cache key."""
    meta = ckpt[CHECKPOINT_KEY]
    datamodule = hydra.utils.instantiate(cfg.data)
    if not datamodule.source.exists():
        return  # the demo video, made again as it was: its cache key is checked when the data is loaded
    key = cache_key_for(datamodule.source, datamodule.params)
    require(
        key == meta["cache_key"],
        f"ckpt_path={ckpt_path}: trained on {meta['source']} (crop cache {meta['cache_key']}), but this config's data "
        f"is {datamodule.source} (crop cache {key}: another video or other extraction settings); resume with the "
        "data it was trained on",
    )


def _same_steps(ckpt: dict, cfg: DictConfig, ckpt_path: str) -> None:
    """The seed and the batch size make the batches and the noise of every step: another would not continue the run."""
    trained = ckpt[CHECKPOINT_KEY].get("config") or {}
    then = {"seed": trained.get("seed"), "data.batch_size": (trained.get("data") or {}).get("batch_size")}
    for key, now in (("seed", cfg.seed), ("data.batch_size", cfg.data.batch_size)):
        if then[key] is not None and then[key] != now:
            raise FaceVAEError(
                f"ckpt_path={ckpt_path}: trained with {key}={then[key]}, not {now}; a resumed run continues its "
                f"batches and noise, so resume with {key}={then[key]}"
            )


def epochs_done(ckpt: dict) -> int:
    """Epochs the checkpoint's run had finished: its epoch counts one more when written at the epoch's last batch."""
    batches = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress", {})
    return int(ckpt.get("epoch", 0)) + int(bool(batches.get("is_last_batch")))


def _epochs_left(ckpt: dict, cfg: DictConfig, ckpt_path: str) -> None:
    done, planned = epochs_done(ckpt), cfg.trainer.max_epochs
    require(
        done < planned,
        f"ckpt_path={ckpt_path}: already trained {done} epoch{'s' * (done != 1)} and trainer.max_epochs={planned}: "
        "nothing left to train; raise trainer.max_epochs to go on",
    )


def _log_changes(ckpt: dict, cfg: DictConfig) -> None:
    trained = _settings(hydra.utils.get_class(cfg.model._target_), ckpt)
    asked = _leaves(OmegaConf.to_container(cfg.model, resolve=True))
    changed = [
        f"model.{k}={shown(trained[k])} -> {shown(v)}"
        for k, v in asked.items()
        if k in trained and not k.endswith("_target_") and _plain(trained[k]) != _plain(v)
    ]
    if changed:
        log.warning("resuming with changed settings, in effect from the resumed step on: %s", ", ".join(changed))


def _plain(value):
    """Numbers as floats and sequences as lists: 4 and 4.0, (1, 2) and [1, 2] are the same setting."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value
