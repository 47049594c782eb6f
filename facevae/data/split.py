"""Train/val/test split by contiguous blocks of time.

Neighbouring video frames are near-duplicates, so a random split of frames would test on frames the model has
all but seen. Whole blocks of time go to val or test instead, and training frames within a gap of a held-out block
are dropped too, so no training frame sits a few milliseconds from a test frame.

Unless given, the block length follows the data's duration (`auto_block_s`): 30 s, or shorter so the data holds at
least ten blocks (more when a fraction is under a tenth), so that val and test get about their fractions of a short
video too, but never under a second; the gap is 2 s, or a quarter of a shorter block.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from facevae.core import rules
from facevae.core.errors import require

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
GAP = -1  # label of frames dropped between a held-out block and its neighbours
MAX_BLOCK_S, MAX_GAP_S = 30.0, 2.0
MIN_BLOCK_S = 1.0  # shorter blocks only multiply the blocks, and the work of dropping gaps around each
MIN_BLOCKS = 10
LOW_TRAIN_SHARE = 0.6  # below this share of the frames in training, setup warns


def duration_s(times: np.ndarray) -> float:
    """How long the frames span: first to last, plus one typical frame interval (the last frame lasts too)."""
    times = np.sort(np.asarray(times, dtype=np.float64))
    if len(times) < 2:
        return 1.0
    return float(times[-1] - times[0] + np.median(np.diff(times)))


def auto_block_s(times: np.ndarray, val_fraction: float = 0.1, test_fraction: float = 0.1) -> float:
    """The block length for data of this duration: 30 s, or shorter so that there are enough blocks for each
    held-out fraction to be a whole number of them near its share (at least 10, or 1 / the smallest fraction)."""
    held = [f for f in (val_fraction, test_fraction) if f > 0]
    n_blocks = max(MIN_BLOCKS, math.ceil(1 / min(held) - 1e-9)) if held else MIN_BLOCKS
    return max(MIN_BLOCK_S, min(MAX_BLOCK_S, duration_s(times) / n_blocks))


def auto_gap_s(block_s: float) -> float:
    """The gap beside held-out blocks: 2 s, or a quarter of a shorter block, so short videos keep most frames."""
    return min(MAX_GAP_S, block_s / 4)


def block_and_gap(
    times: np.ndarray, block_s: float | None, gap_s: float | None, val_fraction: float, test_fraction: float
) -> tuple[float, float]:
    """The block length and gap the split uses: those given, or (for null) those chosen from the data's duration."""
    block = auto_block_s(times, val_fraction, test_fraction) if block_s is None else block_s
    return block, auto_gap_s(block) if gap_s is None else gap_s


def warn_if_little_training(labels: np.ndarray, block_s: float, gap_s: float) -> None:
    share = float(np.mean(labels == 0)) if len(labels) else 0.0
    if share < LOW_TRAIN_SHARE:
        log.warning(
            "training gets %d of %d frames (%.0f%%): blocks of data.split.block_s=%g s with a data.split.gap_s=%g s "
            "gap leave little; a longer video, or shorter blocks and gap, train on more",
            int(np.sum(labels == 0)),
            len(labels),
            100 * share,
            block_s,
            gap_s,
        )


