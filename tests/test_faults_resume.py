"""Fault suite, resume: a run killed mid-epoch and resumed from last.ckpt matches the uninterrupted run exactly on
CPU (every step's loss bit for bit, the final weights, the best checkpoint), and a resume that could not continue
the run (another network, other data, another seed or batch size, nothing left to train) is refused in one line.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from conftest import make_train_cfg
from faults import (
    assert_nothing_new,
    assert_refused,
    assert_succeeded,
    assert_unchanged,
    paths_under,
    run_command,
    tests_env,
    tree_state,
)

from facevae import training
from facevae.core.errors import FaceVAEError
from facevae.validation import check_config

# 9 training steps an epoch on the 12-second clip; a checkpoint at each validation.
TINY = ["logger=csv", "trainer.log_every_n_steps=1", "test=false"]


class Stopped(Exception):
    pass


class Interrupt(pl.Callback):
    """Ends the process's training at the start of a given step, in-process: what a kill leaves (nothing written
    after the last checkpoint)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Stopped


def train_in_process(tmp_path: Path, clip: Path, *overrides: str, stop_at: int | None = None) -> Path:
    cfg = make_train_cfg(tmp_path, clip, *TINY, *overrides)
    real = training.instantiate_group
    extra = [Interrupt(stop_at)] if stop_at is not None else []
    training.instantiate_group = lambda group: real(group) + (extra if group is cfg.get("callbacks") else [])
    try:
        training.train(cfg)
    except Stopped:
        pass
    finally:
        training.instantiate_group = real
    return Path(cfg.paths.output_dir)


def step_losses(run: Path) -> dict[int, str]:
    """train/loss of every step the run logged, as written (the text of a float: equal text, equal bits)."""
    table = pd.read_csv(next(run.glob("csv/*/metrics.csv")), dtype=str)
    rows = table[table["train/loss"].notna()]
    return dict(zip(rows["step"].astype(int), rows["train/loss"], strict=True))


