"""Latent traversals: what each latent dimension does to the face, one dimension at a time, ordered by KL.

A beta-VAE pushes each latent towards the prior unless it earns its keep; the ones that carry information about
the frame have a large KL(q(z_d|x) || N(0, 1)), the ones the decoder ignores sit near 0 nats. Decoding a code in
which one dimension sweeps a range of values while the others stay put shows what that dimension controls (Higgins
et al. 2017, "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework", ICLR, figure 1
and section 4). Sorting the rows by KL puts the dimensions worth looking at first; a disentangled dimension changes
one thing (the smile, the gaze, the light), an entangled one several at once, an inactive one nothing at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facevae.analysis.encoding import decode_latents
from facevae.core.tensors import image_grid
from facevae.models.lit_beta_vae import ACTIVE_KL_NATS
from facevae.plots.figure import save_figure

DEFAULT_VALUES = np.linspace(-3.0, 3.0, 9)  # +-3 prior standard deviations: 99.7% of the prior's mass
PAD = 2  # pixels between tiles, as image_grid lays them out
# Each row spans its latent's range in the data: from this percentile of the training codes to its mirror. The
# codes of one person rarely fill +-3 (a small beta leaves them far narrower, or far off centre), so a fixed range
# shows most rows unchanged; the 2nd to 98th percentile leaves out odd frames.
RANGE_PERCENTILE = 2.0
N_VALUES = 9


def data_ranges(mu: np.ndarray, percentile: float = RANGE_PERCENTILE, n: int = N_VALUES) -> np.ndarray:
    """Per latent, n values evenly from the `percentile`-th to the (100 - percentile)-th percentile of the codes
    mu (N x D) -> D x n."""
    low, high = np.percentile(np.asarray(mu, dtype=np.float64), [percentile, 100.0 - percentile], axis=0)
    return np.linspace(low, high, n, axis=1)


def central_code(mu: np.ndarray) -> np.ndarray:
    """The encoded frame nearest the mean code: a typical face, and a real one, to traverse from."""
    return mu[np.argmin(np.linalg.norm(mu - mu.mean(axis=0), axis=1))]


def traversal_latents(base_z: np.ndarray, dims: Sequence[int], values: np.ndarray) -> np.ndarray:
    """Codes equal to base_z except in one dimension, set to each value in turn -> (len(dims) * n) x D.

    values: n values every row sweeps, or one row of n per dimension of base_z (D x n, as `data_ranges` gives).
    Row-major: the first n codes sweep dims[0] through its values, the next dims[1], and so on. The values replace
    base_z[d], they are not added to it, so every row ends at the same absolute codes whatever the base.
    """
    base = np.asarray(base_z, dtype=np.float64).reshape(-1)
    dims = np.asarray(dims, dtype=np.int64).reshape(-1)
    values = np.asarray(values, dtype=np.float64)
    if len(dims) and (dims.min() < 0 or dims.max() >= len(base)):
        raise ValueError(f"dims must lie in [0, {len(base) - 1}], got {dims.tolist()}")
    per_row = values[dims] if values.ndim == 2 else np.tile(values.reshape(-1), (len(dims), 1))
    z = np.tile(base, (per_row.size, 1))
    z[np.arange(len(z)), np.repeat(dims, per_row.shape[1])] = per_row.reshape(-1)
    return z


def row_pixel_change(images: np.ndarray, n_values: int) -> np.ndarray:
    """Mean absolute change of a pixel between neighbouring images of each traversal row -> (rows,).

    images: (rows * n_values) x H x W x C, row-major as from `traversal_latents`; uint8 is divided by 255 so the
    answer is in [0, 1] intensity units. 0 for a dimension that changes nothing; with rows that span each latent's
    range in the data, how much the face changes over the range that latent takes.
    """
    x = np.asarray(images)
    x = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    if n_values < 2 or len(x) % n_values:
        raise ValueError(f"{len(x)} images do not split into rows of n_values={n_values} (need n_values >= 2)")
    x = x.reshape(len(x) // n_values, n_values, -1)
    return np.abs(np.diff(x, axis=1)).mean(axis=(1, 2))


def traversal_figure(
    model,
    base_z: np.ndarray,
    kl_per_dim: np.ndarray,
    path: str | Path,
    values: np.ndarray = DEFAULT_VALUES,  # n values for every row, or D x n (`data_ranges`)
    max_dims: int | None = None,
) -> dict[str, list]:
    """Save traversals.png (150 dpi): one row per latent dimension, highest KL first, sweeping it through `values`.

    base_z (D,) is the code the other dimensions keep: a held-out frame's posterior mean shows changes to a real
    face; zeros show changes to the prior's mode. kl_per_dim (D,) in nats orders the rows and labels them; rows
    with KL below ACTIVE_KL_NATS are marked inactive in grey. max_dims keeps only the first that many rows.

    Returns {"order": the dimensions shown, highest KL first, "traversal_pixel_change": `row_pixel_change` of each
    shown row, in the same order, "traversal_kl": their KL}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base_z = np.asarray(base_z, dtype=np.float64).reshape(-1)
    kl = np.asarray(kl_per_dim, dtype=np.float64).reshape(-1)
    values = np.asarray(values, dtype=np.float64)
    if kl.shape != base_z.shape:
        raise ValueError(f"kl_per_dim has {len(kl)} entries but base_z has {len(base_z)} dimensions")
    if values.ndim == 2 and values.shape[0] != len(base_z):
        raise ValueError(f"values has ranges for {values.shape[0]} latents but base_z has {len(base_z)}")
    order = np.argsort(-kl, kind="stable")[: max_dims if max_dims is not None else len(kl)]
    images = decode_latents(model, traversal_latents(base_z, order, values).astype(np.float32))
    n_rows, n_cols = len(order), values.shape[-1]
    change = row_pixel_change(images, n_cols)
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
    path = save_figure(fig, path, dpi=150, bbox_inches="tight")
    return {
        "order": [int(d) for d in order],
        "traversal_pixel_change": [float(c) for c in change],
        "traversal_kl": [float(kl[d]) for d in order],
    }