def time_block_split(
    times: np.ndarray,
    block_s: float = 30.0,
    gap_s: float = 2.0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """Label each frame 0 (train), 1 (val), 2 (test) or -1 (gap) from its time in seconds.

    val and test each get round(fraction * blocks) blocks (at least one each), chosen at random by `seed` among
    the blocks; a frame of another split within `gap_s` of a held-out block's edge is labelled gap.
    """
    check_settings({"block_s": block_s, "gap_s": gap_s, "val_fraction": val_fraction, "test_fraction": test_fraction})
    times = np.asarray(times, dtype=np.float64)
    t0 = times.min() if len(times) else 0.0
    block = np.floor((times - t0) / block_s).astype(np.int64)
    n_blocks = int(block.max()) + 1 if len(times) else 0
    n_val, n_test = held_out_blocks(n_blocks, block_s, val_fraction, test_fraction, f"{len(times)} frames in ")
    order = np.random.default_rng(seed).permutation(n_blocks)
    block_split = np.zeros(n_blocks, dtype=np.int64)
    block_split[order[:n_val]] = 1
    block_split[order[n_val : n_val + n_test]] = 2
    labels = block_split[block]
    return _drop_gaps(times - t0, labels, block, block_s, gap_s, block_split)


def check_settings(values: dict, prefix: str = "data.split") -> None:
    """The split's settings as the data config names them; a block is at least a second of video (shorter ones
    only multiply the blocks, and the work of dropping gaps around each). block_s and gap_s may be null: chosen
    from the data's duration (`block_and_gap`)."""
    if values["block_s"] is not None:
        rules.number(
            f"{prefix}.block_s", values["block_s"], lo=MIN_BLOCK_S, why=" seconds (or null: from the duration)"
        )
    if values["gap_s"] is not None:
        rules.number(f"{prefix}.gap_s", values["gap_s"], lo=0, why=" seconds (or null: from the block length)")
    val = rules.number(f"{prefix}.val_fraction", values["val_fraction"], lo=0, below=1)
    test = rules.number(f"{prefix}.test_fraction", values["test_fraction"], lo=0, below=1)
    require(val + test < 1, f"{prefix}.val_fraction={val:g}, {prefix}.test_fraction={test:g}: must sum below 1")


def held_out_blocks(
    n_blocks: int, block_s: float, val_fraction: float, test_fraction: float, spans: str = ""
) -> tuple[int, int]:
    """How many of n_blocks go to val and to test; refused when no block would be left to train on."""
    n_val = max(1, round(val_fraction * n_blocks)) if val_fraction > 0 else 0
    n_test = max(1, round(test_fraction * n_blocks)) if test_fraction > 0 else 0
    require(
        n_blocks >= n_val + n_test + 1,
        f"data.split.block_s={block_s:g}: the data spans {spans}{n_blocks} block{'s' * (n_blocks != 1)} of that "
        f"length, too few to hold out {n_val} val and {n_test} test and train on the rest; use a longer video or a "
        "smaller data.split.block_s",
    )
    return n_val, n_test


def require_training_frames(labels: np.ndarray, gap_s: float) -> None:
    """Some frame is left to train on once the gaps around the held-out blocks are dropped."""
    require(
        bool((labels == 0).any()),
        f"data.split.gap_s={gap_s:g}: the gaps around the held-out blocks leave no frame to train on "
        f"({describe(labels)}); use a smaller data.split.gap_s or a larger data.split.block_s",
    )


def _drop_gaps(
    times: np.ndarray, labels: np.ndarray, block: np.ndarray, block_s: float, gap_s: float, block_split: np.ndarray
) -> np.ndarray:
    labels = labels.copy()
    for b in np.flatnonzero(block_split > 0):
        start, end = b * block_s, (b + 1) * block_s
        near = ((times >= start - gap_s) & (times < start)) | ((times >= end) & (times < end + gap_s))
        labels[near & (labels != block_split[b])] = GAP
    return labels


def frame_ranges(frames: np.ndarray, labels: np.ndarray) -> dict[str, list[list[int]]]:
    """The split as inclusive source-frame ranges per split: compact, and readable in a checkpoint or a report."""
    order = np.argsort(frames)
    frames, labels = np.asarray(frames)[order], np.asarray(labels)[order]
    ranges: dict[str, list[list[int]]] = {name: [] for name in SPLITS}
    start = 0
    for i in range(1, len(frames) + 1):
        if i == len(frames) or labels[i] != labels[start]:
            if labels[start] >= 0:
                ranges[SPLITS[labels[start]]].append([int(frames[start]), int(frames[i - 1])])
            start = i
    return ranges


def labels_from_ranges(frames: np.ndarray, ranges: dict[str, list[list[int]]]) -> np.ndarray:
    """Labels for `frames` from recorded ranges; frames in no range are gap."""
    labels = np.full(len(frames), GAP, dtype=np.int64)
    for code, name in enumerate(SPLITS):
        for first, last in ranges.get(name, []):
            labels[(frames >= first) & (frames <= last)] = code
    return labels


def block_ids(times: np.ndarray, block_s: float) -> np.ndarray:
    """Which block of time each frame falls in: the grouping that cross-validation over time needs."""
    times = np.asarray(times, dtype=np.float64)
    return np.floor((times - times.min()) / block_s).astype(np.int64) if len(times) else np.zeros(0, np.int64)


def describe(labels: np.ndarray) -> str:
    counts = {name: int((labels == code).sum()) for code, name in enumerate(SPLITS)}
    gap = int((labels == GAP).sum())
    share = lambda n: f"{100 * n / max(1, len(labels)):.0f}%"  # noqa: E731
    return ", ".join(f"{k} {v} ({share(v)})" for k, v in counts.items()) + f", dropped in gaps {gap}"


def cv_groups(
    times: np.ndarray, block_s: float, independent: bool = False, min_groups: int = 2, pieces: int = 5
) -> tuple[np.ndarray, str]:
    """Groups for cross-validation, no two of which share near-identical frames -> (group id per frame, in words).

    Blocks of `block_s` seconds of a video; for `independent` frames (a folder of photos, taken apart) each its
    own group; and a clip shorter than `min_groups` blocks cut into `pieces` equal stretches of time instead, so a
    fold can still be tested on frames it never trained on (only the frames at the cuts are near neighbours).
    """
    times = np.asarray(times, dtype=np.float64)
    if independent:
        return np.arange(len(times)), f"each of the {len(times)} photos its own group"
    blocks = block_ids(times, block_s)
    if len(np.unique(blocks)) >= min_groups or len(times) < 2:
        return blocks, f"blocks of {block_s:g} s"
    pieces = max(min_groups, min(pieces, len(times)))
    stretch = duration_s(times) / pieces
    groups = np.minimum(np.floor((times - times.min()) / stretch).astype(np.int64), pieces - 1)
    return groups, f"the {duration_s(times):.1f} s clip cut into {pieces} stretches of {stretch:.2g} s"
