"""Codes to decode: the paths, grids and rows through the latent space that the analyses and callbacks show.

Pure numpy on latent codes, no model: the model decodes what these return (facevae.models.inference).

- Interpolation (the seed proposal, Sullivan, "Analysis and Modification of Encoded Single User Facial Expression
  Data", section 2.2: "we will sample three points in the latent space and interpolate between them"): the plane
  between three codes (`three_point_grid`), corners far apart (`pick_corners`) or drawn from the prior
  (`prior_corners`), and single lines by `lerp` and `slerp` (White 2016, "Sampling Generative Networks",
  arXiv:1609.04468, section 2.1: a straight line between prior draws passes through codes of unusually small norm).
- Traversals (Higgins et al. 2017, "beta-VAE", ICLR, figure 1): one latent swept through its range in the data
  while the others keep a typical code (`traversal_latents`, `data_ranges`, `central_code`).
- The expression shift (Sullivan, section 2.2: "interpolate from other data points to the center of the smiling
  data points"): paths from non-smiling codes toward the smiles, to their centroid, along the smile normal, and
  by the smile's own step with the other factors held fixed (`factor_steps`; or the normal with their directions
  projected out: InterFaceGAN's conditional edit, Shen et al. 2020).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# Below this sine of the angle between two codes, slerp's 1/sin(omega) blows up rounding errors: use lerp.
SLERP_EPS = 1e-6


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


# -- traversals --------------------------------------------------------------------------------------------------------
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


# -- the expression shift ---------------------------------------------------------------------------------------------


def normal_step_length(normal: np.ndarray, centroid_smile: np.ndarray, centroid_other: np.ndarray) -> float:
    """(c_smile - c_other) . n / |n|: the gap between two centroids along n."""
    normal = np.asarray(normal, np.float64)
    return float(np.dot(np.asarray(centroid_smile) - np.asarray(centroid_other), normal / np.linalg.norm(normal)))


def separation_along(direction: np.ndarray, centroid_smile: np.ndarray, z_start: np.ndarray) -> np.ndarray:
    """How far each start code lies from the smiles along a direction: (c_smile - z) . u, u = direction / |direction|,
    never below 0 (N,): a path that travels this far ends level with the smiles' centroid along u."""
    unit = np.asarray(direction, np.float64) / np.linalg.norm(direction)
    return np.maximum((np.asarray(centroid_smile, np.float64) - np.asarray(z_start, np.float64)) @ unit, 0.0)


