"""A stacked run's members, each kept as if it had been a job of a beta sweep of its own.

`python train.py sweep=beta_stacked` trains every beta of model.betas in one process (StackedBetaVAEModule). So that
what comes out matches a multirun, each member k gets, in the run directory:

    <run>/<k>/.hydra/config.yaml       the config a run of its own would have had (model.beta = its beta)
    <run>/<k>/checkpoints/best-epochNNN.ckpt, last.ckpt
                                       BetaVAEModule checkpoints: evaluate.py ckpt_path= opens them like any other
    <run>/<k>/status.json              finished or failed, with its final metrics, as a sweep job writes it
    <run>/<k>/wandb/, csv/, ...        its own loggers: one W&B run per beta, grouped by the run, values under the
                                       usual names (val/loss, not member2/val/loss)

and `evaluate.py sweep_dir=<run>` compares the members as it compares a sweep's jobs. The run's own checkpoints
(`<run>/checkpoints/last.ckpt`) hold all members and the optimiser: resume the stacked run from them.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.loggers import Logger, WandbLogger

from facevae.core.checkpoint import CHECKPOINT_KEY, checkpoint_metadata, wandb_run
from facevae.core.config import CONF_DIR, python_command
from facevae.core.files import copy_file, save_torch, write_text
from facevae.core.sweep_folder import sweep_group, write_status
from facevae.models.lit_beta_vae import BetaVAEModule
from facevae.models.lit_stacked_beta_vae import MEMBER_PREFIX, StackedBetaVAEModule, member_prefix
from facevae.sweeps import identity_tags

log = logging.getLogger(__name__)

MONITOR = "val/loss"  # a member's best checkpoint, as ModelCheckpoint picks a single run's (conf/callbacks)


@dataclass
class Member:
    index: int
    beta: float
    dir: Path
    config: dict  # the resolved config of a run of its own

    @property
    def prefix(self) -> str:
        return member_prefix(self.index)

    @property
    def override(self) -> str:
        return f"model.beta={self.beta:g}"


def listed(betas: list[float]) -> str:
    """Betas as a command line lists them: `1,4,16`."""
    return ",".join(f"{float(b):g}" for b in betas)


def member_values(values: dict[str, Any], member: Member) -> dict[str, Any]:
    """What a run of this member's own would have logged: its values (prefix stripped) and the shared ones (epoch,
    learning rate, the mean-face baseline); other members' left out."""
    shared = {k: v for k, v in values.items() if not k.startswith(MEMBER_PREFIX)}
    return {**shared, **{k[len(member.prefix) :]: v for k, v in values.items() if k.startswith(member.prefix)}}


class MemberLogger(Logger):
    """One member's view of the stacked run's logged values (member_values), sent to a logger of its own."""

    def __init__(self, inner: Logger, member: Member) -> None:
        super().__init__()
        self.inner = inner
        self.member = member

    @property
    def name(self) -> str | None:
        return self.inner.name

    @property
    def version(self) -> int | str | None:
        return self.inner.version

    @property
    def save_dir(self) -> str | None:
        return self.inner.save_dir

    @property
    def log_dir(self) -> str | None:
        return getattr(self.inner, "log_dir", None)

    @property
    def experiment(self) -> Any:
        return getattr(self.inner, "experiment", None)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if mine := member_values(metrics, self.member):
            self.inner.log_metrics(mine, step)

    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        self.inner.log_hyperparams(self.member.config)  # its own config: model.beta, not model.betas

    def save(self) -> None:
        self.inner.save()

    def finalize(self, status: str) -> None:
        self.inner.finalize(status)


