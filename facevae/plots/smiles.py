"""smiles_latent.png: where the smiling frames sit among the others in the latent space (PCA and t-SNE), titled
with what would show that the latents encode smiling."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from facevae.metrics.embedding import LatentEmbedding
from facevae.plots.figure import save_figure

SMILE_COLOUR = "tab:orange"
OTHER_COLOUR = "0.55"


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
    embedding: LatentEmbedding,
    path: str | Path,
    smile_scores: np.ndarray | None = None,
    note: str | None = None,
    scores: dict | None = None,
) -> Path:
    """Save smiles_latent.png: the smiling codes among the others, in the PCA and the t-SNE of `latent_embedding`.

    Left, the PCA of all codes (every code drawn, axes labelled with the share of variance each component keeps);
    right, the t-SNE. Smiles are orange triangles, the others grey dots, or coloured by `smile_scores` (one per
    other code, e.g. the smile factor) when given; large crosses mark each group's centroid (the PCA's exactly,
    being linear; the t-SNE's as the mean of the embedded points, since t-SNE maps no centroid). `note` adds a line
    to the title, e.g. how the smiles were chosen ("smiling: smile factor > 0.5").
    """
    # matplotlib is heavy and only needed when a figure is drawn.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if smile_scores is not None:
        smile_scores = np.asarray(smile_scores, np.float64)
        if smile_scores.shape != (embedding.n_other,):
            raise ValueError(
                f"smile_scores must have one value per other code ({embedding.n_other}), got {smile_scores.shape}"
            )
    n_smile, n_other, xy, ratio = embedding.n_smile, embedding.n_other, embedding.pca_xy, embedding.pca_ratio
    rows_smile, rows_other, embedded = embedding.rows_smile, embedding.rows_other, embedding.tsne_xy
    perplexity, n_all = embedding.perplexity, n_smile + n_other

    cmap, norm = "viridis", None
    if smile_scores is not None:
        lo, hi = np.nanpercentile(smile_scores, [1, 99])
        norm = plt.Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1e-9)

    fig, (ax_pca, ax_tsne) = plt.subplots(1, 2, figsize=(15, 7), constrained_layout=True)
    mappable = _scatter(ax_pca, xy[:n_smile], xy[n_smile:], smile_scores, norm, cmap)
    ax_pca.set_xlabel(f"PC1 ({100 * ratio[0]:.0f}% of variance)")
    ax_pca.set_ylabel(f"PC2 ({100 * ratio[1]:.0f}% of variance)")
    ax_pca.set_title(f"PCA of all {n_all} codes (the two axes keep {100 * ratio.sum():.0f}% of the variance)")
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
    shown = "all" if len(embedded) == n_all else f"a random {len(embedded)} of the"
    ax_tsne.set_title(f"t-SNE of {shown} {n_all} codes (perplexity {perplexity:.0f}): neighbours stay neighbours")
    if mappable is not None:
        fig.colorbar(mappable, ax=[ax_pca, ax_tsne], shrink=0.7, pad=0.01, label="smile of the other frames")
    fig.suptitle(
        (f"{grouping_verdict(scores)}\n" if scores else "")
        + f"Where {n_smile} smiling frames (orange triangles) sit among {n_other} other frames in the "
        f"{embedding.latent_dim}-D latent space (encoder means)\nif the latents encode smiling, the triangles gather "
        "apart from the dots and the two centroids (crosses) are far apart"
        + ("\n" + "\n".join(textwrap.wrap(note, 130)) if note else ""),
        fontsize=12,
    )
    return save_figure(fig, path, dpi=110)


def grouping_verdict(scores: dict) -> str:
    """The title's verdict from the grouping scores: a blockwise AUC against chance (0.5) and the k-NN purity against
    its chance level; the thresholds are the product's targets for a smile the latents separate."""
    auc, purity, chance = (scores.get(k) for k in ("smile_auc", "smile_knn_purity", "smile_knn_purity_chance"))
    if auc is None or auc != auc:
        return "NO VERDICT: no smile AUC (too few smiling or other frames, or too few groups to hold out)"
    said = f"AUC {auc:.2f} against chance 0.5"
    if purity is not None and chance is not None:
        said += f", k-NN purity {purity:.2f} against chance {chance:.2f}"
    if auc >= 0.95 and (purity is None or purity >= 0.9):
        return f"SMILES GROUP APART in the latent space ({said})"
    if auc >= 0.7:
        return f"SMILES GROUP PARTLY ({said}; apart: AUC >= 0.95, purity >= 0.9)"
    return f"SMILES DO NOT GROUP ({said})"