def latent_directions(z: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The direction along which each column of `values` (N x K: factors, or proxies such as the crop's place and
    brightness) moves the codes z (N x D): their covariance with it, as smiles.edit_direction takes the smile's
    from the class means -> K x D unit rows (a column that does not vary gives none)."""
    z, values = np.asarray(z, np.float64), np.asarray(values, np.float64)
    directions = (values - values.mean(axis=0)).T @ (z - z.mean(axis=0)) / len(z)
    norms = np.linalg.norm(directions, axis=1, keepdims=True)
    keep = norms[:, 0] > 0
    return directions[keep] / norms[keep]


def conditional_direction(normal: np.ndarray, others: np.ndarray) -> np.ndarray:
    """The smile normal with every direction in `others` (K x D) projected out, made unit length again.

    InterFaceGAN's conditional manipulation (Shen et al. 2020, "Interpreting the latent space of GANs for semantic
    face editing", section 2.2): moving along it changes the smile classifier's score while, to first order, the
    linear read-outs of the other factors stay as they were.
    """
    normal = np.asarray(normal, np.float64)
    basis, _ = np.linalg.qr(np.asarray(others, np.float64).T)  # D x K orthonormal columns spanning `others`
    rest = normal - basis @ (basis.T @ normal)
    norm = np.linalg.norm(rest)
    if norm < 1e-6 * np.linalg.norm(normal):
        raise ValueError("the smile normal lies within the other factors' directions: nothing is left of it")
    return rest / norm


def shift_paths(
    z_start: np.ndarray,
    *,
    steps: np.ndarray,
    target: np.ndarray | None = None,
    direction: np.ndarray | None = None,
    length: float | np.ndarray = 1.0,
) -> np.ndarray:
    """Latent paths from each start code, N x D -> N x S x D, one row per step t in `steps`.

    Give exactly one of `target` (D: z + t (target - z), so t=0 is z and t=1 is the target) or `direction`
    (D: z + t length u, u the direction scaled to unit length; `length` one number, or one per start code, such
    as `separation_along` gives).
    """
    z = np.asarray(z_start, np.float64)
    t = np.asarray(steps, np.float64)[None, :, None]
    if z.ndim != 2 or t.ndim != 3:
        raise ValueError(f"z_start must be N x D and steps 1-D, got {z.shape} and {np.shape(steps)}")
    if (target is None) == (direction is None):
        raise ValueError("give exactly one of target= or direction=")
    if target is not None:
        return z[:, None, :] + t * (np.asarray(target, np.float64) - z)[:, None, :]
    unit = np.asarray(direction, np.float64)
    unit = unit / np.linalg.norm(unit)
    length = np.broadcast_to(np.asarray(length, np.float64), (len(z),))[:, None, None]
    return z[:, None, :] + t * length * unit[None, None, :]


def factor_steps(z: np.ndarray, values: np.ndarray) -> np.ndarray:
    """How far the codes z (N x D) move per unit of each column of `values` (N x K) with the other columns held
    fixed: the coefficients of the least-squares regression of z on all the columns at once -> K x D.

    Unlike `latent_directions`, a column is not credited with what another one that happens to move with it does:
    in a few minutes of video the smiles fall, by chance, on brighter or lower stretches, and the smile's own
    column then keeps only its own share. Row k times a change of column k is a conditional edit in the sense of
    Shen et al. 2020 (InterFaceGAN, section 2.2): the change that column makes with the others as they were.
    """
    z, values = np.asarray(z, np.float64), np.asarray(values, np.float64)
    if values.ndim != 2 or len(values) != len(z) or len(z) <= values.shape[1] + 1:
        raise ValueError(f"need more rows than columns + 1 in values {values.shape} for codes {z.shape}")
    design = values - values.mean(axis=0)
    coef, *_ = np.linalg.lstsq(design, z - z.mean(axis=0), rcond=None)
    return coef


@dataclass
class ShiftTarget:
    """Where the paths go: the smiles' centroid, the smile classifier's unit normal, and for the conditional path
    either the step a smile makes with the other factors held fixed (D, `factor_steps` times the gap in smile
    between the groups) or the other factors' directions (K x D, `latent_directions`) to project out of the normal
    (neither: no conditional path)."""

    centroid_smile: np.ndarray
    normal: np.ndarray
    others: np.ndarray | None = None
    conditional_step: np.ndarray | None = None

    def directions(self) -> dict[str, np.ndarray]:
        kinds = {"normal": np.asarray(self.normal, np.float64)}
        if self.conditional_step is None and self.others is not None and len(self.others):
            try:
                kinds["conditional"] = conditional_direction(self.normal, self.others)
            except ValueError as err:  # as many other directions as latents (a small model): no conditional edit
                log.info("no conditional shift path: %s", err)
        return kinds


def shift_latent_paths(mu_start: np.ndarray, target: ShiftTarget, steps: np.ndarray) -> tuple[dict, dict, np.ndarray]:
    """Each kind's paths (N x S x D) and lengths (N,), and the codes at the shortest kind's distance (kind -> N x D)."""
    paths = {"centroid": shift_paths(mu_start, steps=steps, target=target.centroid_smile)}
    lengths = {"centroid": np.linalg.norm(np.asarray(target.centroid_smile) - mu_start, axis=1)}
    for kind, direction in target.directions().items():
        lengths[kind] = separation_along(direction, target.centroid_smile, mu_start)
        paths[kind] = shift_paths(mu_start, steps=steps, direction=direction, length=lengths[kind])
    step = None if target.conditional_step is None else np.asarray(target.conditional_step, np.float64)
    if step is not None and np.linalg.norm(step) > 0:
        lengths["conditional"] = np.full(len(mu_start), np.linalg.norm(step))
        paths["conditional"] = shift_paths(mu_start, steps=steps, direction=step, length=lengths["conditional"])
    equal = np.min(np.stack(list(lengths.values())), axis=0)  # the same distance from the start on every kind
    at_equal = {}
    for kind, length in lengths.items():
        t = np.divide(equal, length, out=np.zeros_like(equal), where=length > 0)[:, None]
        at_equal[kind] = mu_start + t * (paths[kind][:, -1] - mu_start)
    return paths, lengths, at_equal