class StackedRun:
    """The members of one stacked training run: their directories, configs, loggers, checkpoints and statuses."""

    def __init__(self, cfg: DictConfig, model: StackedBetaVAEModule, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.model = model
        self.metric = cfg.get("optimized_metric") or "val/loss"
        self.members = [
            Member(k, beta, self.run_dir / str(k), self._member_config(cfg, k)) for k, beta in enumerate(model.members)
        ]
        self.loggers: list[MemberLogger] = []
        self.callback = MemberCheckpoints(self)

    def _member_config(self, cfg: DictConfig, k: int) -> dict:
        """The resolved config a run of member k's own would have had, as a record: its beta and directory, the
        default callbacks (figures and latent analyses included), its W&B name and tags."""
        member = copy.deepcopy(cfg)
        beta = self.model.members[k]
        with open_dict(member):
            hparams = self.model.member_hparams(k)
            arguments = {key: v for key, v in hparams.items() if key not in BetaVAEModule.recorded}
            member.model = OmegaConf.create({"_target_": "facevae.models.BetaVAEModule", **arguments})
            member.paths.output_dir = str(self.run_dir / str(k))
            member.callbacks = _group_choice("callbacks", "default")
            member.stacked_run = {"dir": str(self.run_dir), "member": k, "betas": self.model.members}
            wandb = (member.get("logger") or {}).get("wandb")
            if wandb is not None:
                others = [t for t in (wandb.get("tags") or []) if not str(t).startswith("beta=")]
                wandb.tags = list(dict.fromkeys([*others, *identity_tags(member)]))
                wandb.group = wandb.get("group") or sweep_group(self.run_dir)
                wandb.name = f"{wandb.name} beta={beta:g}" if wandb.get("name") else f"beta={beta:g}"
        return OmegaConf.to_container(member, resolve=True)

    def make_loggers(self) -> list[MemberLogger]:
        """Each member's configured loggers, writing into its own directory: one W&B run per beta."""
        self.loggers = []
        for member in self.members:
            for cfg in (member.config.get("logger") or {}).values():
                if isinstance(cfg, dict) and "_target_" in cfg:
                    if str(cfg["_target_"]).endswith("WandbLogger"):
                        cfg = {**cfg, "reinit": "create_new"}  # the members' runs open side by side in one process
                    self.loggers.append(MemberLogger(hydra.utils.instantiate(cfg), member))
        return self.loggers

    def overrides(self) -> str:
        """The command line that trains this run again (for a resume): its own, or at least the stacked preset."""
        given = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
        given = [o for o in given if not o.startswith(("ckpt_path=", "hydra."))]
        betas = listed(self.model.members)
        keys = {o.split("=")[0].lstrip("+~") for o in given}
        needed = [o for o in ("sweep=beta_stacked", f"model.betas=[{betas}]") if o.split("=")[0] not in keys]
        return " ".join([*needed, *given])

    def learning(self) -> list[Member]:
        """The members that have not diverged: the ones whose checkpoints are still written."""
        return [m for m in self.members if m.index not in self.model.diverged]

    def prepare(self) -> None:
        """Each member's directory and config, before training starts."""
        for member in self.members:
            write_text(member.dir / ".hydra" / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(member.config)))

    def finish(self, metrics: dict[str, float] | None, error: str | None = None) -> None:
        """Each member's status.json: finished with its metrics, or failed with the run's error."""
        for member in self.members:
            record = {"overrides": [member.override], "swept": [member.override]}
            failure = self.model.diverged.get(member.index, error)
            if failure is not None or metrics is None:
                write_status(member.dir, {"status": "failed", "error": failure or "unknown", **record})
                continue
            mine = member_values(metrics, member)
            value = mine.get(self.metric, math.nan)
            write_status(
                member.dir, {"status": "finished", **record, "metric": self.metric, "value": value, "metrics": mine}
            )

    def report(self, metrics: dict[str, float]) -> list[str]:
        """The closing lines of a stacked run: each member's result and directory, where its W&B run is, how to
        resume and how to compare the members."""
        failed = len(self.model.diverged)
        lines = [
            "",
            f"training finished: {len(self.members) - failed} of {len(self.members)} betas trained as one model",
        ]
        for member in self.members:
            if member.index in self.model.diverged:
                lines.append(f"  failed: {self.model.diverged[member.index]}  ({member.dir})")
                continue
            mine = member_values(metrics, member)
            results = [
                f"{stage} PSNR {mine[f'{stage}/psnr']:.2f} dB" for stage in ("val", "test") if f"{stage}/psnr" in mine
            ]
            lines.append(f"  beta={member.beta:g}: {', '.join(results) or 'not validated'}  ({member.dir})")
        baseline = metrics.get("val/psnr_mean_face")
        if baseline is not None:
            lines.append(f"  (mean training face: {baseline:.2f} dB)")
        if any(_is_wandb(lg) for lg in self.loggers):
            lines.append(f"  W&B runs ({os.environ.get('WANDB_MODE', 'offline')}), one per beta: <k>/wandb/")
            lines.append(f"    sync them later with: wandb sync {self.run_dir}/*/wandb/offline-run-*")
        lines.append(f"  run directory: {self.run_dir}; member k is model.betas[k]")
        resume = f"{self.overrides()} ckpt_path={self.run_dir}/checkpoints/last.ckpt"
        lines.append(f"  resume: {python_command()} train.py {resume}")
        lines.append(f"  compare the betas: {python_command()} evaluate.py sweep_dir={self.run_dir}")
        return lines


