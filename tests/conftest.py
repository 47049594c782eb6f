"""Shared fixtures: short demo clips made once per session, and offline W&B everywhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

CONF = Path(__file__).resolve().parents[1] / "conf"


def tiny_overrides(clip: Path | None, cache_dir: Path) -> list[str]:
    """train.py overrides for a one-epoch run on a tiny clip: 1 s blocks of time, batches of 8, on the CPU."""
    return [
        f"data.video={clip}" if clip else "data.video=null",
        f"data.cache_dir={cache_dir}",
        "data.split.block_s=1",
        "data.split.gap_s=0.25",
        "data.loader.batch_size=8",
        "data.progress=false",
        "trainer.max_epochs=1",
        "trainer.check_val_every_n_epoch=1",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]


def make_train_cfg(tmp_path: Path, clip: Path | None, *overrides: str):
    """The real train config, pointed at a tiny clip and at tmp_path for every output."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*tiny_overrides(clip, tmp_path / "cache"), "logger=csv", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    return cfg


@pytest.fixture(scope="session")
def demo_clip(tmp_path_factory) -> Path:
    """A 4-second demo video at 30 fps with its factor sidecar."""
    from facevae.data.synthetic import write_demo_video

    return write_demo_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=4.0, seed=1)


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory) -> Path:
    """A 12-second demo video: long enough to split into blocks of time."""
    from facevae.data.synthetic import write_demo_video

    return write_demo_video(tmp_path_factory.mktemp("long") / "long.mp4", seconds=12.0, seed=2)


@pytest.fixture(scope="session")
def wgan_run(tmp_path_factory, long_clip) -> Path:
    """A narrow WGAN-GP trained two epochs on the 12-second clip by the real train config: its run directory."""
    from facevae import training

    tmp = tmp_path_factory.mktemp("wgan")
    cfg = make_train_cfg(tmp, long_clip, "model=wgan_gp", "model.generator.width=8", "trainer.max_epochs=2")
    training.train(cfg)
    return Path(cfg.paths.output_dir)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, long_clip) -> Path:
    """A narrow beta-VAE trained one epoch on the 12-second clip by the real train config: its run directory.
    Its cache is `<run>/../cache`. Shared: a test copies it before writing beside it or damaging anything."""
    from facevae import training

    tmp = tmp_path_factory.mktemp("tiny")
    cfg = make_train_cfg(
        tmp, long_clip, "model.net.channels=[8,8,8,8]", "model.net.hidden=32", "model.net.latent_dim=4", "test=false"
    )
    training.train(cfg)
    return Path(cfg.paths.output_dir)


@pytest.fixture(scope="session")
def live_checkpoint(long_clip, tmp_path_factory) -> Path:
    """A model trained briefly on the 12 s demo clip, which holds two smiles among pose, light and framing changes.

    beta=0.01 and lr=1e-3: four epochs are then enough for the codes to follow the face; at the seed's beta=1 a
    model trained this briefly collapses to the mean face, whatever the input. Seeded and on one thread, so that the
    weights do not depend on the tests that ran before or on how the two threads' sums were ordered.
    """
    import torch

    from facevae import training

    tmp = tmp_path_factory.mktemp("livetrain")
    cfg = make_train_cfg(
        tmp,
        long_clip,
        "callbacks=none",
        "logger=none",
        "test=false",
        "trainer.max_epochs=4",
        "data.loader.batch_size=16",
        "model.beta=0.01",
        "model.optimizer.lr=1e-3",
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        training.train(cfg)
    finally:
        torch.set_num_threads(threads)
    return tmp / "run" / "checkpoints" / "last.ckpt"


class ScriptedCamera:
    """Stands in for `cv2.VideoCapture(index)`: delivers the given BGR frames, then fails to read as an unplugged
    camera does. What no test machine has (a webcam, v4l2loopback) is replaced at the one call that opens it."""

    def __init__(self, frames: list, opened: bool = True, fps: float = 0.0) -> None:
        self.frames = list(frames)
        self.opened = opened
        self.fps = fps  # many webcams report 0
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def get(self, prop: int) -> float:
        return self.fps

    def release(self) -> None:
        self.released = True


def module_of(cls, **settings):
    """A LightningModule of facevae.models from flat settings, the network's and the optimizer's (latent_dim, lr,
    adam_betas, ...) beside the module's own, as checkpoints with flat hyperparameters hold them: the module builds
    its arguments from those as it does when it loads such a checkpoint."""
    return cls(**cls.arguments_from_hparams(settings))
