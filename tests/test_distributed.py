"""Slower tests of the launchers and strategies that start processes: `make test-distributed`.

submitit_local runs a sweep's jobs as separate processes through submitit, the code path a Slurm cluster uses;
trainer=ddp trains one model on two CPU processes over gloo, logging and checkpointing once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from test_sweeps import run_sweep, tiny_job_overrides, wandb_runs

from facevae.core.checkpoint import load_run
from facevae.core.sweep_folder import read_status
from facevae.data.datamodule import EpochBatches
from facevae.data.from_checkpoint import datamodule_for

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.distributed]


def test_submitit_local_runs_each_job_as_its_own_process_and_run(demo_clip, tmp_path):
    sweep = tmp_path / "sweep"
    done = run_sweep(sweep, "model.beta=1,4", "hydra/launcher=submitit_local", *tiny_job_overrides(demo_clip, tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sweep finished: 2 of 2 jobs trained" in done.stdout
    assert (sweep / ".submitit").is_dir()
    for job, beta in (("0", 1), ("1", 4)):
        assert read_status(sweep / job)["status"] == "finished"
        [run] = wandb_runs(sweep / job)
        assert f"beta={beta}" in run["run"]["tags"] and run["exit_code"] == 0


def test_ddp_on_two_cpu_processes_shares_the_batches_and_logs_once(long_clip, tmp_path):
    run_dir = tmp_path / "run"
    overrides = [o for o in tiny_job_overrides(long_clip, tmp_path / "cache") if o != "test=false"]
    cmd = [sys.executable, "train.py", "trainer=ddp", *overrides, "trainer.devices=2", "trainer.max_epochs=2"]
    cmd += [f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (run_dir / "train_ddp_process_1.log").is_file()  # a second process trained beside the first
    assert done.stdout.count("training finished") == 1  # the closing report is printed once

    [run] = wandb_runs(run_dir)  # one W&B run, finished, with the test pass logged once into it
    assert run["exit_code"] == 0 and "test/psnr" in run["summary"]
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=False)
    n_train = len(datamodule_for(load_run(last)).rows("train"))
    # Each process took its share of every epoch's batches: half the steps of a single-process run.
    assert ckpt["global_step"] == 2 * len(EpochBatches(n_train, 8, seed=0, world_size=2))
    assert len(EpochBatches(n_train, 8, seed=0, world_size=2)) < len(EpochBatches(n_train, 8, seed=0))


def test_optuna_searches_beta_and_latent_size_and_reports_the_best(demo_clip, tmp_path):
    sweep = tmp_path / "sweep"
    done = run_sweep(sweep, "sweep=optuna", "hydra.sweeper.n_trials=2", *tiny_job_overrides(demo_clip, tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"model.beta", "model.net.latent_dim"}
    values = [read_status(sweep / job)["value"] for job in ("0", "1")]
    assert best["best_value"] == pytest.approx(min(values))
