"""train.py end to end on a tiny clip: configs compose, runs fit, resume, log offline to W&B and fail cleanly."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import make_train_cfg
from omegaconf import OmegaConf

from facevae import training
from facevae.core.checkpoint import CHECKPOINT_KEY
from facevae.core.errors import FaceVAEError
from facevae.wandb_offline import run_contents

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


make_cfg = make_train_cfg


GROUP_CHOICES = {
    "data": ["faces"],
    "model": ["beta_vae", "wgan_gp"],
    "callbacks": ["default", "none", "stacked"],
    "logger": ["wandb", "tensorboard", "csv", "none"],
    "trainer": ["default", "cpu", "gpu", "ddp"],
    "experiment": ["seed_paper", "smoke"],
}


@pytest.mark.parametrize("group, choice", [(g, c) for g, cs in GROUP_CHOICES.items() for c in cs])
def test_every_config_group_composes_and_instantiates(tmp_path, group, choice):
    cfg = make_cfg(tmp_path, tmp_path / "clip.mp4", f"{group}={choice}")
    OmegaConf.resolve(cfg)
    assert training.instantiate_group(cfg.callbacks) is not None
    if group == "trainer":
        assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
        if choice == "gpu" and not torch.cuda.is_available():
            return
        if choice != "ddp":
            import hydra

            hydra.utils.instantiate(cfg.trainer)
    if group == "logger":
        import hydra

        for logger_cfg in (cfg.logger or {}).values():
            assert "_target_" in logger_cfg
            hydra.utils.get_class(logger_cfg._target_)


def test_seed_paper_experiment_is_the_seeds_setup(tmp_path):
    cfg = make_cfg(tmp_path, None, "experiment=seed_paper")
    assert (cfg.data.fps, cfg.data.size, cfg.model.net.latent_dim, cfg.model.optimizer.lr) == (8, 64, 32, 1e-4)
    assert cfg.model.net.channels == [32, 32, 64, 64] and cfg.model.net.hidden == 256
    assert "seed_paper" in cfg.tags


def test_an_experiment_overrides_top_level_keys(tmp_path):
    cfg = make_cfg(tmp_path, None, "experiment=smoke")
    assert cfg.test is False and cfg.tags == ["smoke"]


def test_the_seed_sets_the_initial_weights(tmp_path, monkeypatch, demo_clip):
    initial = []

    def record(cfg, trainer, model, datamodule, ckpt_path):
        initial.append(model.model.encoder[0].weight.detach().clone())
        return {}

    monkeypatch.setattr(training, "_fit_and_test", record)
    for seed in (0, 1, 0):
        torch.manual_seed(123)  # whatever ran before in the process plays no part
        training.train(make_cfg(tmp_path, demo_clip, f"seed={seed}"))  # the clip is never read
    assert torch.equal(initial[0], initial[2]) and not torch.equal(initial[0], initial[1])


def test_fast_dev_run_trains_on_a_tiny_clip(tmp_path, demo_clip):
    cfg = make_cfg(tmp_path, demo_clip, "+trainer.fast_dev_run=true", "test=false")
    metrics = training.train(cfg)
    assert "train/loss" in metrics and torch.isfinite(torch.tensor(metrics["train/loss"]))


def test_a_run_without_a_logger_trains_with_the_default_callbacks(tmp_path, demo_clip):
    cfg = make_cfg(tmp_path, demo_clip, "logger=none", "callbacks=default", "test=false")
    metrics = training.train(cfg)
    assert "val/loss" in metrics and (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").is_file()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, long_clip):
    tmp_path = tmp_path_factory.mktemp("trained")
    cfg = make_cfg(tmp_path, long_clip, "trainer.max_epochs=2")
    metrics = training.train(cfg)
    return cfg, metrics, Path(cfg.paths.output_dir)


def test_a_run_writes_last_and_best_checkpoints_carrying_config_and_split(trained):
    cfg, metrics, run = trained
    checkpoints = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in checkpoints and any(name.startswith("best-") for name in checkpoints)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    meta = ckpt[CHECKPOINT_KEY]
    assert meta["config"]["model"]["beta"] == cfg.model.beta
    assert set(meta["split"]) == {"train", "val", "test"} and meta["split"]["test"]
    assert {"val/psnr", "val/ssim", "test/psnr", "val/psnr_mean_face"} <= set(metrics)


def test_resuming_continues_the_step_counter(trained, tmp_path, long_clip):
    _, _, run = trained
    last = run / "checkpoints" / "last.ckpt"
    steps_before = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    cfg = make_cfg(tmp_path, long_clip, "trainer.max_epochs=3", f"ckpt_path={last}", "test=false")
    training.train(cfg)
    resumed = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert resumed["epoch"] == 2
    assert resumed["global_step"] == steps_before * 3 // 2


def finished_run(run_dir: Path, timeout_s: float = 30.0) -> dict:
    """The offline run's contents once its exit record is written: W&B's writer process can still be flushing the file
    when finish() returns, and on a loaded machine the history is sometimes not there yet."""
    deadline = time.monotonic() + timeout_s
    while (run := run_contents(run_dir))["exit_code"] is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return run


def test_offline_wandb_run_holds_the_logged_keys_and_config(tmp_path, demo_clip, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = make_cfg(
        tmp_path,
        demo_clip,
        "logger=wandb",
        "test=false",
        "trainer.log_every_n_steps=1",
        "callbacks.latent_analysis.every_n_epochs=1",
    )
    training.train(cfg)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run = finished_run(runs[0])
    logged = {
        "train/loss",
        "train/recon",
        "train/kl",
        "train/beta",
        "train/beta_norm",
        "val/psnr",
        "val/ssim",
        "val/kl_dim/00",
        "val/reconstructions/_type",
        "val/interpolation/_type",
        "val/traversals/_type",
        "val/kl_per_dim/_type",
        "val/gaussian_total_correlation",
        "val/mig",
        "val/prior_samples/_type",
        "val/prior_interpolation/_type",
    }
    assert logged <= run["history_keys"]
    assert run["config"]["data"]["block_s"] == 1 and run["config"]["model"]["net"]["latent_dim"] == 32


@pytest.mark.parametrize(
    "override, words",
    [
        ("model.beta=-1", "beta"),
        ("model.net.latent_dim=0", "latent_dim"),
        ("data.size=60", "60"),
        ("data.fps=0", "data.fps"),
    ],
)
def test_invalid_values_fail_before_any_work(tmp_path, override, words):
    cfg = make_cfg(tmp_path, tmp_path / "never-read.mp4", override)
    with pytest.raises(Exception) as err:
        training.train(cfg)
    from facevae.core.errors import user_error

    assert user_error(err.value) is not None and words in str(user_error(err.value))
    assert not (tmp_path / "cache").exists()


class PoisonAtStep(pl.Callback):
    """Turns every weight into NaN at a given step, as a diverging run would."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))


