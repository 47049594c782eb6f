"""Interpolating in the latent space: the seed proposal's check of sample quality and mode collapse.

Sullivan, "Analysis and Modification of Encoded Single User Facial Expression Data", section 2.2: "we will sample
three points in the latent space and interpolate between them to verify sample quality and check for mode
collapse". Three codes a, b, c span a plane; `three_point_grid` decodes an n x n lattice on it (the WGAN figure of
the seed's section 4 is one). A healthy model shows a face in every cell, changing gradually and differently along
rows and columns; a collapsed one shows the same face everywhere, and a latent space with holes shows a sudden
jump or a smeared, faceless cell between two good ones.

Two kinds of corner are used: the posterior means of three held-out frames (`pick_corners` chooses frames far
apart, so the grid has something to show) and three draws from the prior N(0, I). Along a single line, `lerp`
and `slerp` are compared: in high dimension a straight line between two prior draws passes through codes of
unusually small norm, which the decoder rarely saw in training; the great-circle path keeps the norm (White 2016,
"Sampling Generative Networks", arXiv:1609.04468, section 2.1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facevae.analysis.encoding import decode_latents
from facevae.core.tensors import image_grid
from facevae.plots.figure import save_figure

# Below this sine of the angle between two codes, slerp's 1/sin(omega) blows up rounding errors: use lerp.
SLERP_EPS = 1e-6
PAD = 2  # pixels between tiles in every grid of the figure, as image_grid lays them out
INPUT_COLOUR, INPUT_COLOUR_NAME = (31, 119, 180), "tab:blue"  # the frame around real crops, and their labels
GRID_TITLES = {
    "encoded": "held-out frames A, B, C (real crops in blue) encoded,\nthe plane between their codes decoded",
    "prior": "three prior draws A, B, C ~ N(0, I),\nthe plane between them decoded",
    "fitted": "three draws A, B, C of the sampler fitted to the training codes,\nthe plane between them decoded",
}
STRIP_NAMES = {"encoded": "held-out", "prior": "prior", "fitted": "fitted"}


def three_point_grid(z_a: np.ndarray, z_b: np.ndarray, z_c: np.ndarray, n: int = 8) -> np.ndarray:
    """The n x n lattice z(u, v) = a + u (b - a) + v (c - a), u and v in linspace(0, 1, n) -> (n*n) x D.

    Row-major like an image: row i has v = v_i (moving from a towards c going down), column j has u = u_j
    (moving from a towards b going right). Corners: a top-left (row 0, col 0), b top-right (row 0, col n-1),
    c bottom-left (row n-1, col 0), and bottom-right the fourth corner of the parallelogram, b + c - a, which is
    no input and can lie far outside the data when a is far from b and c.
    """
    a, b, c = (np.asarray(z, dtype=np.float64).reshape(-1) for z in (z_a, z_b, z_c))
    if not a.shape == b.shape == c.shape:
        raise ValueError(f"corners differ in size: {a.shape}, {b.shape}, {c.shape}")
    if n < 2:
        raise ValueError(f"n must be at least 2 to reach all three corners, got {n}")
    t = np.linspace(0.0, 1.0, n)
    v, u = np.meshgrid(t, t, indexing="ij")  # v varies down the rows, u across the columns
    grid = a + u.reshape(-1, 1) * (b - a) + v.reshape(-1, 1) * (c - a)
    # Pin the three corners to the inputs bit for bit: a + 1.0 * (b - a) need not round back to b.
    grid[0], grid[n - 1], grid[n * (n - 1)] = a, b, c
    return grid


def prior_corners(latent_dim: int, seed: int) -> np.ndarray:
    """Three prior draws a, b, c ~ N(0, I) (3 x D float32) from numpy seed `seed`: the corners of every prior grid
    (evaluation, the WGAN's, the comparison and the training-time figure), so that models of one latent size are
    shown the same codes."""
    return np.random.default_rng(seed).standard_normal((3, latent_dim)).astype(np.float32)


def prior_grid(model, seed: int, n: int) -> np.ndarray:
    """The n x n three-point grid between `prior_corners`, decoded by `model` -> uint8 (n*n) x H x W x 3, row-major."""
    corners = prior_corners(int(model.hparams.latent_dim), seed)
    return decode_latents(model, three_point_grid(*corners, n=n).astype(np.float32))


def lerp(z0: np.ndarray, z1: np.ndarray, n: int) -> np.ndarray:
    """n codes evenly spaced on the straight line from z0 to z1, both ends included -> n x D."""
    z0, z1 = np.asarray(z0, dtype=np.float64).reshape(-1), np.asarray(z1, dtype=np.float64).reshape(-1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    out = (1.0 - t) * z0 + t * z1
    out[0], out[-1] = z0, z1
    return out


def slerp(z0: np.ndarray, z1: np.ndarray, n: int) -> np.ndarray:
    """n codes on the spherical path from z0 to z1 at evenly spaced angles, both ends included -> n x D.

    z(t) = sin((1 - t) w) / sin(w) z0 + sin(t w) / sin(w) z1, with w the angle between z0 and z1 (Shoemake 1985,
    "Animating rotation with quaternion curves"; White 2016, arXiv:1609.04468). For endpoints of equal norm every
    point keeps that norm; otherwise the norm moves smoothly between the two. Nearly parallel or opposite
    endpoints (sin w < SLERP_EPS) have no well-defined great circle, so the straight line is returned instead.
    """
    z0, z1 = np.asarray(z0, dtype=np.float64).reshape(-1), np.asarray(z1, dtype=np.float64).reshape(-1)
    norms = np.linalg.norm(z0) * np.linalg.norm(z1)
    if norms == 0:
        return lerp(z0, z1, n)
    cos = np.clip(np.dot(z0, z1) / norms, -1.0, 1.0)
    omega = np.arccos(cos)
    sin = np.sin(omega)
    if sin < SLERP_EPS:
        return lerp(z0, z1, n)
    t = np.linspace(0.0, 1.0, n)[:, None]
    out = (np.sin((1.0 - t) * omega) * z0 + np.sin(t * omega) * z1) / sin
    out[0], out[-1] = z0, z1
    return out


def pick_corners(
    mu: np.ndarray, seed: int | np.random.Generator = 0, subset: int = 2000, trim: float = 0.05
) -> np.ndarray:
    """Indices of three rows of mu far apart from each other, for the corners a, b, c of `three_point_grid`.

    Farthest-point selection (Gonzalez 1985, "Clustering to minimize the maximum intercluster distance") on at
    most `subset` rows drawn at random: a is the row farthest from a random start, b the row farthest from a,
    c the row farthest from both (largest distance to the nearer of the two). Rows whose distance from the mean
    code is in the top `trim` share are left out first: the very farthest codes are often odd frames (a blink, a
    motion-blurred turn, a bad crop) rather than the range of ordinary expressions the grid should span.
    `seed` is an int or a numpy Generator; the same seed always gives the same three rows.
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2 or len(mu) < 3:
        raise ValueError(f"mu must be N x D with N >= 3, got shape {mu.shape}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    spread = np.linalg.norm(mu - mu.mean(axis=0), axis=1)
    keep = np.flatnonzero(spread <= np.quantile(spread, 1.0 - trim))
    if len(keep) < 3:
        keep = np.arange(len(mu))
    if len(keep) > subset:
        keep = np.sort(rng.choice(keep, size=subset, replace=False))
    x = mu[keep]
    start = rng.integers(len(x))
    a = int(np.argmax(np.linalg.norm(x - x[start], axis=1)))
    d_a = np.linalg.norm(x - x[a], axis=1)
    b = int(np.argmax(d_a))
    nearer = np.minimum(d_a, np.linalg.norm(x - x[b], axis=1))
    nearer[[a, b]] = -1.0  # with duplicated rows every distance can be 0: never pick a or b twice
    c = int(np.argmax(nearer))
    return keep[[a, b, c]]


def path_smoothness(images: np.ndarray, n: int) -> dict[str, float]:
    """How evenly an n x n decoded grid (row-major, (n*n) x H x W x C) changes from cell to cell.

    Distances are L2 between images flattened to [0, 1] pixel vectors (uint8 is divided by 255). Over the 2n
    lines of the grid (every row and every column):

        smoothness   summed length of the lines' paths through their n cells, divided by the summed distance
                     between each line's two end cells: 1 when every line moves straight through pixel space
                     (a cross-fade), larger when it wanders: a sign of decoded cells that are no blend of their
                     neighbours
        max_step     the largest step between neighbouring cells of a line divided by that line's mean step,
                     the worst line's: 1 when every line spreads its change evenly, up to n - 1 when one step
                     carries all of it, as when a path crosses a hole in the latent space and the face jumps
        corner_distance  mean distance between the decodes of corners a-b and a-c: near 0 means the three
                     corners decode to one face (collapse), whatever the two ratios say

    Read the ratios only when corner_distance is well above ~0.1: below that the steps are mostly uint8 rounding
    (half a grey level on 12288 values) and the ratios are noise. For scale, two different frames of one person
    are typically several units apart.
    """
    x = np.asarray(images)
    x = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    if len(x) != n * n:
        raise ValueError(f"expected n*n = {n * n} images, got {len(x)}")
    x = x.reshape(n, n, -1)
    # Every row and every column of the grid as one line of n cells: 2n lines x (n - 1) steps.
    lines = np.concatenate([x, x.transpose(1, 0, 2)])
    steps = np.linalg.norm(np.diff(lines, axis=1), axis=2)
    ends = np.linalg.norm(lines[:, -1] - lines[:, 0], axis=1)
    tiny = 1e-12  # a grid of identical cells has no path to measure: report 1, as for a straight line
    mean_step = steps.mean(axis=1)
    moving = mean_step > tiny
    return {
        "smoothness": float(steps.sum() / ends.sum()) if ends.sum() > tiny else 1.0,
        "max_step": float(np.max(steps[moving].max(axis=1) / mean_step[moving])) if moving.any() else 1.0,
        "corner_distance": float((np.linalg.norm(x[0, -1] - x[0, 0]) + np.linalg.norm(x[-1, 0] - x[0, 0])) / 2),
    }


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
    model,
    encoded_corners: np.ndarray,
    prior_corners: np.ndarray,
    corner_images: np.ndarray | None = None,
    n: int = 8,
    strip_len: int = 10,
    *,
    path: str | Path,
    fitted_corners: np.ndarray | None = None,
    verdicts: dict[str, str] | None = None,
) -> dict[str, float]:
    """Save interpolation.png (150 dpi) and return how smoothly the decoded grids change.

    Left: the `three_point_grid` between three encoded held-out frames (3 x D posterior means), with the real
    crops (`corner_images`, uint8 3 x H x W x 3, optional) outside their corners. Beside it: the same between three
    prior draws (3 x D) and, given `fitted_corners`, between three draws of the sampler fitted to the training codes,
    side by side; `verdicts` (by "prior" and "fitted") adds a line to their titles. Below: `strip_len` steps from
    corner a to corner b of each, by lerp and by slerp.

    Returns, for the encoded (`_encoded`), prior (`_prior`) and fitted (`_fitted`) grids, the `path_smoothness`
    numbers as interp_smoothness, interp_max_step and interp_corner_distance, and the mean pixel distance between the
    lerp and slerp strips (interp_slerp_vs_lerp_*; 0 when the two paths decode alike).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    all_corners = {"encoded": encoded_corners, "prior": prior_corners, "fitted": fitted_corners}
    all_corners = {k: np.asarray(c, dtype=np.float64) for k, c in all_corners.items() if c is not None}
    for name, corners in all_corners.items():
        if corners.ndim != 2 or len(corners) != 3:
            raise ValueError(f"{name}_corners must be 3 x D, got shape {corners.shape}")
    verdicts = verdicts or {}

    grids, strips, stats = {}, {}, {}
    for kind, corners in all_corners.items():
        grids[kind] = decode_latents(model, three_point_grid(*corners, n=n).astype(np.float32))
        for key, value in path_smoothness(grids[kind], n).items():
            stats[f"interp_{key}_{kind}"] = value
        for how, fn in (("lerp", lerp), ("slerp", slerp)):
            strips[kind, how] = decode_latents(model, fn(corners[0], corners[1], strip_len).astype(np.float32))
        diff = strips[kind, "lerp"].astype(np.float64) - strips[kind, "slerp"]
        stats[f"interp_slerp_vs_lerp_{kind}"] = float(np.mean(np.linalg.norm(diff.reshape(strip_len, -1), axis=1)))
        stats[f"interp_slerp_vs_lerp_{kind}"] /= 255.0
    side = grids["encoded"].shape[1]

    kinds = list(all_corners)
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
    path = save_figure(fig, path, dpi=150, bbox_inches="tight")
    return stats
