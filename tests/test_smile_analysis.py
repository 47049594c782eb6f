"""Known-answer tests of the smile grouping: labels, grouping metrics on planted blobs, the embedding and figure."""

from __future__ import annotations

import numpy as np
import pytest

from facevae.metrics.embedding import _tsne_subset, latent_embedding
from facevae.metrics.smile_labels import smile_labels_from_factor
from facevae.metrics.smiles import disjoint_blocks, smile_grouping
from facevae.plots.smiles import smiles_latent_figure

D = 8


def _blobs(separation: float, n_smile: int = 150, n_other: int = 300, seed: int = 0):
    """Codes of smiles shifted by `separation` noise SDs along one axis, with time blocks of 15 frames each."""
    rng = np.random.default_rng(seed)
    axis = np.eye(D)[0]
    mu_smile = rng.normal(size=(n_smile, D)) + separation * axis
    mu_other = rng.normal(size=(n_other, D))
    return mu_smile, mu_other, np.arange(n_smile) // 15, np.arange(n_other) // 15


def test_labels_from_factor_thresholds():
    smile = np.array([-0.8, 0.0, 0.19, 0.2, 0.35, 0.5, 0.51, 1.0])
    expected = np.array([0, 0, 0, -1, -1, -1, 1, 1])
    np.testing.assert_array_equal(smile_labels_from_factor(smile), expected)
    np.testing.assert_array_equal(
        smile_labels_from_factor(smile, threshold=0.3, neutral_below=0.3), [0, 0, 0, 0, 1, 1, 1, 1]
    )
    with pytest.raises(ValueError, match="neutral_below"):
        smile_labels_from_factor(smile, threshold=0.2, neutral_below=0.5)


def test_grouping_of_separated_blobs_scores_high():
    metrics = smile_grouping(*_blobs(separation=8.0))
    assert metrics["smile_silhouette"] > 0.5
    assert metrics["smile_auc"] > 0.95
    assert metrics["smile_knn_purity"] > 0.95
    assert metrics["smile_knn_purity_chance"] == pytest.approx((1 / 3) ** 2 + (2 / 3) ** 2)
    assert (metrics["n_smile"], metrics["n_other"]) == (150, 300)


def test_grouping_of_identical_distributions_scores_chance():
    metrics = smile_grouping(*_blobs(separation=0.0))
    assert metrics["smile_auc"] == pytest.approx(0.5, abs=0.1)
    assert abs(metrics["smile_silhouette"]) < 0.05
    assert metrics["smile_knn_purity"] == pytest.approx(metrics["smile_knn_purity_chance"], abs=0.05)


def test_separate_smile_set_gets_blocks_of_its_own():
    np.testing.assert_array_equal(disjoint_blocks(np.array([0, 0, 1, 2]), np.array([3, 7, 7])), [8, 8, 9, 10])
    # Same ids on both sides would let one block hold both sets; separate=True must keep working all the same.
    mu_smile, mu_other, blocks_smile, blocks_other = _blobs(separation=8.0)
    assert smile_grouping(mu_smile, mu_other, blocks_smile, blocks_other, separate=True)["smile_auc"] > 0.95


def test_grouping_without_enough_blocks_leaves_auc_out(caplog):
    mu_smile, mu_other, _, blocks_other = _blobs(separation=8.0)
    metrics = smile_grouping(mu_smile, mu_other, np.zeros(len(mu_smile), int), blocks_other)
    assert np.isnan(metrics["smile_auc"])
    assert metrics["smile_silhouette"] > 0.5
    assert "smile_auc left out" in caplog.text


def test_tsne_subset_keeps_small_smile_sets_whole():
    rows_smile, rows_other = _tsne_subset(100, 5000, 3000, seed=0)
    assert len(rows_smile) == 100 and len(rows_other) == 2900
    assert len(np.unique(rows_other)) == 2900
    rows_smile, rows_other = _tsne_subset(4000, 4000, 3000, seed=0)
    assert len(rows_smile) == 1500 and len(rows_other) == 1500
    rows_smile, rows_other = _tsne_subset(10, 20, 3000, seed=0)
    np.testing.assert_array_equal(rows_smile, np.arange(10))


def test_smiles_latent_figure_is_written(tmp_path):
    mu_smile, mu_other, _, _ = _blobs(separation=4.0, n_smile=30, n_other=60)
    scores = np.linspace(-1, 0.4, 60)
    embedding = latent_embedding(mu_smile, mu_other)
    smiles_latent_figure(embedding, tmp_path / "figs" / "smiles_latent.png", smile_scores=scores)
    info = embedding.metrics()
    assert (tmp_path / "figs" / "smiles_latent.png").stat().st_size > 10_000
    assert len(info["pca_explained_variance"]) == 2
    assert 0 < info["pca_explained_variance_total"] <= 1
    # The planted axis carries most of the spread, so PC1 should keep a large share of it.
    assert info["pca_explained_variance"][0] > 0.3
    assert info["tsne_points"] == 90
    with pytest.raises(ValueError, match="smile_scores"):
        smiles_latent_figure(embedding, tmp_path / "x.png", smile_scores=scores[:5])
