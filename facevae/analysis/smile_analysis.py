"""Where smiling frames sit in the latent space: labels, how well they group, and a picture of it.

The seed proposal (Sullivan, "Analysis and Modification of Encoded Single User Facial Expression Data", section
2.2): "several more data points of smiling images will be processed and run through the encoder. We will test the
grouping of these images and visualize their positions in the latent space". The smiles either come from the
training video itself (labelled by a smile factor, `smile_labels_from_factor`) or from a separate set (a smiling
clip or a photo folder); `smile_grouping` scores the grouping with the metrics of facevae.analysis.smiles and
`smiles_latent_figure` draws it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from facevae.analysis.smiles import blockwise_auc, knn_purity, smile_silhouette
from facevae.plots.figure import save_figure

log = logging.getLogger(__name__)

SMILE, NOT_SMILING, AMBIGUOUS = 1, 0, -1
TSNE_MAX_POINTS = 3000
SMILE_COLOUR = "tab:orange"
OTHER_COLOUR = "0.55"


def smile_labels_from_factor(smile: np.ndarray, threshold: float = 0.5, neutral_below: float = 0.2) -> np.ndarray:
    """Per-frame labels from a continuous smile factor: 1 smiling (> threshold), 0 not (< neutral_below), -1 neither.

    The band in between is left out (-1) so that half-smiles, which belong to neither group, do not blur the
    grouping metrics. On the demo video's factor (module docstring of facevae.data.synthetic) a frown is negative
    and so counts as not smiling.
    """
    smile = np.asarray(smile, dtype=np.float64)
    if neutral_below > threshold:
        raise ValueError(f"neutral_below={neutral_below} must not exceed threshold={threshold}")
    labels = np.full(smile.shape, AMBIGUOUS, dtype=np.int64)
    labels[smile > threshold] = SMILE
    labels[smile < neutral_below] = NOT_SMILING
    return labels


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


def _tsne_subset(n_smile: int, n_other: int, max_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices into each group for the t-SNE: all of both when they fit, otherwise an even random share of
    each, but at least min(n_smile, max_points // 2) smiles so a small smile set is never thinned away."""
    if n_smile + n_other <= max_points:
        return np.arange(n_smile), np.arange(n_other)
    rng = np.random.default_rng(seed)
    keep_smile = min(n_smile, max(round(max_points * n_smile / (n_smile + n_other)), max_points // 2))
    keep_other = max_points - keep_smile
    return np.sort(rng.choice(n_smile, keep_smile, replace=False)), np.sort(rng.choice(n_other, keep_other, False))


def _scatter(ax, xy_smile: np.ndarray, xy_other: np.ndarray, other_colour, norm, cmap: str):
    """Both groups and their centroids on one axis; smiles on top because they are the point of the figure."""
    if other_colour is None:
        other_style = {"c": OTHER_COLOUR, "alpha": 0.5, "label": f"other frames ({len(xy_other)})"}
    else:
        other_style = {"c": other_colour, "cmap": cmap, "norm": norm, "alpha": 0.7}
        other_style["label"] = f"other frames ({len(xy_other)}), coloured by smile"
    mappable = ax.scatter(*xy_other.T, s=6, linewidths=0, **other_style)
    smile_style = {"marker": "^", "c": SMILE_COLOUR, "edgecolors": "k", "linewidths": 0.3, "alpha": 0.85}
    ax.scatter(*xy_smile.T, s=22, label=f"smiling frames ({len(xy_smile)})", **smile_style)
    for xy, colour, name in ((xy_other, OTHER_COLOUR, "other"), (xy_smile, SMILE_COLOUR, "smiling")):
        ax.scatter(*xy.mean(0), s=260, marker="X", c=colour, edgecolors="k", linewidths=1.5, label=f"{name} centroid")
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    return None if other_colour is None else mappable


def smiles_latent_figure(
    mu_smile: np.ndarray,
    mu_other: np.ndarray,
    path: str | Path,
    smile_scores: np.ndarray | None = None,
    seed: int = 0,
    note: str | None = None,
) -> dict[str, object]:
    """Save smiles_latent.png: the smiling codes among the others, in a PCA and a t-SNE of the latent space.

    Left, the 2-D PCA fitted on all codes (every code drawn, axes labelled with the share of variance each
    component keeps); right, a t-SNE (van der Maaten and Hinton 2008; sklearn's TSNE with init="pca", a fixed
    random_state and perplexity min(30, (n - 1) / 3)) of at most TSNE_MAX_POINTS codes. Smiles are orange
    triangles, the others grey dots, or coloured by `smile_scores` (one per row of mu_other, e.g. the smile factor)
    when given; large crosses mark each group's centroid (the PCA's exactly, being linear; the t-SNE's as the mean
    of the embedded points, since t-SNE maps no centroid). `note` adds a line to the title, e.g. how the smiles
    were chosen ("smiling: smile factor > 0.5").

    Returns {"pca_explained_variance": [PC1, PC2] shares, "pca_explained_variance_total",
    "tsne_points": how many codes the t-SNE embedded}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mu_smile, mu_other = np.asarray(mu_smile, np.float64), np.asarray(mu_other, np.float64)
    if len(mu_smile) < 1 or len(mu_other) < 1:
        raise ValueError(f"need codes in both groups, got {len(mu_smile)} smiles and {len(mu_other)} others")
    if smile_scores is not None:
        smile_scores = np.asarray(smile_scores, np.float64)
        if smile_scores.shape != (len(mu_other),):
            raise ValueError(
                f"smile_scores must have one value per other code ({len(mu_other)}), got {smile_scores.shape}"
            )
    z = np.concatenate([mu_smile, mu_other])
    n_smile = len(mu_smile)

    pca = PCA(n_components=2, random_state=seed).fit(z)
    xy = pca.transform(z)
    ratio = pca.explained_variance_ratio_

    rows_smile, rows_other = _tsne_subset(n_smile, len(mu_other), TSNE_MAX_POINTS, seed)
    sub = np.concatenate([mu_smile[rows_smile], mu_other[rows_other]])
    # t-SNE needs perplexity < n; about a third of n keeps tiny test sets valid, 30 is sklearn's usual choice.
    perplexity = float(max(1.0, min(30.0, (len(sub) - 1) / 3)))
    embedded = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(sub)

    cmap, norm = "viridis", None
    if smile_scores is not None:
        lo, hi = np.nanpercentile(smile_scores, [1, 99])
        norm = plt.Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1e-9)

    fig, (ax_pca, ax_tsne) = plt.subplots(1, 2, figsize=(15, 7), constrained_layout=True)
    mappable = _scatter(ax_pca, xy[:n_smile], xy[n_smile:], smile_scores, norm, cmap)
    ax_pca.set_xlabel(f"PC1 ({100 * ratio[0]:.0f}% of variance)")
    ax_pca.set_ylabel(f"PC2 ({100 * ratio[1]:.0f}% of variance)")
    ax_pca.set_title(f"PCA of all {len(z)} codes (the two axes keep {100 * ratio.sum():.0f}% of the variance)")
    _scatter(
        ax_tsne,
        embedded[: len(rows_smile)],
        embedded[len(rows_smile) :],
        None if smile_scores is None else smile_scores[rows_other],
        norm,
        cmap,
    )
    ax_tsne.set_xlabel("t-SNE 1")
    ax_tsne.set_ylabel("t-SNE 2")
    shown = "all" if len(sub) == len(z) else f"a random {len(sub)} of the"
    ax_tsne.set_title(f"t-SNE of {shown} {len(z)} codes (perplexity {perplexity:.0f}): neighbours stay neighbours")
    if mappable is not None:
        fig.colorbar(mappable, ax=[ax_pca, ax_tsne], shrink=0.7, pad=0.01, label="smile of the other frames")
    fig.suptitle(
        f"Where {n_smile} smiling frames (orange triangles) sit among {len(mu_other)} other frames in the "
        f"{z.shape[1]}-D latent space (encoder means)\nif the latents encode smiling, the triangles gather "
        "apart from the dots and the two centroids (crosses) are far apart" + (f"\n{note}" if note else ""),
        fontsize=12,
    )
    save_figure(fig, path, dpi=110)
    return {
        "pca_explained_variance": [float(r) for r in ratio],
        "pca_explained_variance_total": float(ratio.sum()),
        "tsne_points": len(sub),
    }
