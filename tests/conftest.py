"""Shared fixtures: short demo clips made once per session, and offline W&B everywhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


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
