"""interpolation.png: three-point interpolation grids and lines in the latent space, titled with how evenly they
change (facevae.metrics.interpolation) and, for samplers, their verdict."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facevae.core.tensors import image_grid
from facevae.plots.figure import save_figure

PAD = 2  # pixels between tiles in every grid of the figure, as image_grid lays them out
INPUT_COLOUR, INPUT_COLOUR_NAME = (31, 119, 180), "tab:blue"  # the frame around real crops, and their labels
GRID_TITLES = {
    "encoded": "held-out frames A, B, C (real crops in blue) encoded,\nthe plane between their codes decoded",
    "prior": "three prior draws A, B, C ~ N(0, I),\nthe plane between them decoded",
    "fitted": "three draws A, B, C of the sampler fitted to the training codes,\nthe plane between them decoded",
}
STRIP_NAMES = {"encoded": "held-out", "prior": "prior", "fitted": "fitted"}


def _tile_centres(n: int, side: int) -> np.ndarray:
    return PAD + np.arange(n) * (side + PAD) + side / 2


def label_grid_axes(ax, n: int, side: int, x0: float = 0.0) -> None:
    """Ticks, axis names and corner letters of a three-point grid drawn with imshow, `x0` pixels from the left."""
    centres = _tile_centres(n, side)
    ax.set_xticks(x0 + centres, [f"{u:.2g}" for u in np.linspace(0, 1, n)], fontsize=7)
    ax.set_yticks(centres, [f"{v:.2g}" for v in np.linspace(0, 1, n)], fontsize=7)
    ax.tick_params(length=0)
    ax.set_xlabel("u: from A towards B  (columns)", fontsize=9)
    ax.set_ylabel("v: from A towards C  (rows)", fontsize=9)
    for (r, c), text in {(0, 0): "A", (0, n - 1): "B", (n - 1, 0): "C", (n - 1, n - 1): "B+C−A"}.items():
        _tile_label(ax, x0 + centres[c], centres[r], side, text, "black", 0.6)


def _tile_label(ax, x: float, y: float, side: int, text: str, colour: str, alpha: float) -> None:
    """A small label in the top-left corner of the tile centred at (x, y), over the forehead: the eyes and mouth stay
    visible."""
    ax.text(
        x - side / 2 + 2,
        y - side / 2 + 2,
        text,
        ha="left",
        va="top",
        fontsize=6,
        color="white",
        bbox={"boxstyle": "round,pad=0.15", "fc": colour, "alpha": alpha, "lw": 0},
    )


def _with_inputs(grid_images: np.ndarray, inputs: np.ndarray | None, n: int, gap: int = 10) -> tuple[np.ndarray, int]:
    """The n x n grid with a spare column either side; the real input crops, framed in blue, go outside their
    corners there: A left of A, C left of C, B right of B. Without inputs the columns stay blank, so both panels
    of the figure keep tiles of the same size. Returns the picture and the x offset of the grid inside it.
    """
    grid = image_grid(grid_images, ncols=n, pad=PAD)
    side = grid_images.shape[1]
    column = side + 2 * PAD
    out = np.full((grid.shape[0], grid.shape[1] + 2 * (column + gap), 3), 255, np.uint8)
    x0 = column + gap
    out[:, x0 : x0 + grid.shape[1]] = grid
    if inputs is None:
        return out, x0
    top, bottom = PAD, PAD + (n - 1) * (side + PAD)
    right = out.shape[1] - column + PAD
    for image, (y, x) in zip(inputs, [(top, PAD), (top, right), (bottom, PAD)], strict=True):
        out[y - PAD : y + side + PAD, x - PAD : x + side + PAD] = INPUT_COLOUR
        out[y : y + side, x : x + side] = image
    return out, x0


def interpolation_figure(
    grids: dict[str, np.ndarray],
    strips: dict[tuple[str, str], np.ndarray],
    stats: dict[str, float],
    corner_images: np.ndarray | None = None,
    *,
    path: str | Path,
    verdicts: dict[str, str] | None = None,
) -> Path:
    """Save interpolation.png (150 dpi) from decoded grids and strips (`decode_interpolations`) and their
    `interpolation_scores`.

    Left: the grid between three encoded held-out frames, with the real crops (`corner_images`, uint8 3 x H x W x 3,
    optional) outside their corners. Beside it: the same between three prior draws and, when given, between three
    draws of the fitted sampler; `verdicts` (by "prior" and "fitted") adds a line to their titles. Below: the line
    from corner A to corner B of each, by lerp and by slerp.
    """
    # matplotlib is heavy and only needed when a figure is drawn.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    verdicts = verdicts or {}
    kinds = list(grids)
    n = int(round(np.sqrt(len(grids[kinds[0]]))))
    strip_len = len(strips[kinds[0], "lerp"])
    side = grids[kinds[0]].shape[1]
    tile_in = 0.55  # inches per 64-pixel tile at 150 dpi: ~80 screen pixels, the mouth and eyes stay legible
    rows = [(kind, how) for kind in kinds for how in ("lerp", "slerp")]
    strip_h = len(rows) * 1.25
    fig = plt.figure(figsize=(tile_in * len(kinds) * (n + 3), tile_in * (n + strip_h) + 2.4), layout="constrained")
    outer = fig.add_gridspec(2, 1, height_ratios=[n + 2.2, strip_h])
    top = outer[0].subgridspec(1, len(kinds), wspace=0.06)
    for i, kind in enumerate(kinds):
        ax = fig.add_subplot(top[0, i])
        inputs = np.asarray(corner_images) if kind == "encoded" and corner_images is not None else None
        picture, x0 = _with_inputs(grids[kind], inputs, n)
        ax.imshow(picture)
        centres = _tile_centres(n, side)
        label_grid_axes(ax, n, side, x0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if inputs is not None:
            right = picture.shape[1] - side / 2 - PAD
            for x, y, text in ((PAD + side / 2, 0, "real A"), (right, 0, "real B"), (PAD + side / 2, n - 1, "real C")):
                _tile_label(ax, x, centres[y], side, text, INPUT_COLOUR_NAME, 0.8)
        s = stats
        verdict = f"\n{verdicts[kind]}" if kind in verdicts else ""
        ax.set_title(
            f"{GRID_TITLES[kind]}{verdict}\nsmoothness {s[f'interp_smoothness_{kind}']:.2f} (1 = even cross-fade), "
            f"largest step {s[f'interp_max_step_{kind}']:.1f}x the mean, A-B/A-C distance "
            f"{s[f'interp_corner_distance_{kind}']:.2f}",
            fontsize=9,
        )

    bottom = outer[1].subgridspec(len(rows), 1)
    for i, (kind, how) in enumerate(rows):
        ax = fig.add_subplot(bottom[i, 0])
        ax.imshow(image_grid(strips[kind, how], ncols=strip_len, pad=PAD))
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        line = "straight line (lerp)" if how == "lerp" else "great circle (slerp)"
        ax.set_ylabel(f"{STRIP_NAMES[kind]} A → B\n{line}", rotation=0, ha="right", va="center", fontsize=8)
        if i == 0:
            ax.set_title(
                f"one line from A (left) to B (right) in {strip_len} steps, straight vs spherical; mean distance "
                "between the two decoded strips: "
                + ", ".join(f"{s[f'interp_slerp_vs_lerp_{k}']:.2f} {STRIP_NAMES[k]}" for k in kinds),
                fontsize=9,
            )

    fig.suptitle(
        "Three-point interpolation in the latent space (Sullivan, section 2.2). Good samples and no mode collapse: a\n"
        "face in every cell, changing gradually; collapse: the same face everywhere; a hole: a sudden jump or a smear",
        fontsize=10,
    )
    return save_figure(fig, path, dpi=150, bbox_inches="tight")


def prior_interpolation_figure(grid: np.ndarray, stats: dict, verdict: str, path: Path, n: int) -> Path:
    """interpolation.png for a model without an encoder: the three-point grid between three prior draws, titled with
    the samples' `verdict` (`sampler_title_line`) and the grid's smoothness."""
    # matplotlib is heavy and only needed when a figure is drawn.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(0.75 * n + 1.2, 0.75 * n + 1.6), layout="constrained")
    ax.imshow(image_grid(grid, ncols=n))
    label_grid_axes(ax, n, grid.shape[1])
    ax.set_title(
        "Three-point interpolation between prior draws A, B, C ~ N(0, I) (Sullivan, section 4)\n"
        f"{verdict}\n"
        f"smoothness {stats['interp_smoothness_prior']:.2f} (1 = even cross-fade), largest step "
        f"{stats['interp_max_step_prior']:.1f}x the mean, A-B/A-C distance {stats['interp_corner_distance_prior']:.2f}",
        fontsize=9,
    )
    return save_figure(fig, path, dpi=150, bbox_inches="tight")