def same_weights(a: Path, b: Path) -> bool:
    sa = torch.load(a, map_location="cpu", weights_only=False)["state_dict"]
    sb = torch.load(b, map_location="cpu", weights_only=False)["state_dict"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def assert_resumed_exactly(straight: Path, resumed: Path, first_step: int) -> None:
    whole, after = step_losses(straight), step_losses(resumed)
    assert after and min(after) <= first_step + 1, sorted(after)
    assert {s: whole[s] for s in after} == after  # every step after the resume, bit for bit
    assert same_weights(straight / "checkpoints" / "last.ckpt", resumed / "checkpoints" / "last.ckpt")
    best = sorted(p.name for p in (straight / "checkpoints").glob("best-*.ckpt"))
    assert best == sorted(p.name for p in (resumed / "checkpoints").glob("best-*.ckpt"))
    assert same_weights(straight / "checkpoints" / best[0], resumed / "checkpoints" / best[0])


def test_a_run_stopped_mid_epoch_resumes_exactly(tmp_path, long_clip):
    """In-process: the run stops at step 13, in its second epoch; last.ckpt holds the first epoch (9 steps)."""
    args = ("trainer.max_epochs=3", "callbacks=none")
    straight = train_in_process(tmp_path / "straight", long_clip, *args)
    stopped = train_in_process(tmp_path / "stopped", long_clip, *args, stop_at=13)
    last = stopped / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 9
    resumed = train_in_process(tmp_path / "resumed", long_clip, *args, f"ckpt_path={last}")
    assert_resumed_exactly(straight, resumed, first_step=9)


@pytest.mark.slow
def test_a_run_killed_with_sigkill_mid_epoch_resumes_exactly(tmp_path, long_clip):
    """train.py in a subprocess, killed with SIGKILL at step 30 (epoch 4 of 5, validated every 2: last.ckpt holds
    step 18), then resumed from last.ckpt into a new directory: the same losses, weights and best checkpoint as a run
    straight through, with the default callbacks drawing their figures and analyses in between."""
    base = [
        f"data.video={long_clip}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.split.block_s=1",
        "data.split.gap_s=0.25",
        "data.loader.batch_size=8",
        "data.progress=false",
        "trainer.max_epochs=5",
        "trainer.check_val_every_n_epoch=2",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        *TINY,
    ]
    env = tests_env()

    def train(name: str, *extra: str):
        return run_command("train", *base, f"hydra.run.dir={tmp_path / name}", *extra, cwd=tmp_path, env=env)

    assert_succeeded(train("straight"))
    killed = train("killed", "+callbacks.kill._target_=faults.KillAtStep", "+callbacks.kill.step=30")
    assert killed.returncode == -9, killed.stderr[-2000:]
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 18
    before = tree_state(tmp_path / "killed")
    assert_succeeded(train("resumed", f"ckpt_path={last}"))
    assert_unchanged(before)  # the killed run's files are left as they were
    assert_resumed_exactly(tmp_path / "straight", tmp_path / "resumed", first_step=18)


def test_an_epochs_batches_follow_the_epoch_of_its_first_batch():
    """Lightning makes a loader's iterator before it says which epoch starts (and on a resume, before the epoch it
    resumes at): the permutation is drawn when the first batch is, for the epoch the trainer is in then."""
    from facevae.data.datamodule import EpochBatches

    epoch = {"now": 0}
    lazy = EpochBatches(40, 8, seed=5, epoch_of=lambda: epoch["now"])
    batches = iter(lazy)  # made during epoch 0...
    epoch["now"] = 3  # ...first drawn from in epoch 3
    told = EpochBatches(40, 8, seed=5)
    told.set_epoch(3)
    assert list(batches) == list(told) != list(EpochBatches(40, 8, seed=5))


# -- wrong resumes ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, long_clip) -> Path:
    """last.ckpt of a one-epoch run on the 12-second clip."""
    run = train_in_process(tmp_path_factory.mktemp("one_epoch"), long_clip, "trainer.max_epochs=1", "callbacks=none")
    return run / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize(
    "overrides, words",
    [
        (
            ["model.net.latent_dim=8"],
            ("trained with model.net.latent_dim=32, not 8", "resume with model.net.latent_dim=32"),
        ),
        (["model.net.channels=[16,16,32,32]"], ("model.net.channels=[32,32,64,64]",)),
        (["model.learn_sigma=true"], ("model.learn_sigma=optimal",)),
        (["seed=1"], ("trained with seed=0, not 1",)),
        (["data.loader.batch_size=4"], ("data.loader.batch_size=8",)),
        (["data.extraction.crop_scale=0.9"], ("crop cache", "resume with the data it was trained on")),
        (["trainer.max_epochs=1"], ("already trained 1 epoch and trainer.max_epochs=1",)),
        (["model=wgan_gp"], ("trained as BetaVAEModule",)),
    ],
)
def test_a_resume_that_cannot_continue_the_run_is_refused(one_epoch, tmp_path, long_clip, overrides, words):
    cfg = make_train_cfg(tmp_path, long_clip, f"ckpt_path={one_epoch}", "trainer.max_epochs=2", *overrides)
    before, paths = tree_state(one_epoch.parent), paths_under(tmp_path)
    with pytest.raises(FaceVAEError) as err:
        check_config(cfg, "train")
    for word in words:
        assert word in str(err.value), str(err.value)
    assert_unchanged(before)
    assert_nothing_new(tmp_path, paths)


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_a_resume_from_diverged_weights_is_refused_before_training(one_epoch, tmp_path, long_clip, bad):
    ckpt = torch.load(one_epoch, map_location="cpu", weights_only=True)
    name = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][name].view(-1)[0] = bad
    diverged = tmp_path / "diverged.ckpt"
    torch.save(ckpt, diverged)
    cfg = make_train_cfg(tmp_path, long_clip, f"ckpt_path={diverged}", "trainer.max_epochs=2")
    with pytest.raises(FaceVAEError, match=f"1 weight tensors hold NaN or infinite values \\(first: {name}\\)"):
        check_config(cfg, "train")


def test_a_resume_on_another_video_is_refused(one_epoch, tmp_path, demo_clip):
    cfg = make_train_cfg(tmp_path, demo_clip, f"ckpt_path={one_epoch}", "trainer.max_epochs=2")
    with pytest.raises(FaceVAEError, match="trained on .*long.mp4.*resume with the data it was trained on"):
        check_config(cfg, "train")


def test_a_resume_with_a_changed_beta_goes_on_and_says_so(one_epoch, tmp_path, long_clip, caplog):
    cfg = make_train_cfg(tmp_path, long_clip, f"ckpt_path={one_epoch}", "trainer.max_epochs=2", "model.beta=4")
    check_config(cfg, "train")
    assert "model.beta=2.0 -> 4" in caplog.text


def test_the_command_line_refuses_a_wrong_resume_in_one_line(one_epoch, tmp_path, long_clip):
    paths = paths_under(tmp_path)
    args = [f"ckpt_path={one_epoch}", f"data.video={long_clip}", "data.split.block_s=1", "data.loader.batch_size=8"]
    result = run_command("train", *args, "model.net.latent_dim=8", cwd=tmp_path, timeout=300)
    assert result.returncode == 2
    assert_refused(result, "model.net.latent_dim=32")
    assert_nothing_new(tmp_path, paths)  # not even the run directory
