"""The source video against the split: long enough for the held-out blocks, before minutes go into extraction."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from facevae.data import split
from facevae.data.datamodule import FaceCropDataModule
from facevae.data.extract import check_source
from facevae.data.video import probe_video


def source_fits_split(data: dict, train: bool) -> None:
    """The video exists and is readable, and is long enough for the split, before minutes go into extraction."""
    if data.get("video"):
        check_source(Path(data["video"]).expanduser())
    if not train:
        return
    video = Path(data["video"] or data["demo_video"]).expanduser()
    if video.is_file():
        seconds = probe_video(video).duration_s
    elif not data.get("video"):
        seconds = data["demo_seconds"]  # the demo is made at this length
    else:
        return  # a photo folder has no time to split by
    if seconds == seconds:  # NaN: the container does not say
        # The split of every frame kept at data.extraction.fps: what extraction gives when it finds the face in each.
        grouped = FaceCropDataModule.grouped(data)
        spl = grouped["split"]
        fractions = spl["val_fraction"], spl["test_fraction"]
        times = np.arange(0.0, seconds, 1.0 / grouped["extraction"]["fps"])
        block_s, gap_s = split.block_and_gap(times, spl["block_s"], spl["gap_s"], *fractions)
        split.held_out_blocks(math.ceil(seconds / block_s), block_s, *fractions, f"{seconds:g} s in ")
        labels = split.time_block_split(times, block_s, gap_s, *fractions, spl["seed"])
        split.require_training_frames(labels, gap_s)
