"""Multirun jobs: who each job is (its W&B group, name and tags), what became of it, and the sweep's closing lines.

`python train.py -m model.beta=1,2,4` runs each job in its own directory, with whichever launcher is configured
(basic, joblib, submitit). Two things would otherwise go wrong. Lightning's W&B logger keeps using the run it
opened, so jobs sharing a process merge into one run; and a job that raises ends the whole sweep. Here each job
gets its own run, grouped by sweep, and a failure is recorded in the job's `status.json` and survived.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from facevae.core.config import python_command
from facevae.core.errors import user_error
from facevae.core.files import write_text
from facevae.core.sweep_folder import job_dirs, read_status, sweep_group, write_status

log = logging.getLogger(__name__)

SHARED_OVERRIDES_FILE = "shared_overrides.json"  # the sweep's command line, written when the multirun starts


@dataclass(frozen=True)
class Job:
    """One job of a Hydra multirun."""

    sweep_dir: Path
    num: int
    dir: Path
    overrides: tuple[str, ...]  # what this job was given on top of the sweep's shared settings

    @property
    def group(self) -> str:
        return sweep_group(self.sweep_dir)


def current_job() -> Job | None:
    """This process's multirun job, or None in a single run (or outside Hydra)."""
    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    return Job(Path(hc.sweep.dir), int(hc.job.num), Path(hc.runtime.output_dir), tuple(hc.overrides.task))


def identity_tags(cfg: DictConfig) -> list[str]:
    """The tags a sweep is sliced by in W&B: beta, latent size and seed."""
    model = cfg.get("model") or {}
    # The code's size is the network's: the beta-VAE's net, the WGAN's generator.
    network = next((model[key] for key in ("net", "generator") if key in model), {})
    values = {"beta": (model, "beta"), "latent": (network, "latent_dim")}
    # beta=4, whether the config says 4 or 4.0: a tag filter finds the same runs either way
    tags = [f"{name}={_number(node[key])}" for name, (node, key) in values.items() if key in node]
    return [*tags, f"seed={cfg.get('seed')}"]


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def name_wandb_run(cfg: DictConfig, job: Job | None) -> None:
    """Fill the W&B logger's group, name and tags (values set by the user win)."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is None:
        return
    with open_dict(cfg):
        wandb_cfg.tags = list(dict.fromkeys([*(wandb_cfg.get("tags") or []), *identity_tags(cfg)]))
        if job is not None:
            wandb_cfg.group = wandb_cfg.get("group") or job.group
            wandb_cfg.name = wandb_cfg.get("name") or f"{job.num}: {' '.join(swept_overrides(job)) or 'defaults'}"


def swept_overrides(job: Job) -> list[str]:
    """What sets this job apart from the others (`model.beta=4 seed=1`): the overrides of the keys that are swept.

    A key is swept unless the sweep's command line, recorded by SweepSummary when the multirun started, sets it to
    one value. The sweeper's own params (a `sweep=` preset, Optuna's trials) are never on that command line.
    """
    path = job.sweep_dir / SHARED_OVERRIDES_FILE
    if not path.is_file():
        return list(job.overrides)
    parser = OverridesParser.create()
    fixed = {o.key_or_group for o in parser.parse_overrides(json.loads(path.read_text())) if not o.is_sweep_override()}
    return [
        text
        for text, o in zip(job.overrides, parser.parse_overrides(list(job.overrides)), strict=True)
        if o.key_or_group not in fixed
    ]


def limit_threads_per_job() -> None:
    """Jobs run side by side by the joblib launcher share the CPU cores instead of each taking all of them."""
    hc = HydraConfig.get()
    launcher = hc.launcher
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return
    cores = os.cpu_count() or 1
    n_jobs = int(launcher.get("n_jobs", -1))
    parallel = cores + 1 + n_jobs if n_jobs < 0 else n_jobs  # joblib's convention: -1 = all cores
    threads = max(1, cores // max(1, parallel))
    torch.set_num_threads(threads)
    log.info("%d jobs side by side on %d cores: %d torch threads for this one", parallel, cores, threads)


def run_job(train: Callable[[DictConfig], dict[str, float]], cfg: DictConfig, job: Job) -> float:
    """Train one job; a failure is logged, written to the job's status.json and returned as NaN (a failed trial).

    The sweep goes on to its next job either way. The training function has already marked the W&B run failed.
    """
    limit_threads_per_job()
    metric = cfg.get("optimized_metric") or "val/loss"
    record = {"overrides": list(job.overrides), "swept": swept_overrides(job)}
    try:
        metrics = train(cfg)
    except Exception as err:  # noqa: BLE001 - any failure of one job must not end the sweep
        reason = user_error(err) or f"{type(err).__name__}: {err}"
        log.exception("job %d (%s) failed: %s", job.num, " ".join(record["swept"]), reason)
        write_status(job.dir, {"status": "failed", "error": str(reason), **record})
        return math.nan
    value = metrics.get(metric, math.nan)
    write_status(job.dir, {"status": "finished", **record, "metric": metric, "value": value, "metrics": metrics})
    return value


class SweepSummary(Callback):
    """Hydra callback: when a multirun ends, say how many jobs finished or failed and how to compare them."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        write_text(sweep_dir / SHARED_OVERRIDES_FILE, json.dumps(list(config.hydra.overrides.task)) + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        statuses = {int(d.name): read_status(d) for d in job_dirs(sweep_dir)}
        failed = {n: s for n, s in statuses.items() if s["status"] != "finished"}
        lines = ["", f"sweep finished: {len(statuses) - len(failed)} of {len(statuses)} jobs trained"]
        for num, status in failed.items():
            what = " ".join(status.get("swept", []))
            lines.append(f"  job {num} ({what}) {status['status']}: {status.get('error', 'no status.json')}")
        lines.append(f"  sweep directory: {sweep_dir}")
        lines.append(f"  compare the jobs: {python_command()} evaluate.py sweep_dir={sweep_dir}")
        print("\n".join(lines))
        if failed:
            sys.exit(1)  # every job had its turn; the exit status still tells a script that some failed
