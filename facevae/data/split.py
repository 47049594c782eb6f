"""Train/val/test split by contiguous blocks of time.

Neighbouring video frames are near-duplicates, so a random split of frames would test on frames the model has
all but seen. Whole blocks of time (30 s by default) go to val or test instead, and training frames within a gap of
a held-out block are dropped too, so no training frame sits a few milliseconds from a test frame.
"""

from __future__ import annotations

import numpy as np

from facevae.core import rules
from facevae.core.errors import require

SPLITS = ("train", "val", "test")
GAP = -1  # label of frames dropped between a held-out block and its neighbours


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


def check_settings(values: dict, prefix: str = "data") -> None:
    """The split's settings as the data config names them; a block is at least a second of video (shorter ones
    only multiply the blocks, and the work of dropping gaps around each)."""
    rules.number(f"{prefix}.block_s", values["block_s"], lo=1, why=" seconds")
    rules.number(f"{prefix}.gap_s", values["gap_s"], lo=0, why=" seconds")
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
        f"data.block_s={block_s:g}: the data spans {spans}{n_blocks} block{'s' * (n_blocks != 1)} of that length, too "
        f"few to hold out {n_val} val and {n_test} test and train on the rest; use a longer video or a smaller "
        "data.block_s",
    )
    return n_val, n_test


def require_training_frames(labels: np.ndarray, gap_s: float) -> None:
    """Some frame is left to train on once the gaps around the held-out blocks are dropped."""
    require(
        bool((labels == 0).any()),
        f"data.gap_s={gap_s:g}: the gaps around the held-out blocks leave no frame to train on ({describe(labels)}); "
        "use a smaller data.gap_s or a larger data.block_s",
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
