"""traversals.png: what each latent does to the face over its range in the data, one row per latent by KL."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facevae.core.tensors import image_grid
from facevae.metrics.reconstruction import ACTIVE_KL_NATS
from facevae.metrics.traversals import TraversalScores
from facevae.plots.figure import save_figure

PAD = 2  # pixels between tiles, as image_grid lays them out


def traversal_figure(
    images: np.ndarray,
    scores: TraversalScores,
    kl_per_dim: np.ndarray,
    values: np.ndarray,
    path: str | Path,
) -> Path:
    """Save traversals.png (150 dpi): one row per latent of `scores.order`, highest KL first, sweeping it through
    `values` (n values for every row, or D x n, `data_ranges`).

    `images` are the decoded rows ((rows * n) x H x W x 3, as `traversal_latents` lays the codes out); kl_per_dim
    (D,) in nats labels the rows; rows with KL below ACTIVE_KL_NATS are marked inactive in grey.
    """
    # matplotlib is heavy and only needed when a figure is drawn.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kl = np.asarray(kl_per_dim, dtype=np.float64).reshape(-1)
    values = np.asarray(values, dtype=np.float64)
    order, change = np.asarray(scores.order, dtype=np.int64), scores.pixel_change
    n_rows, n_cols = len(order), values.shape[-1]
    side = images.shape[1]

    tile_in = 0.5  # inches per 64-pixel tile at 150 dpi: 75 screen pixels, features visible, 32 rows fit a page
    fig, ax = plt.subplots(figsize=(tile_in * n_cols + 3.4, tile_in * n_rows + 1.4), layout="constrained")
    ax.imshow(image_grid(images, ncols=n_cols, pad=PAD))
    centres = PAD + np.arange(max(n_rows, n_cols)) * (side + PAD) + side / 2
    per_row = values.ndim == 2
    if per_row:  # each row its own range: the columns are positions in it, the row label says where it runs
        ticks = [f"{q:.0f}%" for q in np.linspace(0, 100, n_cols)]
        ax.set_xlabel("position in the row's latent range in the data (0% = its 2nd percentile, 100% = its 98th)")
    else:
        ticks = [f"{v:+.3g}" if v else "0" for v in values.reshape(-1)]
        ax.set_xlabel("value the row's latent is set to (the others keep the base code)", fontsize=9)
    ax.set_xticks(centres[:n_cols], ticks, fontsize=8)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    labels = [
        f"z{d} (KL {kl[d]:.{2 if kl[d] >= 0.1 else 3}f} nats)"
        + (f"\n{values[d, 0]:+.2g} … {values[d, -1]:+.2g}" if per_row else "")
        + (f"\nKL < {ACTIVE_KL_NATS}" if kl[d] < ACTIVE_KL_NATS else f"\nΔpixel {c:.2g}")
        for d, c in zip(order, change, strict=True)
    ]
    ax.set_yticks(centres[:n_rows], labels, fontsize=8)
    for tick, d in zip(ax.get_yticklabels(), order, strict=True):
        if kl[d] < ACTIVE_KL_NATS:
            tick.set_color("0.6")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    n_kl = int(np.sum(kl >= ACTIVE_KL_NATS))
    shown = f"the {n_rows} highest-KL of {len(kl)}" if n_rows < len(kl) else f"all {len(kl)}"
    span = "over its range in the data (2nd to 98th percentile of the codes)" if per_row else "through fixed values"
    ax.set_title(
        f"Latent traversals: {shown} dimensions, highest KL first ({n_kl} with KL ≥ {ACTIVE_KL_NATS} nats)\n"
        f"each row sweeps one latent {span}; Δpixel = mean |change| of a 0-1 pixel between neighbouring columns",
        fontsize=10,
    )
    return save_figure(fig, path, dpi=150, bbox_inches="tight")