def test_a_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, long_clip, monkeypatch):
    cfg = make_cfg(tmp_path, long_clip, "trainer.max_epochs=3")
    real = training.instantiate_group
    monkeypatch.setattr(
        training,
        "instantiate_group",
        lambda group: real(group) + ([PoisonAtStep(12)] if group is cfg.get("callbacks") else []),
    )
    with pytest.raises(FaceVAEError, match="step 12"):
        training.train(cfg)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] < 12
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_a_run_stopped_before_its_first_validation_is_refused_and_keeps_its_weights(tmp_path, long_clip):
    """trainer.max_steps=1 stops inside the first epoch: nothing validated, so nothing is tested or called best."""
    cfg = make_cfg(tmp_path, long_clip, "+trainer.max_steps=1", "trainer.check_val_every_n_epoch=1")
    with pytest.raises(FaceVAEError, match="step 1, before its first validation") as err:
        training.train(cfg)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert str(last) in str(err.value) and last.is_file()


def test_the_command_line_refuses_an_unknown_key_with_a_clear_message(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "model.betaa=4"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "betaa" in result.stderr
    assert not (tmp_path / "data").exists()


def test_the_same_seed_builds_the_same_initial_weights(tmp_path, demo_clip, monkeypatch):
    """seed= fixes the model's initial weights too, whatever drew from the global RNG before."""
    built = []
    instantiate = training.hydra.utils.instantiate

    def recording(config, *args, **kwargs):
        obj = instantiate(config, *args, **kwargs)
        if isinstance(obj, pl.LightningModule):
            built.append(next(obj.parameters()).detach().clone())
        return obj

    monkeypatch.setattr(training.hydra.utils, "instantiate", recording)
    monkeypatch.setattr(training, "_fit_and_test", lambda *args: {})  # built, not trained
    for draw in (1, 1000):
        torch.randn(draw)  # earlier work in the process (another test, a previous sweep job) moved the global RNG
        cfg = make_cfg(tmp_path / str(draw), demo_clip, "callbacks=none", "logger=none")
        training.train(cfg)
    assert len(built) == 2 and torch.equal(*built)
