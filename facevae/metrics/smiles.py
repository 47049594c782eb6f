"""Where smiles sit in the latent space: how separable they are, and the direction that leads to them.

Metrics take latent codes `z` (N x D, usually the encoder means) and per-frame smile labels (N,). Labels for
the binary metrics are bool or 0/1, with 1/True for a smile; `knn_purity` and `smile_silhouette` accept any
labels. Frames come from one video, so frames close in time are near copies: `blockwise_auc` therefore tests
on blocks of time the classifier never saw.

The metrics come first; figures and the expression shift, which build on them, belong below.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, silhouette_score
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

log = logging.getLogger(__name__)


def _check_z(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(z, dtype=np.float64)
    labels = np.asarray(labels)
    if z.ndim != 2:
        raise ValueError(f"z must be N x D, got shape {z.shape}")
    if labels.shape != (len(z),):
        raise ValueError(f"labels must have one entry per row of z ({len(z)}), got shape {labels.shape}")
    return z, labels


def _binary(labels: np.ndarray) -> np.ndarray:
    """Labels as 0/1 ints; ValueError unless they are bool or 0/1 and both classes occur."""
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1}:
        raise ValueError(f"smile labels must be bool or 0/1, got values {sorted(values)[:5]}")
    if len(values) < 2:
        raise ValueError("smile labels have one class only; need both smiles and non-smiles")
    return labels.astype(np.int64)


def _smile_classifier() -> Pipeline:
    # Standardised codes so one C suits every model, whatever scale each latent has. Balanced class weights keep
    # the intercept independent of each training fold's class balance: blockwise_auc pools out-of-fold scores, and
    # with a separate smile set a test fold can hold one class only, which otherwise biases the pooled AUC low.
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced"))


def knn_purity(z: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Mean over points of the share of its k nearest neighbours (Euclidean, itself excluded) with its label.

    1 when every neighbourhood is pure; for labels that carry no information about z it is the chance that two
    random points share a label (0.5 for two balanced classes, 0.58 for a 30/70 split).
    """
    z, labels = _check_z(z, labels)
    if not 1 <= k < len(z):
        raise ValueError(f"k must be in [1, N-1] = [1, {len(z) - 1}], got {k}")
    # kneighbors() without a query set leaves each point out of its own neighbours, even among duplicates.
    neighbours = NearestNeighbors(n_neighbors=k).fit(z).kneighbors(return_distance=False)
    return float(np.mean(labels[neighbours] == labels[:, None]))


