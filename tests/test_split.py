"""The split holds out whole blocks of time, with a gap, never random frames."""

from __future__ import annotations

import numpy as np
import pytest

from facevae.core.errors import FaceVAEError
from facevae.data.split import (
    GAP,
    auto_block_s,
    auto_gap_s,
    frame_ranges,
    labels_from_ranges,
    time_block_split,
    warn_if_little_training,
)

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
    with pytest.raises(FaceVAEError, match="data.split.block_s"):
        time_block_split(np.arange(0, 40, 1 / 8), block_s=30)


@pytest.mark.parametrize("seconds", [20, 82, 180, 600])
def test_blocks_chosen_from_the_duration_keep_val_and_test_near_their_fractions(seconds):
    times = np.arange(0, seconds, 1 / 8)
    block_s = auto_block_s(times)
    labels = time_block_split(times, block_s, auto_gap_s(block_s))
    shares = [np.mean(labels == code) for code in (0, 1, 2)]
    assert shares[1] == pytest.approx(0.1, abs=0.015) and shares[2] == pytest.approx(0.1, abs=0.015)
    assert shares[0] >= 0.65  # the gaps beside two held-out blocks take the rest
    assert block_s <= 30


def test_a_smaller_held_out_fraction_gets_more_blocks():
    times = np.arange(0, 100, 1 / 8)
    assert auto_block_s(times, 0.05, 0.05) == pytest.approx(5.0)  # 20 blocks, one each
    labels = time_block_split(times, 5.0, 1.0, 0.05, 0.05)
    assert np.mean(labels == 1) == pytest.approx(0.05, abs=0.01)


def test_little_training_is_warned_about(caplog):
    times = np.arange(0, 20, 1 / 8)
    labels = time_block_split(times, 5.0, 2.0)  # the 20 s video with blocks of 5 s: most frames are held out
    with caplog.at_level("WARNING"):
        warn_if_little_training(labels, 5.0, 2.0)
    assert "training gets" in caplog.text and "data.split.block_s=5" in caplog.text
    caplog.clear()
    good = time_block_split(times, auto_block_s(times), auto_gap_s(auto_block_s(times)))
    with caplog.at_level("WARNING"):
        warn_if_little_training(good, 2.0, 0.5)
    assert caplog.text == ""


def test_blocks_chosen_for_a_very_short_video_are_a_second_at_least():
    times = np.arange(0, 6, 1 / 8)  # six seconds: a tenth would be 0.6 s, below the shortest block a user may give
    assert auto_block_s(times) == pytest.approx(1.0)
    labels = time_block_split(times, auto_block_s(times), auto_gap_s(auto_block_s(times)))
    assert (labels == 0).any() and (labels == 1).any() and (labels == 2).any()
