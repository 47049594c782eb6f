"""Sweeps: `train.py -m` jobs each with their own directory and W&B run, failures survived, and the sweep report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_overrides
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from facevae.core.sweep_folder import read_status
from facevae.core.wandb_offline import run_contents
from facevae.evaluation import evaluate_sweep
from facevae.plots.sweep import PLOTS
from facevae.sweeps import Job, swept_overrides

ROOT = Path(__file__).resolve().parents[1]


def tiny_job_overrides(clip: Path, cache: Path) -> list[str]:
    return [*tiny_overrides(clip, cache), "test=false"]


def run_sweep(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    cmd = [sys.executable, "train.py", "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def wandb_runs(job_dir: Path, timeout_s: float = 30.0) -> list[dict]:
    """A job's offline W&B runs, each read once its exit record is written: W&B's writer is a process of its own
    that can still be flushing when the job's process has ended."""
    runs = []
    for run_dir in sorted((job_dir / "wandb").glob("offline-run-*")):
        deadline = time.monotonic() + timeout_s
        while (run := run_contents(run_dir))["exit_code"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
        runs.append(run)
    return runs


@pytest.fixture(scope="module")
def joblib_sweep(demo_clip, tmp_path_factory) -> Path:
    """Two beta values trained side by side by the joblib launcher."""
    tmp = tmp_path_factory.mktemp("sweep")
    done = run_sweep(
        tmp / "sweep",
        "model.beta=1,4",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *tiny_job_overrides(demo_clip, tmp / "cache"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sweep finished: 2 of 2 jobs trained" in done.stdout
    return tmp / "sweep"


def test_each_job_has_its_own_directory_checkpoint_and_status(joblib_sweep):
    jobs = sorted(p.name for p in joblib_sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == ["0", "1"]
    for job in jobs:
        assert list((joblib_sweep / job / "checkpoints").glob("*.ckpt"))
        status = read_status(joblib_sweep / job)
        assert status["status"] == "finished"
        assert status["metric"] == "val/neg_elbo" and status["value"] == status["metrics"]["val/neg_elbo"]
    assert [read_status(joblib_sweep / j)["swept"] for j in jobs] == [["model.beta=1"], ["model.beta=4"]]


def test_each_job_is_its_own_finished_wandb_run_grouped_by_sweep_and_tagged(joblib_sweep):
    runs = [wandb_runs(joblib_sweep / job) for job in ("0", "1")]
    assert [len(r) for r in runs] == [1, 1]  # no merged runs, no lost runs
    first, second = runs[0][0], runs[1][0]
    assert first["run"]["id"] != second["run"]["id"]
    assert first["run"]["group"] == second["run"]["group"] == "_".join(joblib_sweep.resolve().parts[-2:])
    assert {"beta=1", "latent=32", "seed=0"} <= set(first["run"]["tags"])
    assert {"beta=4", "latent=32", "seed=0"} <= set(second["run"]["tags"])
    assert first["run"]["name"] == "0: model.beta=1" and second["run"]["name"] == "1: model.beta=4"
    assert first["exit_code"] == second["exit_code"] == 0
    assert first["config"]["model"]["beta"] == 1 and second["config"]["model"]["beta"] == 4


def test_a_failed_job_is_marked_failed_and_the_sweep_goes_on(demo_clip, tmp_path):
    # A learning rate of 1e30 makes the loss NaN after the first step, inside training: the W&B run exists.
    done = run_sweep(
        tmp_path / "sweep", "model.optimizer.lr=1e30,1e-4", *tiny_job_overrides(demo_clip, tmp_path / "cache")
    )
    assert done.returncode == 1  # every job ran, and the exit status still says one failed
    assert "sweep finished: 1 of 2 jobs trained" in done.stdout
    assert "job 0 (model.optimizer.lr=1e+30) failed: " in done.stdout
    failed, finished = read_status(tmp_path / "sweep" / "0"), read_status(tmp_path / "sweep" / "1")
    assert failed["status"] == "failed" and "loss is nan" in failed["error"]
    assert not list((tmp_path / "sweep" / "0").glob("checkpoints/*.ckpt"))  # no diverged weights kept
    assert finished["status"] == "finished"
    assert [r["exit_code"] for r in wandb_runs(tmp_path / "sweep" / "0")] == [1]
    assert [r["exit_code"] for r in wandb_runs(tmp_path / "sweep" / "1")] == [0]


def evaluate_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("evaluate", overrides=["wandb=false", "n_samples=32", "shift_frames=8", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = "unused"
    return cfg


def test_the_sweep_report_has_one_row_per_job_and_the_plots(joblib_sweep):
    report = evaluate_sweep(evaluate_cfg(f"sweep_dir={joblib_sweep}"))
    table = pd.read_csv(joblib_sweep / "sweep.csv")
    assert list(table["job"]) == [0, 1] and list(table["beta"]) == [1.0, 4.0]
    assert table["latent_dim"].notna().all()  # read from the config under model.net
    assert table["psnr"].notna().all() and table["kl"].notna().all() and table["recon_nll"].notna().all()
    assert set(table["status"]) == {"finished"}
    md = (joblib_sweep / "sweep.md").read_text()
    assert md.count("| finished |") == 2
    for name in ("rate_distortion.png", "psnr_vs_beta.png", "active_units_vs_beta.png"):
        assert (joblib_sweep / name).stat().st_size > 10_000
    # The demo's factors make the disentanglement plot possible too.
    assert {p.name for p in report.files} >= set(PLOTS)

    # A second report reuses each job's metrics.json instead of evaluating again.
    written = {p: p.stat().st_mtime_ns for p in joblib_sweep.glob("*/evaluation/*/metrics.json")}
    assert len(written) == 2
    again = evaluate_sweep(evaluate_cfg(f"sweep_dir={joblib_sweep}"))
    assert {p: p.stat().st_mtime_ns for p in written} == written
    assert again.table["psnr"].tolist() == report.table["psnr"].tolist()


def test_a_sweep_report_keeps_rows_for_jobs_without_a_checkpoint(joblib_sweep, tmp_path):
    import shutil

    copy = tmp_path / "sweep"
    shutil.copytree(joblib_sweep, copy)
    shutil.rmtree(copy / "1" / "checkpoints")
    (copy / "1" / "status.json").write_text(json.dumps({"status": "failed", "error": "out of memory"}))
    report = evaluate_sweep(evaluate_cfg(f"sweep_dir={copy}"))
    assert list(report.table["status"]) == ["finished", "failed"]
    assert "job 1 (): failed, out of memory" in (copy / "sweep.md").read_text()


def test_evaluate_refuses_a_directory_that_is_not_a_sweep(tmp_path):
    done = subprocess.run(
        [sys.executable, "evaluate.py", f"sweep_dir={tmp_path}", "wandb=false"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: sweep_dir={tmp_path}: no job directories (0/, 1/, ...) inside; is it a multirun dir?"
    )


def test_a_jobs_name_is_what_was_swept_not_what_all_jobs_share(tmp_path):
    (tmp_path / "shared_overrides.json").write_text(json.dumps(["model.beta=1,4", "trainer.max_epochs=1", "seed=0"]))
    job = Job(tmp_path, 1, tmp_path / "1", ("model.beta=4", "trainer.max_epochs=1", "seed=0", "model.lr=0.001"))
    assert swept_overrides(job) == ["model.beta=4", "model.lr=0.001"]  # lr: an Optuna trial's own param


@pytest.mark.parametrize("preset", ["beta", "optuna"])
def test_sweep_presets_compose_as_multiruns(preset):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"sweep={preset}"], return_hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    params = cfg.hydra.sweeper.params
    if preset == "beta":
        assert params["model.beta"] == "1,2,4,8,16" and params["seed"] == "0,1,2"
    else:
        assert "OptunaSweeper" in cfg.hydra.sweeper._target_
        assert set(params) == {"model.beta", "model.net.latent_dim"}


def test_cluster_launchers_compose(tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for launcher, target in [("joblib", "Joblib"), ("submitit_local", "Local"), ("submitit_slurm", "Slurm")]:
            cfg = compose("train", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
            assert cfg.hydra.launcher._target_.endswith(f"{target}Launcher")
        cfg = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.gpus_per_node == 1
