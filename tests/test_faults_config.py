"""Fault suite, bad config values: every group of every command, refused in one line before any work.

Most cases compose the real config with Hydra's compose API and run `facevae.validation.check_config` (for the
live view `facevae.live.settings.check_live`), the one check each command runs first; a few run the real entry points
in a subprocess to show the boundary (exit status 2, one `error:` line, no traceback, no run directory, no file
changed). The slow ones run a refused value through each entry point.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from faults import (
    assert_nothing_new,
    assert_refused,
    assert_unchanged,
    paths_under,
    run_command,
    tree_state,
)
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from facevae.core.errors import FaceVAEError
from facevae.live.settings import check_live
from facevae.validation import check_config

CONF = Path(__file__).resolve().parents[1] / "conf"


def composed(command: str, tmp_path: Path, overrides: list[str]):
    """The command's real config, its outputs pointed into tmp_path."""
    paths = [f"paths.data_dir={tmp_path}/data", f"paths.log_dir={tmp_path}/outputs"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(command, overrides=[*paths, *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    return cfg


def cases(table: list[tuple]) -> list[tuple[str, tuple]]:
    """(overrides, word, word, ...) rows as (overrides, words)."""
    return [(row[0], row[1:]) for row in table]


def refused(command: str, tmp_path: Path, overrides: list[str], *words: str) -> str:
    """The command's check (check_config; the live view's own, check_live) refuses in one line naming `words`, and
    writes nothing."""
    (tmp_path / "mine.txt").write_text("a user's file\n")
    before, paths = tree_state(tmp_path), paths_under(tmp_path)
    cfg = composed(command, tmp_path, overrides)
    with pytest.raises(FaceVAEError) as err:
        check_live(cfg) if command == "live" else check_config(cfg, command)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert_unchanged(before)
    assert_nothing_new(tmp_path, paths)
    return message


# -- train: each group, as an attacker would (negative, zero, huge, wrong type, NaN, empty, unknown) -----------------

TRAIN = [
    # top level
    ("seed=-1", "seed=-1"),
    ("seed=1.5", "seed=1.5"),
    ("seed=99999999999", "seed="),
    ("test=maybe", "test=maybe"),
    ("tags=['']", "tags="),
    ("optimized_metric=''", "optimized_metric"),
    ("ckpt_path=/no/such.ckpt", "ckpt_path=/no/such.ckpt"),
    # data
    ("data.loader.batch_size=0", "data.loader.batch_size=0"),
    ("data.loader.batch_size=-3", "data.loader.batch_size=-3"),
    ("data.loader.batch_size=1.5", "data.loader.batch_size=1.5"),
    ("data.loader.batch_size=abc", "data.loader.batch_size=abc"),
    ("data.loader.batch_size=true", "data.loader.batch_size=true"),
    ("data.loader.eval_batch_size=0", "data.loader.eval_batch_size=0"),
    ("data.loader.num_workers=-1", "data.loader.num_workers=-1"),
    ("data.loader.num_workers=100000", "data.loader.num_workers=100000"),
    ("data.size=63", "data.size=63", "multiple of 16"),
    ("data.size=8", "data.size=8"),
    ("data.size=100000", "data.size=100000"),
    ("data.size=nan", "data.size=nan"),
    ("data.extraction.fps=0", "data.extraction.fps=0"),
    ("data.extraction.fps=nan", "data.extraction.fps=nan"),
    ("data.extraction.fps=inf", "data.extraction.fps=inf"),
    ("data.extraction.crop_scale=abc", "data.extraction.crop_scale=abc"),
    ("data.extraction.crop_shift_y=5", "data.extraction.crop_shift_y=5"),
    ("data.extraction.detect_width=1000000", "data.extraction.detect_width"),
    ("data.extraction.min_face=0", "data.extraction.min_face=0"),
    ("data.split.block_s=0", "data.split.block_s=0"),
    ("data.split.block_s=0.001", "data.split.block_s=0.001"),
    ("data.split.gap_s=-1", "data.split.gap_s=-1"),
    ("data.extraction.align=sideways", "data.extraction.align=sideways", "eyes+ecc"),
    ("data.extraction.align=true", "data.extraction.align=true"),
    ("data.extraction.align_smooth_s=-1", "data.extraction.align_smooth_s=-1"),
    ("data.extraction.align_smooth_s=nan", "data.extraction.align_smooth_s=nan"),
    ("data.split.val_fraction=0", "data.split.val_fraction=0", "no validation"),
    ("data.split.val_fraction=1", "data.split.val_fraction=1"),
    ("data.split.val_fraction=0.6 data.split.test_fraction=0.6", "must sum below 1"),
    ("data.split.test_fraction=0", "data.split.test_fraction=0", "test=false"),
    ("data.split.seed=-1", "data.split.seed=-1"),
    ("data.loader.on_device=maybe", "data.loader.on_device=maybe"),
    ("data.progress=yes", "data.progress=yes"),
    ("data.video=''", "data.video=''"),
    ("data.video=/no/such/video.mp4", "/no/such/video.mp4"),
    ("data.demo_seconds=0", "data.demo_seconds=0"),
    ("data.demo_seconds=1e9", "data.demo_seconds"),
    ("data.split.block_s=100", "data.split.block_s=100: the data spans 180 s in 2 blocks", "too few"),
    ("data.split.gap_s=100", "data.split.gap_s=100", "no frame to train on"),
    ("data.cache_dir=''", "data.cache_dir"),
    ("+data.bogus=1", "data.bogus"),
    # model
    ("model.net.latent_dim=1", "model.net.latent_dim=1", "two latents"),
    ("model.net.latent_dim=0", "model.net.latent_dim=0"),
    ("model.net.latent_dim=100000000", "model.net.latent_dim=100000000"),
    ("model.net.latent_dim=abc", "model.net.latent_dim=abc"),
    ("model.beta=-1", "model.beta=-1"),
    ("model.beta=nan", "model.beta=nan"),
    ("model.sigma=0", "model.sigma=0"),
    ("model.optimizer.lr=0", "model.optimizer.lr=0"),
    ("model.optimizer.lr=inf", "model.optimizer.lr=inf"),
    ("model.net.hidden=0", "model.net.hidden=0"),
    ("model.net.channels=[]", "model.net.channels=[]"),
    ("model.net.channels=[32,-1]", "model.net.channels=[32,-1]"),
    ("model.net.channels=[100000,100000,100000,100000]", "model.net.channels"),
    ("model.optimizer.betas=[0.9]", "model.optimizer.betas"),
    ("model.kl_warmup_steps=-5", "model.kl_warmup_steps=-5"),
    ("model.capacity_max=-1", "model.capacity_max=-1"),
    ("model.learn_sigma=yes", "model.learn_sigma=yes"),
    ("model.compile=turbo", "model.compile=turbo"),
    ("model.cuda_graph=maybe", "model.cuda_graph=maybe"),
    ("model.channels_last=1", "model.channels_last=1"),
    ("model.net.image_size=32", "model.net.image_size=32", "data.size=64"),
    ("model._target_=facevae.models.Nope", "model._target_=facevae.models.Nope"),
    ("+model.bogus=1", "model.bogus"),
    ("model=wgan_gp data.size=48", "data.size=48"),
    ("model=wgan_gp model.n_critic=0", "model.n_critic=0"),
    ("model=wgan_gp model.generator.width=100000", "model.generator.width=100000"),
    ("sweep=beta_stacked model.betas=[]", "model.betas=[]"),
    ("sweep=beta_stacked model.betas=[1,1]", "each beta once"),
    ("sweep=beta_stacked model.betas=[1,-2]", "model.betas=[1,-2]"),
    # trainer
    ("trainer.max_epochs=0", "trainer.max_epochs=0"),
    ("trainer.max_epochs=-1", "trainer.max_epochs=-1"),
    ("trainer.max_epochs=abc", "trainer.max_epochs=abc"),
    ("trainer.min_epochs=500", "trainer.min_epochs=500"),
    ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch=0"),
    ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps=0"),
    ("trainer.accelerator=tpu", "trainer.accelerator=tpu"),
    ("trainer.devices=0", "trainer.devices=0"),
    ("trainer.devices=100000", "trainer.devices=100000"),
    ("trainer.precision=17", "trainer.precision=17"),
    ("trainer.deterministic=sometimes", "trainer.deterministic=sometimes"),
    ("+trainer.max_steps=0", "trainer.max_steps=0"),
    ("+trainer.limit_train_batches=0", "trainer.limit_train_batches=0"),
    ("+trainer.enable_checkpointing=false", "trainer.enable_checkpointing=false"),
    ("+trainer.accumulate_grad_batches=4", "trainer.accumulate_grad_batches=4"),
    ("+trainer.gradient_clip_val=1", "trainer.gradient_clip_val"),
    ("+trainer.strategy=magic", "trainer.strategy=magic"),
    ("+trainer.bogus=1", "trainer.bogus"),
    # logger
    ("logger.wandb.mode=bogus", "logger.wandb.mode=bogus"),
    ("logger.wandb.project=''", "logger.wandb.project"),
    ("logger.wandb.log_model=maybe", "logger.wandb.log_model=maybe"),
    ("logger=csv logger.csv.name=''", "logger.csv.name"),
    ("logger=csv +logger.csv.bogus=1", "logger.csv.bogus"),
    # callbacks
    ("callbacks.samples.n_images=0", "callbacks.samples.n_images=0"),
    ("callbacks.samples.n_images=1000000", "callbacks.samples.n_images=1000000"),
    ("callbacks.prior_interpolation.grid_size=100000", "grid_size=100000"),
    ("callbacks.latent_analysis.every_n_epochs=0", "every_n_epochs=0"),
    ("+callbacks.latent_analysis.max_frames=100000000", "max_frames=100000000"),
    ("+callbacks.samples.bogus=1", "callbacks.samples.bogus"),
    ("callbacks.samples._target_=no.such.Class", "no.such.Class"),
    ("callbacks.model_checkpoint.monitor=val/los", "monitor=val/los"),
    ("callbacks.model_checkpoint.monitor=val/psnr", "mode=max"),
    ("callbacks.model_checkpoint.mode=sideways", "mode=sideways"),
    ("callbacks.model_checkpoint.save_top_k=0 callbacks.model_checkpoint.save_last=false", "keeps no checkpoint"),
    ("callbacks.lr_monitor.logging_interval=hour", "logging_interval=hour"),
    # interpolations that cannot be resolved
    ("data.size=${nowhere}", "data.size="),
]


@pytest.mark.parametrize("overrides, words", cases(TRAIN), ids=[case[0] for case in TRAIN])
def test_train_refuses_a_bad_value_before_any_work(tmp_path, overrides, words):
    refused("train", tmp_path, overrides.split(" "), *words)


def test_the_default_configs_pass(tmp_path):
    for command, extra in (("train", []), ("prepare", []), ("evaluate", ["ckpt_path=" + __file__])):
        check_config(composed(command, tmp_path, extra), command)


@pytest.mark.parametrize(
    "mode, key, words",
    [
        ("bogus", None, ("WANDB_MODE=bogus", "offline")),
        ("online", None, ("WANDB_MODE=online", "WANDB_MODE=offline", "API key")),
        ("offline", "", ()),
    ],
)
def test_wandb_mode_is_checked_and_online_needs_a_key(tmp_path, monkeypatch, mode, key, words):
    monkeypatch.setenv("WANDB_MODE", mode)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # this machine's own login plays no part
    if not words:
        check_config(composed("train", tmp_path, []), "train")
        return
    refused("train", tmp_path, [], *words)
    refused("evaluate", tmp_path, [f"ckpt_path={__file__}"], *words)


def test_wandb_online_with_a_key_passes(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    check_config(composed("train", tmp_path, []), "train")


# -- prepare: the same data rules, and data.size against the model that will train ---------------------------------

PREPARE = [
    ("data.size=63", "data.size=63", "multiple of 16"),
    ("data.extraction.fps=-8", "data.extraction.fps=-8"),
    ("data.video=/no/such.mp4", "/no/such.mp4"),
    ("data.cache_dir=''", "data.cache_dir"),
    ("model=wgan_gp data.size=96", "data.size=96"),
    ("+data.bogus=1", "data.bogus"),
]


@pytest.mark.parametrize("overrides, words", cases(PREPARE), ids=[case[0] for case in PREPARE])
def test_prepare_refuses_what_train_would_refuse(tmp_path, overrides, words):
    refused("prepare", tmp_path, overrides.split(" "), *words)


# -- evaluate --------------------------------------------------------------------------------------------------------

EVALUATE = [
    ("n_samples=0", "n_samples=0"),
    ("n_samples=-5", "n_samples=-5"),
    ("n_samples=100000000", "n_samples=100000000"),
    ("n_samples=abc", "n_samples=abc"),
    ("shift_frames=0", "shift_frames=0"),
    ("smile_threshold=nan", "smile_threshold=nan"),
    ("smile_threshold=0.1", "smile_threshold=0.1"),
    ("smile_threshold=2", "smile_threshold=2"),
    ("smile_frames=some", "smile_frames=some"),
    ("smile_block_s=0", "smile_block_s=0"),
    ("smile_block_s=0.0001", "smile_block_s=0.0001"),
    ("factor_bins=1", "factor_bins=1"),
    ("factor_bins=100000000", "factor_bins=100000000"),
    ("device=quantum", "device=quantum"),
    ("device=cuda:7", "device=cuda:7"),
    ("device=''", "device="),
    ("seed=-1", "seed=-1"),
    ("wandb=sometimes", "wandb=sometimes"),
    ("smiles=/no/such/smiles.mp4", "smiles=/no/such/smiles.mp4"),
    ("neutral=/no/such/neutral.mp4", "neutral=/no/such/neutral.mp4"),
    ("neutral=/tmp", "neutral=/tmp", "give smiles=PATH too"),
    ("output_dir=''", "output_dir"),
    ("data.video=/no/such.mp4", "data.video=/no/such.mp4"),
    ("sweep_dir=/no/such/sweep", "sweep_dir"),
]


@pytest.mark.parametrize("overrides, words", cases(EVALUATE), ids=[case[0] for case in EVALUATE])
def test_evaluate_refuses_a_bad_value_before_opening_the_checkpoint(tmp_path, overrides, words):
    ckpt = tmp_path / "given.ckpt"
    ckpt.write_bytes(b"never read: the values are checked first")
    refused("evaluate", tmp_path, [f"ckpt_path={ckpt}", *overrides.split(" ")], *words)


@pytest.mark.parametrize(
    "overrides, words",
    [
        ([], ("ckpt_path=PATH",)),
        (["ckpt_path=/no/such.ckpt"], ("ckpt_path=/no/such.ckpt", "no such checkpoint")),
        (["ckpt_path=."], ("is a folder",)),
        (["compare=[/no/a.ckpt,/no/b.ckpt]"], ("/no/a.ckpt",)),
    ],
)
def test_evaluate_needs_one_existing_thing_to_evaluate(tmp_path, overrides, words):
    refused("evaluate", tmp_path, overrides, *words)


# -- live: its values are checked with the others (a negative camera index crashed inside OpenCV) ------------------

LIVE = [
    ("source=-1", "source=-1", "webcam index"),
    ("source=''", "source="),
    ("source=/no/such/video.mp4", "source=/no/such/video.mp4"),
    ("threads=0", "threads=0"),
    ("threads=-2", "threads=-2"),
    ("threads=100000", "threads=100000"),
    ("trail=0", "trail=0"),
    ("trail=100000000", "trail=100000000"),
    ("max_frames=0", "max_frames=0"),
    ("max_frames=-1", "max_frames=-1"),
    ("projection=spiral", "projection=spiral"),
    ("device=quantum", "device=quantum"),
    ("output=view.txt", "output=view.txt", ".mp4"),
    ("snapshot_dir=''", "snapshot_dir"),
]


@pytest.mark.parametrize("overrides, words", cases(LIVE), ids=[case[0] for case in LIVE])
def test_live_refuses_a_bad_value_before_opening_a_camera(tmp_path, overrides, words):
    ckpt = tmp_path / "given.ckpt"
    ckpt.write_bytes(b"never read: the values are checked first")
    refused("live", tmp_path, [f"ckpt_path={ckpt}", *overrides.split(" ")], *words)


def test_live_needs_a_checkpoint(tmp_path):
    refused("live", tmp_path, [], "ckpt_path", "required")


# -- sweeps: each value a sweep will try ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command_line, params, words",
    [
        (["model.beta=1,-2"], {}, "the sweep's model.beta=-2: model.beta=-2"),
        ([], {"seed": "0,-1"}, "the sweep's seed=-1"),  # a sweep= preset's values
        ([], {"model.net.latent_dim": "choice(8,0)"}, "model.net.latent_dim=0"),  # Optuna's search space
        ([], {"model.beta": "interval(-1, 4)"}, "model.beta=-1"),
    ],
)
def test_each_value_a_sweep_will_try_is_checked_before_any_job(tmp_path, command_line, params, words):
    from omegaconf import OmegaConf

    from facevae.validation import check_sweep

    cfg = composed("train", tmp_path, [])
    with open_dict(cfg):
        cfg.hydra = OmegaConf.create({"overrides": {"task": command_line}, "sweeper": {"params": params}})
    with pytest.raises(FaceVAEError) as err:
        check_sweep(cfg, "train")
    assert words in str(err.value)


# -- the boundary: real entry points, one line on stderr, exit status 2, nothing written -----------------------------

BOUNDARY = [
    ("train", ["data.loader.batch_size=0"], {}, "data.loader.batch_size=0"),
    ("train", [], {"WANDB_MODE": "online", "WANDB_API_KEY": ""}, "WANDB_MODE=offline"),
    ("train", ["model.betaa=4"], {}, "+model.betaa=4"),  # Hydra's own refusals, in one line too
    ("train", ["model.latent_dim=1"], {}, "model.net.latent_dim=1"),  # a setting that moved: read where it is now
    ("train", ["+foo=1"], {}, "foo: not a setting of this command"),  # a new top-level key nothing reads
    ("train", ["data.video=clip é.mp4"], {}, "must be quoted"),  # Hydra's grammar: the quoting it wants
    ("evaluate", ["++ckpt=given.ckpt"], {}, "ckpt: not a setting"),
    ("train", ["data.batch_size=0"], {}, "data.loader.batch_size=0"),
    ("prepare", ["data.size=63"], {}, "data.size=63"),
    ("evaluate", ["ckpt_path=given.ckpt", "n_samples=0"], {}, "n_samples=0"),
    ("live", ["ckpt_path=given.ckpt", "source=-1", "output=view.mp4"], {}, "source=-1"),
]


def test_a_command_line_written_for_the_flat_configs_is_read_at_the_new_places():
    from facevae.core.config import follow_moved_keys

    args, notes = follow_moved_keys(["data.block_s=5", "model.latent_dim=8", "model.lr=1e-3", "data.video=me.mp4"])
    assert args == ["data.split.block_s=5", "model.net.latent_dim=8", "model.optimizer.lr=1e-3", "data.video=me.mp4"]
    assert notes[0] == "data.block_s is now data.split.block_s; read as such" and len(notes) == 3
    args, _ = follow_moved_keys(["model=wgan_gp", "model.latent_dim=8", "-m", "data.batch_size=8,16"])
    assert args == ["model=wgan_gp", "model.generator.latent_dim=8", "-m", "data.loader.batch_size=8,16"]


@pytest.mark.parametrize("command, args, env, word", BOUNDARY, ids=[f"{c[0]} {' '.join(c[1])}" for c in BOUNDARY])
def test_the_entry_points_refuse_in_one_line_and_write_nothing(tmp_path, command, args, env, word):
    (tmp_path / "given.ckpt").write_bytes(b"a user's file, never read")
    before, paths = tree_state(tmp_path), paths_under(tmp_path)
    env = {"NETRC": str(tmp_path / "no-netrc"), **env}  # this machine's own W&B login plays no part
    result = run_command(command, *args, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 2
    assert_refused(result, word)
    assert_unchanged(before)
    assert_nothing_new(tmp_path, paths)  # not even Hydra's outputs/DATE/TIME


@pytest.mark.slow
@pytest.mark.parametrize(
    "command, args",
    [
        ("train", ["trainer.max_epochs=0"]),
        ("train", ["model.net.latent_dim=1"]),
        ("train", ["model=nope"]),
        ("prepare", ["data=nope"]),
        ("train", ["data.split.val_fraction=0"]),
        ("train", ["seed=-1"]),
        ("train", ["data.loader.num_workers=-1"]),
        ("train", ["data.loader.eval_batch_size=0"]),
        ("train", ["+trainer.limit_train_batches=0"]),
        ("train", ["-m", "model.beta=1,-2"]),
        ("train", ["sweep=beta", "seed=0,-1"]),
        ("prepare", ["data.extraction.fps=nan"]),
        ("evaluate", ["ckpt_path=given.ckpt", "device=quantum"]),
        ("evaluate", ["compare=[given.ckpt,missing.ckpt]"]),
        ("live", ["ckpt_path=given.ckpt", "threads=0", "output=view.mp4"]),
        ("live", ["ckpt_path=given.ckpt", "source=-1"]),
    ],
)
def test_each_entry_point_refuses_bad_values_in_one_line(tmp_path, command, args):
    (tmp_path / "given.ckpt").write_bytes(b"a user's file, never read")
    before, paths = tree_state(tmp_path), paths_under(tmp_path)
    result = run_command(command, *args, cwd=tmp_path, env={"NETRC": str(tmp_path / "none")}, timeout=300)
    assert_refused(result)
    assert_unchanged(before)
    assert_nothing_new(tmp_path, paths)


def test_cpu_count_bounds_follow_the_machine():
    cores = os.cpu_count() or 1
    from facevae.data.datamodule import FaceCropDataModule

    FaceCropDataModule.check_settings({"num_workers": cores})
    with pytest.raises(FaceVAEError, match=f"this machine has {cores} CPU cores"):
        FaceCropDataModule.check_settings({"num_workers": cores + 1})