def _is_wandb(logger: MemberLogger) -> bool:
    return isinstance(logger.inner, WandbLogger) and getattr(logger.experiment, "dir", None) is not None


class MemberCheckpoints(pl.Callback):
    """Each member's best checkpoint (lowest val/loss of its own) and last one, written as BetaVAEModule checkpoints
    (weights and config, no optimiser: the run's own last.ckpt resumes all members together);
    the test stage then tests each member at its best weights, as train.py tests a single run's best checkpoint."""

    def __init__(self, run: StackedRun) -> None:
        self.run = run
        self.best: dict[int, tuple[float, str]] = {}  # member -> (val/loss, checkpoint path)
        self.saved_step = -1  # the global step of the last checkpoints written

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.run.prepare()
            self._adopt_restored_bests()

    def _adopt_restored_bests(self) -> None:
        """A run resumed into a new directory copies in each member's best checkpoint so far: its own directory is
        then complete, and the run it resumed from is never touched (an improvement deletes only files of its own)."""
        for member in self.run.members:
            if member.index not in self.best:
                continue
            value, path = self.best[member.index]
            here = member.dir / "checkpoints" / Path(path).name
            if Path(path).is_file() and Path(path).resolve() != here.resolve():
                copy_file(path, here)
                self.best[member.index] = (value, str(here))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """After each validation, as ModelCheckpoint saves: each member's last, and its best when it improved."""
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        for member in self.run.learning():
            self.save(trainer, member, member.dir / "checkpoints" / "last.ckpt")
            value = trainer.callback_metrics.get(member.prefix + MONITOR)
            if value is None or not math.isfinite(float(value)):
                continue
            previous = self.best.get(member.index)
            if previous is not None and float(value) >= previous[0]:
                continue
            path = member.dir / "checkpoints" / f"best-epoch{trainer.current_epoch:03d}.ckpt"
            self.save(trainer, member, path)
            if previous is not None and Path(previous[1]).parent == path.parent and Path(previous[1]) != path:
                Path(previous[1]).unlink(missing_ok=True)  # never a file of another run
            self.best[member.index] = (float(value), str(path))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The final weights, when training went on past the last validation (check_val_every_n_epoch)."""
        if trainer.is_global_zero and self.saved_step != trainer.global_step:
            for member in self.run.learning():
                self.save(trainer, member, member.dir / "checkpoints" / "last.ckpt", epoch=trainer.current_epoch - 1)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for k, (_, path) in self.best.items():
            if Path(path).is_file():
                state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
                pl_module.load_member(k, state)

    def save(self, trainer: pl.Trainer, member: Member, path: Path, epoch: int | None = None) -> None:
        model: StackedBetaVAEModule = trainer.lightning_module
        member_loggers = [lg.inner for lg in self.run.loggers if lg.member is member]
        model_class = f"{BetaVAEModule.__module__}.{BetaVAEModule.__qualname__}"
        checkpoint = {
            "epoch": trainer.current_epoch if epoch is None else epoch,
            "global_step": trainer.global_step,
            "pytorch-lightning_version": pl.__version__,
            "state_dict": model.member_state(member.index),
            "hyper_parameters": model.member_hparams(member.index),
            CHECKPOINT_KEY: checkpoint_metadata(trainer, member.config, model_class, wandb_run(member_loggers)),
        }
        save_torch(checkpoint, path, setting="hydra.run.dir")
        self.saved_step = trainer.global_step

    def state_dict(self) -> dict[str, Any]:
        return {"best": {str(k): list(v) for k, v in self.best.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = {int(k): (float(v[0]), str(v[1])) for k, v in state_dict.get("best", {}).items()}


def _group_choice(group: str, name: str) -> DictConfig:
    """A choice of a config group as Hydra composes it: the same group's choices its defaults list names, and its own
    keys where `_self_` stands (last when it is not listed)."""
    node = OmegaConf.load(CONF_DIR / group / f"{name}.yaml")
    with open_dict(node):
        defaults = list(node.pop("defaults", []))
    if "_self_" not in defaults:
        defaults.append("_self_")
    parts = [node if entry == "_self_" else _group_choice(group, entry) for entry in defaults]
    return OmegaConf.merge(*parts)
