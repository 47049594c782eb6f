"""The split holds out whole blocks of time, with a gap, never random frames."""

from __future__ import annotations

import numpy as np
import pytest

from facevae.core.errors import FaceVAEError
from facevae.data.split import GAP, frame_ranges, labels_from_ranges, time_block_split

TIMES = np.arange(0, 600, 1 / 8)  # ten minutes at 8 fps


def test_val_and_test_are_whole_blocks_of_about_ten_percent():
    labels = time_block_split(TIMES, block_s=30, gap_s=2)
    blocks = np.floor(TIMES / 30).astype(int)
    for code in (1, 2):
        held = np.unique(blocks[labels == code])
        assert len(held) == 2  # 10% of 20 blocks
        for b in held:  # every frame of a held-out block is in that split
            assert np.all(labels[blocks == b] == code)


def test_no_training_frame_lies_within_the_gap_of_a_held_out_block():
    gap = 2.0
    labels = time_block_split(TIMES, block_s=30, gap_s=gap)
    held_times = TIMES[labels > 0]
    train_times = TIMES[labels == 0]
    nearest = np.abs(train_times[:, None] - held_times[None, :]).min(axis=1)
    assert nearest.min() > gap - 1e-9
    assert (labels == GAP).sum() > 0


def test_the_split_depends_on_its_seed_only():
    a = time_block_split(TIMES, seed=1)
    assert np.array_equal(a, time_block_split(TIMES, seed=1))
    assert not np.array_equal(a, time_block_split(TIMES, seed=2))


def test_recorded_frame_ranges_give_back_the_same_labels():
    frames = np.arange(len(TIMES)) * 3 + 7  # source frame numbers at 24 fps, kept at 8
    labels = time_block_split(TIMES)
    ranges = frame_ranges(frames, labels)
    assert np.array_equal(labels_from_ranges(frames, ranges), labels)
    assert all(first <= last for spans in ranges.values() for first, last in spans)


def test_too_short_a_video_for_the_blocks_is_refused_with_advice():
    with pytest.raises(FaceVAEError, match="data.block_s"):
        time_block_split(np.arange(0, 40, 1 / 8), block_s=30)
