"""How evenly a decoded interpolation changes: the seed proposal's check of sample quality and mode collapse.

Sullivan, "Analysis and Modification of Encoded Single User Facial Expression Data", section 2.2: "we will sample
three points in the latent space and interpolate between them to verify sample quality and check for mode
collapse". A healthy model shows a face in every cell of the grid, changing gradually; a collapsed one the same face
everywhere (corner distance near 0), and a latent space with holes a sudden jump (a large max step). The reference
for smoothness is a straight cross-fade (1); lerp against slerp compares the two ways along a line (White 2016,
"Sampling Generative Networks", arXiv:1609.04468, section 2.1): 0 when both decode alike.
"""

from __future__ import annotations

import numpy as np


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


def interpolation_scores(
    grids: dict[str, np.ndarray], strips: dict[tuple[str, str], np.ndarray], n: int
) -> dict[str, float]:
    """For each kind of corners (`grids` by kind, n x n decoded cells; `strips` by (kind, "lerp"|"slerp"), a line
    of decoded steps): the `path_smoothness` numbers as interp_smoothness_<kind>, interp_max_step_<kind> and
    interp_corner_distance_<kind>, and the mean pixel distance (0-1 pixels) between the lerp and slerp strips as
    interp_slerp_vs_lerp_<kind>."""
    stats = {}
    for kind, grid in grids.items():
        for key, value in path_smoothness(grid, n).items():
            stats[f"interp_{key}_{kind}"] = value
        strip_len = len(strips[kind, "lerp"])
        diff = strips[kind, "lerp"].astype(np.float64) - strips[kind, "slerp"]
        stats[f"interp_slerp_vs_lerp_{kind}"] = float(np.mean(np.linalg.norm(diff.reshape(strip_len, -1), axis=1)))
        stats[f"interp_slerp_vs_lerp_{kind}"] /= 255.0
    return stats
