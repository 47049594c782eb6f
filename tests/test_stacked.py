"""sweep=beta_stacked: a beta sweep trained as one vectorised model, each beta still its own run afterwards."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import torch
from conftest import make_train_cfg, module_of
from omegaconf import OmegaConf

from facevae import training
from facevae.core.checkpoint import load_run
from facevae.core.errors import FaceVAEError
from facevae.core.sweep_folder import read_status
from facevae.core.wandb_offline import run_contents
from facevae.evaluation.sweep_report import collect, sweep_report
from facevae.models import BetaVAEModule, StackedBetaVAEModule

BETAS = [1.0, 4.0]


def _adam_steps(module, batches: list[torch.Tensor]) -> None:
    """Adam steps as training_step takes them, with the same reparameterisation noise for every model."""
    optimizer = module.configure_optimizers()
    for i, x in enumerate(batches):
        torch.manual_seed(100 + i)
        out, _ = module.compute_loss(x, *module.kl_schedule())
        optimizer.zero_grad()
        module.total(out.loss).backward()
        optimizer.step()


@pytest.mark.parametrize("vmap", [True, False], ids=["vectorised", "one-after-another"])
def test_each_member_trains_as_a_run_of_its_own_would(vmap):
    torch.manual_seed(0)
    stacked = module_of(StackedBetaVAEModule, betas=BETAS, lr=1e-3, vmap=vmap)
    singles = []
    for beta in BETAS:
        torch.manual_seed(0)  # the same seed: the same initial weights, as in `train.py -m model.beta=1,4`
        singles.append(module_of(BetaVAEModule, beta=beta, lr=1e-3))
    for k, single in enumerate(singles):
        assert all(torch.equal(stacked.member_state(k)[n], v) for n, v in single.state_dict().items())

    g = torch.Generator().manual_seed(1)
    batches = [torch.rand(8, 3, 64, 64, generator=g) for _ in range(3)]
    start = single.state_dict()
    start = {n: v.clone() for n, v in start.items()}
    _adam_steps(stacked, batches)
    for single in singles:
        _adam_steps(single, batches)

    moves = []
    for k, single in enumerate(singles):
        mine, own = stacked.member_state(k), single.state_dict()
        for name, value in own.items():
            moved = (value - start[name]).abs().max()
            # Grouped and plain convolutions round differently; Adam's normalised step turns that into ~1% of a step.
            assert (mine[name] - value).abs().max() <= 0.02 * moved + 1e-7, name
        moves.append(own["model.encoder.0.weight"])
    assert not torch.allclose(moves[0], moves[1])  # beta 1 and beta 4 learned different things


def test_members_losses_are_their_own_beta_objective():
    torch.manual_seed(0)
    stacked = module_of(StackedBetaVAEModule, betas=BETAS)
    x = torch.rand(4, 3, 64, 64)
    torch.manual_seed(5)
    out, _ = stacked.compute_loss(x, 1.0, None)
    assert out.loss.shape == (2,) and torch.allclose(out.loss, out.recon + torch.tensor(BETAS) * out.kl)
    assert out.kl_per_dim.shape == (2, 32)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"betas": []}, "at least one beta"),
        ({"betas": 4}, "a list of betas"),
        ({"betas": [1, 1]}, "each beta once"),
        ({"betas": [1, -2]}, ">= 0"),
        ({"betas": [1, 2], "beta": 4.0}, "set model.beta=null"),
        ({"betas": [1, 2], "capacity_max": 25.0}, "not vectorised"),
        ({"betas": [1, 2], "learn_sigma": True}, "not vectorised"),
        ({"betas": [1, 2], "channels_last": True}, "not vectorised"),
        ({"betas": [1, 2], "vmap": "sometimes"}, "model.vmap=sometimes"),
    ],
)
def test_what_cannot_be_stacked_is_refused_in_one_line(kwargs, message):
    with pytest.raises(FaceVAEError, match=message) as err:
        module_of(StackedBetaVAEModule, **kwargs)
    assert "\n" not in str(err.value)


def test_the_preset_stacks_the_seed_experiments_betas(tmp_path):
    cfg = make_train_cfg(tmp_path, None, "experiment=seed_paper", "sweep=beta_stacked")
    assert cfg.model._target_ == "facevae.models.StackedBetaVAEModule" and cfg.model.beta is None
    assert list(cfg.model.betas) == [1, 2, 4, 8, 16] and "seed_paper" in cfg.tags
    assert "reconstructions" not in cfg.callbacks and cfg.callbacks.model_checkpoint.monitor is None


def test_a_diverging_member_fails_alone_and_the_others_train_on():
    stacked = module_of(StackedBetaVAEModule, betas=[1.0, 4.0, 16.0])
    nan = float("nan")
    stacked.check_step_losses(10, torch.tensor([[1.0, 2.0, 3.0], [1.0, nan, 3.0]]))
    assert list(stacked.diverged) == [1] and "beta=4: loss is nan at step 11" in stacked.diverged[1]
    stacked.check_step_losses(12, torch.tensor([[1.0, nan, 3.0]]))  # already marked: nothing new
    assert list(stacked.diverged) == [1]
    with pytest.raises(FaceVAEError, match="every beta diverged"):
        stacked.check_step_losses(13, torch.tensor([[nan, nan, float("inf")]]))


@pytest.fixture(scope="module")
def stacked_run(tmp_path_factory, long_clip) -> tuple[Path, dict]:
    """Two betas trained together for two epochs by the real train config, logging to W&B offline."""
    tmp = tmp_path_factory.mktemp("stacked")
    overrides = ["sweep=beta_stacked", "model.betas=[1,4]", "trainer.max_epochs=2", "logger=wandb", "test=true"]
    cfg = make_train_cfg(tmp, long_clip, *overrides)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_MODE", "offline")  # disabled W&B would hand every member one dummy run
        cfg.logger.wandb.mode = "offline"
        metrics = training.train(cfg)
    return Path(cfg.paths.output_dir), metrics


def test_each_member_has_a_job_directory_like_a_sweeps(stacked_run):
    run_dir, metrics = stacked_run
    for k, beta in enumerate(BETAS):
        member = run_dir / str(k)
        config = OmegaConf.load(member / ".hydra" / "config.yaml")
        assert config.model._target_ == "facevae.models.BetaVAEModule" and config.model.beta == beta
        assert "betas" not in config.model
        status = read_status(member)
        assert status["status"] == "finished" and status["swept"] == [f"model.beta={beta:g}"]
        assert status["metrics"]["val/loss"] == pytest.approx(metrics[f"member{k}/val/loss"])
        assert status["metrics"]["test/psnr"] == pytest.approx(metrics[f"member{k}/test/psnr"])
        assert (member / "checkpoints" / "last.ckpt").is_file()
        assert len(list((member / "checkpoints").glob("best-epoch*.ckpt"))) == 1  # the older best is removed
    assert metrics["member0/val/loss"] != metrics["member1/val/loss"]


def test_a_members_config_is_that_of_a_run_of_its_own(stacked_run):
    run_dir, _ = stacked_run
    config = OmegaConf.load(run_dir / "1" / ".hydra" / "config.yaml")
    assert config.paths.output_dir == str(run_dir / "1")
    assert config.callbacks.model_checkpoint.dirpath == str(run_dir / "1" / "checkpoints")
    assert config.callbacks.model_checkpoint.monitor == "val/loss" and "reconstructions" in config.callbacks
    assert "beta=4" in config.logger.wandb.tags and "beta=None" not in config.logger.wandb.tags
    assert config.logger.wandb.save_dir == str(run_dir / "1")


@pytest.mark.parametrize(
    "overrides, checkpoint, message",
    [
        (["sweep=beta_stacked", "model.betas=[1,8]"], "checkpoints/last.ckpt", "trained with model.betas=\\[1,4\\]"),
        (["sweep=beta_stacked"], "checkpoints/last.ckpt", "resume with sweep=beta_stacked model.betas=\\[1,4\\]"),
        ([], "checkpoints/last.ckpt", "a stacked run: add sweep=beta_stacked model.betas=\\[1,4\\]"),
        (["model.beta=4"], "1/checkpoints/last.ckpt", "without the optimiser's state"),
    ],
)
def test_a_wrong_resume_is_refused_in_one_line_before_anything_is_written(
    stacked_run, tmp_path, long_clip, overrides, checkpoint, message
):
    run_dir, _ = stacked_run
    cfg = make_train_cfg(tmp_path, long_clip, *overrides)
    cfg.ckpt_path = str(run_dir / checkpoint)
    with pytest.raises(FaceVAEError, match=message) as err:
        training.train(cfg)
    assert "\n" not in str(err.value) and not (tmp_path / "run").exists()


def test_a_members_checkpoint_is_a_beta_vae_of_its_own(stacked_run):
    run_dir, _ = stacked_run
    stacked = StackedBetaVAEModule.load_from_checkpoint(run_dir / "checkpoints" / "last.ckpt").eval()
    x = torch.rand(4, 3, 64, 64)
    for k, beta in enumerate(BETAS):
        run = load_run(run_dir / str(k) / "checkpoints" / "last.ckpt")
        assert type(run.model) is BetaVAEModule and run.model.hparams.beta == beta
        assert run.config["model"]["beta"] == beta and run.meta["wandb"]["name"] == f"beta={beta:g}"
        assert torch.allclose(run.model.reconstruct(x), stacked.reconstruct(x)[k], atol=1e-5)


def test_each_member_is_its_own_wandb_run_under_the_usual_names(stacked_run):
    run_dir, _ = stacked_run
    names = []
    for k, beta in enumerate(BETAS):
        (run_dir_k,) = sorted((run_dir / str(k) / "wandb").glob("offline-run-*"))
        deadline = time.monotonic() + 30
        while (run := run_contents(run_dir_k))["exit_code"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert run["exit_code"] == 0
        assert {"val/loss", "val/psnr", "train/loss", "test/psnr", "val/psnr_mean_face"} <= run["history_keys"]
        assert not any(key.startswith("member") for key in run["history_keys"])
        assert run["config"]["model"]["beta"] == beta
        names.append(run["run"])
    assert len({n["group"] for n in names}) == 1 and len({n["id"] for n in names}) == 2


def test_the_sweep_report_reads_the_members_as_jobs(stacked_run):
    run_dir, _ = stacked_run
    table = collect(run_dir, metrics_of=lambda ckpt: {"psnr": float(load_run(ckpt).model.hparams.beta)})
    assert table["beta"].tolist() == BETAS and table["status"].tolist() == ["finished", "finished"]
    assert table["psnr"].tolist() == BETAS  # each row evaluated its own member's checkpoint


def test_a_multirun_of_stacked_runs_reports_every_member_of_every_run(stacked_run, tmp_path):
    run_dir, _ = stacked_run
    for seed_job in ("0", "1"):  # what `train.py -m sweep=beta_stacked seed=0,1` leaves
        shutil.copytree(run_dir, tmp_path / "sweep" / seed_job, ignore=shutil.ignore_patterns("wandb"))
    table = collect(tmp_path / "sweep", metrics_of=lambda ckpt: {"psnr": 20.0})
    assert table["job"].tolist() == ["0/0", "0/1", "1/0", "1/1"] and table["beta"].tolist() == BETAS * 2
    assert (table["status"] == "finished").all() and (table["psnr"] == 20.0).all()


def test_a_sweep_report_with_nothing_evaluated_is_an_error(stacked_run, tmp_path):
    run_dir, _ = stacked_run

    def unreadable(ckpt):
        raise FaceVAEError(f"{ckpt}: not a readable checkpoint")

    with pytest.raises(FaceVAEError, match="no job could be evaluated"):
        sweep_report(run_dir, unreadable, out_dir=tmp_path)
    assert (tmp_path / "sweep.md").is_file()  # the rows still say why


def test_the_stacked_checkpoint_resumes_and_is_refused_by_evaluate(stacked_run, tmp_path, long_clip):
    run_dir, _ = stacked_run
    last = run_dir / "checkpoints" / "last.ckpt"
    with pytest.raises(FaceVAEError, match="sweep_dir="):
        load_run(last)
    overrides = ["sweep=beta_stacked", "model.betas=[1,4]", "trainer.max_epochs=4", "trainer.check_val_every_n_epoch=3"]
    cfg = make_train_cfg(tmp_path, long_clip, *overrides)
    cfg.ckpt_path = str(last)
    cfg.test = False
    training.train(cfg)
    member = tmp_path / "run" / "0" / "checkpoints"
    # Two epochs restored, validation in the third, and the fourth's weights kept when training ended.
    assert torch.load(member / "last.ckpt", weights_only=False)["epoch"] == 3
    # Its best so far came along (copied, or replaced by a better one); the run it resumed from keeps its own.
    assert len(list(member.glob("best-*.ckpt"))) == 1
    assert [p.name for p in (run_dir / "0" / "checkpoints").glob("best-*.ckpt")] == ["best-epoch001.ckpt"]