def smile_silhouette(z: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient of the label clusters in z (Euclidean): in [-1, 1], ~0 when they overlap.

    Reference: Rousseeuw 1987; sklearn.metrics.silhouette_score.
    """
    z, labels = _check_z(z, labels)
    n_labels = len(np.unique(labels))
    if not 2 <= n_labels < len(z):
        raise ValueError(f"silhouette needs between 2 and N-1 distinct labels, got {n_labels}")
    return float(silhouette_score(z, labels, metric="euclidean"))


def block_folds(
    blocks: np.ndarray, labels: np.ndarray, n_folds: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split row indices into (train, test) folds by whole blocks: no block is ever on both sides.

    Blocks are dealt to min(n_folds, number of blocks) folds so that every fold's training part holds every
    label that occurs in at least two blocks: the two blocks richest in each label go to different folds
    first, then the rest are dealt, rarest label first, each to the fold with the fewest rows of the rarest
    label so far (then the fewest rows). `seed` shuffles the blocks beforehand, which decides ties.
    """
    blocks, labels = np.asarray(blocks), np.asarray(labels)
    if blocks.shape != labels.shape or blocks.ndim != 1:
        raise ValueError(f"blocks and labels must both be (N,), got {blocks.shape} and {labels.shape}")
    ids, row_block = np.unique(blocks, return_inverse=True)
    n_folds = min(n_folds, len(ids))
    if n_folds < 2:
        raise ValueError(f"need at least 2 time blocks to test on unseen ones, got {len(ids)}")
    classes, class_rows = np.unique(labels, return_counts=True)
    # counts[b, c]: rows of class c in block b, classes ordered rarest first.
    counts = np.stack([np.bincount(row_block, weights=labels == c, minlength=len(ids)) for c in classes], 1)
    counts = counts[:, np.argsort(class_rows, kind="stable")]
    order = np.random.default_rng(seed).permutation(len(ids))

    fold_of_block = np.full(len(ids), -1)
    # A training part lacks class c only if every block holding c sits in its fold; two such blocks in
    # different folds prevent that. Pinning the pairs of the two rarest classes is a path or a single edge
    # between blocks, so a 2-colouring always exists: each block joins the fold its partner is not in.
    for c in range(min(2, counts.shape[1])):
        richest = [b for b in order[np.argsort(-counts[order, c], kind="stable")][:2] if counts[b, c] > 0]
        if len(richest) < 2:
            continue
        first, second = richest
        if fold_of_block[first] < 0 and fold_of_block[second] < 0:
            fold_of_block[first], fold_of_block[second] = 0, 1
        elif fold_of_block[second] < 0:
            fold_of_block[second] = 1 - fold_of_block[first]
        elif fold_of_block[first] < 0:
            fold_of_block[first] = 1 - fold_of_block[second]

    fold_rare, fold_rows = np.zeros(n_folds), np.zeros(n_folds)
    for b in np.flatnonzero(fold_of_block >= 0):
        fold_rare[fold_of_block[b]] += counts[b, 0]
        fold_rows[fold_of_block[b]] += counts[b].sum()
    for b in order[np.argsort(-counts[order, 0], kind="stable")]:
        if fold_of_block[b] >= 0:
            continue
        f = np.lexsort((fold_rows, fold_rare))[0]
        fold_of_block[b] = f
        fold_rare[f] += counts[b, 0]
        fold_rows[f] += counts[b].sum()
    row_fold = fold_of_block[row_block]
    return [(np.flatnonzero(row_fold != f), np.flatnonzero(row_fold == f)) for f in range(n_folds)]


def blockwise_auc(z: np.ndarray, labels: np.ndarray, blocks: np.ndarray, n_folds: int = 5, seed: int = 0) -> float:
    """ROC AUC of a linear smile classifier tested on blocks of time it was not trained on.

    Rows are dealt to folds by whole blocks (`block_folds`); for each fold a logistic regression on
    standardised codes is fitted to the other folds and scores the fold's rows. The out-of-fold decision
    scores of all folds are pooled into one ROC AUC (0.5 for codes that carry nothing about smiles, 1 for a
    perfect linear split).

    A fold whose training part lacks a label cannot be skipped: all rows of that label would then sit in the
    skipped fold and the pooled AUC would have one class. `block_folds` prevents such folds whenever each
    label occurs in at least two blocks; otherwise no split by blocks exists and this raises ValueError, as it
    does when labels have one class or there are fewer than 2 blocks.
    """
    z, labels = _check_z(z, labels)
    y = _binary(labels)
    blocks = np.asarray(blocks)
    if blocks.shape != (len(z),):
        raise ValueError(f"blocks must have one entry per row of z ({len(z)}), got shape {blocks.shape}")
    for value, name in ((1, "smiles"), (0, "non-smiles")):
        n_blocks = len(np.unique(blocks[y == value]))
        if n_blocks < 2:
            raise ValueError(f"{name} occur in {n_blocks} time block only; a blockwise AUC needs at least 2")
    scores = np.zeros(len(z))
    for train, test in block_folds(blocks, y, n_folds, seed):
        if len(test) == 0:  # a fold the dealing left without blocks has nothing to score
            continue
        scores[test] = _smile_classifier().fit(z[train], y[train]).decision_function(z[test])
    return float(roc_auc_score(y, scores))


def smile_direction(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The latent direction toward smiles and the class centroids -> (unit normal, smile mean, other mean).

    The normal is that of a logistic-regression boundary fitted on standardised codes (all rows), mapped back
    to latent coordinates: the classifier's score is sum_d w_d (z_d - m_d) / s_d, so its gradient in z is
    w / s. Scaled to unit length and signed so that moving along it raises the smile score. A latent with zero
    spread gets weight 0 along it.
    """
    z, labels = _check_z(z, labels)
    y = _binary(labels)
    clf = _smile_classifier().fit(z, y)
    scaler, logistic = clf[0], clf[-1]
    # StandardScaler sets scale_ to 1 for a constant code, whose standardised value is then 0 everywhere, so
    # the classifier gives it weight 0 and dividing by 1 keeps it 0.
    normal = logistic.coef_[0] / scaler.scale_
    norm = np.linalg.norm(normal)
    if norm == 0.0:
        raise ValueError("the smile classifier found no direction: every code is constant")
    return normal / norm, z[y == 1].mean(axis=0), z[y == 0].mean(axis=0)


def edit_direction(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The unit direction in which to move codes to make them smile: from the non-smiling codes' mean to the
    smiling codes' mean, the normal of the nearest-centroid boundary between them (the attribute vector of
    Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity metric").

    Not smile_direction's discriminant: that one weighs each latent by how well it separates the classes in its
    own units, and a VAE's smile is best separated, so measured, along latents that barely vary and that the
    decoder barely reads. On the 80-epoch demo model the two centroids lie 0.12 apart, 0.015 of it along the
    discriminant: moving along it as far as the smiles lie changes nothing visible.
    """
    z, labels = _check_z(z, labels)
    y = _binary(labels)
    gap = z[y == 1].mean(axis=0) - z[y == 0].mean(axis=0)
    norm = np.linalg.norm(gap)
    if norm == 0.0:
        raise ValueError("the smiling and other codes have the same mean: no direction to move along")
    return gap / norm


def disjoint_blocks(blocks_smile: np.ndarray, blocks_other: np.ndarray) -> np.ndarray:
    """Block ids for a separate smile set, shifted past every id of the others, so no block holds both sets."""
    blocks_smile, blocks_other = np.asarray(blocks_smile), np.asarray(blocks_other)
    offset = (blocks_other.max() + 1 if len(blocks_other) else 0) - (blocks_smile.min() if len(blocks_smile) else 0)
    return blocks_smile + offset


def smile_grouping(
    mu_smile: np.ndarray,
    mu_other: np.ndarray,
    blocks_smile: np.ndarray,
    blocks_other: np.ndarray,
    k: int = 10,
    seed: int = 0,
    separate: bool = False,
    n_folds: int = 5,
) -> dict[str, float | int]:
    """How well smiling codes group apart from the others -> the metrics below, ready for metrics.json.

        smile_silhouette         mean silhouette of the two groups (Rousseeuw 1987): ~0 overlapping, 1 apart
        smile_knn_purity         share of each point's k nearest neighbours with its own label, over all points
        smile_knn_purity_chance  the same for labels unrelated to the codes: p^2 + (1-p)^2, p the smile share
        smile_auc                ROC AUC of a linear smile classifier tested on time blocks it never saw
                                 (`blockwise_auc`, `n_folds` folds); nan when a group spans fewer than 2
                                 blocks (facevae.data.split.cv_groups makes groups that avoid that)
        n_smile, n_other         how many codes each group had

    `blocks_*` are time-block ids (facevae.data.split.block_ids). Smiles labelled inside the training video share
    its block ids, so a block's smiles and non-smiles stay on one side of every split. Smiles from a separate set
    (a smiling clip, a photo folder) need ids of their own: pass `separate=True` and they are shifted past the
    others' (`disjoint_blocks`). A separate set was also filmed at another time, so its AUC measures "smile or
    other session" together: compare it with the in-video AUC where both exist.
    """
    mu_smile, mu_other = np.asarray(mu_smile, np.float64), np.asarray(mu_other, np.float64)
    blocks_smile, blocks_other = np.asarray(blocks_smile), np.asarray(blocks_other)
    if separate:
        blocks_smile = disjoint_blocks(blocks_smile, blocks_other)
    if len(mu_smile) < 2 or len(mu_other) < 2:
        raise ValueError(f"need at least 2 codes in each group, got {len(mu_smile)} smiles and {len(mu_other)} others")
    z = np.concatenate([mu_smile, mu_other])
    labels = np.concatenate([np.ones(len(mu_smile), np.int64), np.zeros(len(mu_other), np.int64)])
    blocks = np.concatenate([blocks_smile, blocks_other])
    share = len(mu_smile) / len(z)
    try:
        auc = blockwise_auc(z, labels, blocks, n_folds=n_folds, seed=seed)
    except ValueError as err:
        # Too few blocks is a property of the data, not a bug: the other metrics still say something.
        log.warning("smile_auc left out: %s", err)
        auc = float("nan")
    return {
        "smile_silhouette": smile_silhouette(z, labels),
        "smile_knn_purity": knn_purity(z, labels, k=min(k, len(z) - 1)),
        "smile_knn_purity_chance": float(share**2 + (1 - share) ** 2),
        "smile_auc": auc,
        "n_smile": len(mu_smile),
        "n_other": len(mu_other),
    }
