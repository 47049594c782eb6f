"""Known-answer tests for the metric functions of facevae.metrics.smiles."""

from __future__ import annotations

import numpy as np
import pytest

from facevae.metrics import smiles
from facevae.metrics.smiles import (
    block_folds,
    blockwise_auc,
    edit_direction,
    knn_purity,
    smile_direction,
    smile_silhouette,
)

D = 8
BLOCK = 50  # frames per block of time


def _video(separation: float, n_blocks: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """Frames in time order: blocks of BLOCK frames, alternately neutral and smiling, with the smiles shifted
    by `separation` (in noise standard deviations) along a random unit axis."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=D)
    axis /= np.linalg.norm(axis)
    blocks = np.repeat(np.arange(n_blocks), BLOCK)
    labels = (blocks % 2).astype(bool)
    z = rng.normal(size=(len(blocks), D)) + separation * labels[:, None] * axis
    return {"z": z, "labels": labels, "blocks": blocks, "axis": axis}


def test_separated_blobs_score_high():
    v = _video(separation=12.0)
    assert smile_silhouette(v["z"], v["labels"]) > 0.6
    assert knn_purity(v["z"], v["labels"]) > 0.99
    assert blockwise_auc(v["z"], v["labels"], v["blocks"]) > 0.99


def test_identical_distributions_score_chance():
    v = _video(separation=0.0)
    assert smile_silhouette(v["z"], v["labels"]) == pytest.approx(0.0, abs=0.02)
    assert knn_purity(v["z"], v["labels"]) == pytest.approx(0.5, abs=0.03)
    assert blockwise_auc(v["z"], v["labels"], v["blocks"]) == pytest.approx(0.5, abs=0.06)


def test_knn_purity_by_hand():
    # Two tight pairs far apart, labels split inside the right pair: with k=1 the left points see each other
    # (same label), the right points see each other (different label).
    z = np.array([[0.0], [0.1], [10.0], [10.1]])
    assert knn_purity(z, np.array([0, 0, 1, 2]), k=1) == pytest.approx(0.5)
    # Duplicated rows: a point must not count itself even when its twin sits at distance 0.
    assert knn_purity(np.zeros((4, 2)), np.array([1, 1, 0, 0]), k=3) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="k must be"):
        knn_purity(z, np.array([0, 0, 1, 1]), k=4)


def test_smile_direction_recovers_planted_axis_and_centroids():
    v = _video(separation=3.0, seed=1)
    normal, smile_mean, other_mean = smile_direction(v["z"], v["labels"])
    assert np.linalg.norm(normal) == pytest.approx(1.0)
    assert normal @ v["axis"] > 0.95  # and points toward the smiles, not away
    assert smile_mean == pytest.approx(v["z"][v["labels"]].mean(0))
    assert other_mean == pytest.approx(v["z"][~v["labels"]].mean(0))


def test_smile_direction_undoes_standardisation():
    # Smiles move along (1, 1) with unit noise, then the second latent is stretched 10x. The best boundary in
    # the stretched codes has normal S^-1 (1, 1) ~ (1, 0.1); forgetting to map the standardised classifier's
    # weights back would give ~(1, 1), cosine 0.77.
    rng = np.random.default_rng(2)
    labels = rng.random(4000) < 0.3
    x = rng.normal(size=(4000, 2)) + 2.0 * labels[:, None] * np.array([1.0, 1.0]) / np.sqrt(2)
    z = x * np.array([1.0, 10.0])
    expected = np.array([1.0, 0.1]) / np.linalg.norm([1.0, 0.1])
    normal, _, _ = smile_direction(z, labels.astype(int))
    assert normal @ expected > 0.99


def test_smile_direction_with_a_dead_code():
    v = _video(separation=3.0, seed=3)
    z = np.hstack([v["z"], np.full((len(v["z"]), 1), 4.0)])
    normal, _, _ = smile_direction(z, v["labels"])
    assert normal[-1] == 0.0
    assert normal[:-1] @ v["axis"] > 0.95


def test_block_folds_never_mix_blocks():
    rng = np.random.default_rng(4)
    blocks = np.sort(rng.integers(0, 37, size=3000))
    labels = rng.random(3000) < 0.2
    folds = block_folds(blocks, labels, n_folds=5, seed=7)
    assert len(folds) == 5
    tested = np.concatenate([test for _, test in folds])
    assert np.sort(tested).tolist() == list(range(3000))  # every row tested exactly once
    for train, test in folds:
        assert set(blocks[train]).isdisjoint(blocks[test])
        assert len(train) + len(test) == 3000
        assert set(labels[train]) == {False, True}


def test_block_folds_keep_both_labels_in_every_training_part():
    # Block 0: 5 smiles + 100 neutral, block 1: 1 smile + 50 neutral, blocks 2 and 3: 4 smiles each. Dealing by
    # smile count alone gives folds {0, 1} and {2, 3}, and fold {0, 1} would train on smiles only.
    blocks = np.repeat([0, 1, 2, 3], [105, 51, 4, 4])
    labels = np.concatenate([np.arange(105) < 5, np.arange(51) < 1, np.ones(8, dtype=bool)])
    for seed in range(20):
        for train, _ in block_folds(blocks, labels, n_folds=2, seed=seed):
            assert labels[train].any() and not labels[train].all()
    # The usual case: smiles are rare and in a few blocks only.
    blocks = np.repeat(np.arange(40), 10)
    labels = np.isin(np.arange(400), [0, 1, 2, 10, 11, 395])
    for train, _ in block_folds(blocks, labels, n_folds=5, seed=0):
        assert labels[train].any() and not labels[train].all()


def test_blockwise_auc_trains_and_tests_on_disjoint_blocks(monkeypatch):
    v = _video(separation=1.0)
    seen = []

    def recording_folds(*args, **kwargs):
        folds = block_folds(*args, **kwargs)
        seen.extend(folds)
        return folds

    monkeypatch.setattr(smiles, "block_folds", recording_folds)
    blockwise_auc(v["z"], v["labels"], v["blocks"], n_folds=4)
    assert len(seen) == 4
    for train, test in seen:
        assert set(v["blocks"][train]).isdisjoint(v["blocks"][test])


def test_blockwise_auc_sees_through_leaks_a_random_split_would_reward():
    # Each block has its own offset shared by all its frames, and labels are per block: a random split would
    # let the classifier memorise the offsets of blocks it has seen; unseen blocks leave it at chance.
    rng = np.random.default_rng(5)
    n_blocks = 40
    blocks = np.repeat(np.arange(n_blocks), BLOCK)
    labels = np.repeat(rng.random(n_blocks) < 0.5, BLOCK)
    z = np.repeat(rng.normal(size=(n_blocks, D)) * 3.0, BLOCK, axis=0) + 0.1 * rng.normal(size=(len(blocks), D))
    assert blockwise_auc(z, labels, blocks) < 0.75


def test_blockwise_auc_refuses_what_it_cannot_measure():
    v = _video(separation=3.0)
    with pytest.raises(ValueError, match="one class"):
        blockwise_auc(v["z"], np.zeros(len(v["z"]), dtype=bool), v["blocks"])
    with pytest.raises(ValueError, match="bool or 0/1"):
        blockwise_auc(v["z"], v["labels"] * 2 + 1, v["blocks"])
    only_one_smile_block = v["blocks"] == 3
    with pytest.raises(ValueError, match="smiles occur in 1 time block"):
        blockwise_auc(v["z"], only_one_smile_block, v["blocks"])
    with pytest.raises(ValueError, match="2 time blocks"):
        block_folds(np.zeros(len(v["z"])), v["labels"])


def test_blockwise_auc_copes_with_more_folds_than_the_blocks_fill():
    rng = np.random.default_rng(0)
    blocks = np.repeat(np.arange(6), 10)
    labels = np.tile(np.r_[np.ones(3), np.zeros(7)], 6).astype(int)
    z = rng.standard_normal((60, 4)) + labels[:, None] * 3.0
    assert blockwise_auc(z, labels, blocks, n_folds=5) > 0.9


def test_the_edit_direction_ignores_a_latent_the_decoder_does_not_read():
    # Smiles move the first latent by 2 (unit noise); an inactive latent, spread 0.01, drifts by 0.02 with them too.
    # In its own units that drift is as strong as the real one, so the discriminant leans on it; the edit moves
    # along the means' difference, where it weighs a hundredth.
    rng = np.random.default_rng(4)
    labels = rng.random(2000) < 0.3
    z = np.c_[rng.normal(size=2000) + 2.0 * labels, 0.01 * rng.normal(size=2000) + 0.02 * labels]
    assert abs(smile_direction(z, labels.astype(int))[0][1]) > 0.9  # the discriminant: mostly the dead latent
    normal = edit_direction(z, labels.astype(int))
    assert normal[0] > 0.999 and abs(normal[1]) < 0.02


@pytest.mark.parametrize(
    "scores, verdict",
    [
        ({"smile_auc": 0.97, "smile_knn_purity": 0.93, "smile_knn_purity_chance": 0.55}, "SMILES GROUP APART"),
        ({"smile_auc": 0.78, "smile_knn_purity": 0.70, "smile_knn_purity_chance": 0.55}, "SMILES GROUP PARTLY"),
        ({"smile_auc": 0.55, "smile_knn_purity": 0.56, "smile_knn_purity_chance": 0.55}, "SMILES DO NOT GROUP"),
        ({"smile_auc": float("nan")}, "NO VERDICT"),
    ],
)
def test_the_smiles_figure_says_whether_smiles_group_in_its_title(scores, verdict):
    from facevae.plots.smiles import grouping_verdict

    said = grouping_verdict(scores)
    assert said.startswith(verdict), said
    if "smile_knn_purity" in scores:
        assert f"against chance {scores['smile_knn_purity_chance']:.2f}" in said
