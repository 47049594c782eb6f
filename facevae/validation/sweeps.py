"""Every value a sweep will try, checked before any job starts; and the Hydra callback that runs the checks before
Hydra makes the run's directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from facevae.core.errors import FaceVAEError, exit_if_user_error
from facevae.validation.commands import check_config


def sweep_values(cfg: DictConfig) -> dict[str, list]:
    """Each key a multirun sweeps, with the values (or an interval's ends) it will try: from the command line
    (`model.beta=1,2,4`) and from the sweeper's params (a sweep= preset, Optuna's search space)."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    texts = [f"{k}={v}" for k, v in params.items()]
    texts += list(cfg.hydra.overrides.task)  # last: the command line's values replace a preset's, as in Hydra
    tried: dict[str, list] = {}
    for override in OverridesParser.create().parse_overrides(texts):
        if not override.is_sweep_override() or override.key_or_group.startswith("hydra."):
            continue
        value = override.value()
        if isinstance(value, ChoiceSweep):
            tried[override.key_or_group] = list(value.list)
        elif isinstance(value, RangeSweep):
            tried[override.key_or_group] = list(override.sweep_iterator())
        elif isinstance(value, IntervalSweep):
            tried[override.key_or_group] = [value.start, value.end]
    return tried


def check_sweep(cfg: DictConfig, command: str) -> None:
    """The config with each value a sweep will try, one key at a time: a bad value is refused before any job runs."""
    for key, values in sweep_values(cfg).items():
        if isinstance(OmegaConf.select(cfg, key, default=None), DictConfig):
            continue  # a config group swept by choice (model=beta_vae,wgan_gp): each job checks its own
        for value in values:
            trial = cfg.copy()
            OmegaConf.update(trial, key, value, force_add=True)
            try:
                check_config(trial, command)
            except FaceVAEError as err:
                raise FaceVAEError(f"the sweep's {key}={value}: {err}") from None


class ConfigCheck(Callback):
    """Hydra callback: the config (and every value a sweep will try) checked before Hydra makes any directory."""

    def __init__(self, command: str = "train") -> None:
        self.command = command

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir", lambda cfg: check_config(cfg, self.command))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        def both(cfg: DictConfig) -> None:
            check_config(cfg, self.command)
            check_sweep(cfg, self.command)

        self._check(config, "hydra.sweep.dir", both)

    @staticmethod
    def _check(config: DictConfig, run_dir: str, check: Callable[[DictConfig], None]) -> None:
        """check(config) as the job will see it, with the run directory it will get (Hydra sets it only when it
        makes it); a FaceVAEError ends the command with its line, as the entry points' own errors do."""
        job = config.copy()
        with open_dict(job):
            job.hydra.runtime.output_dir = str(Path(OmegaConf.select(job, run_dir)).absolute())
        HydraConfig.instance().set_config(job)
        try:
            check(job)
        except Exception as err:
            exit_if_user_error(err)
            raise
