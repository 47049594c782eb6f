"""Plain statistics of images and latent codes: reconstruction quality, latent usage, sample diversity.

Images come as arrays of N images of any shape (N x H x W x C or N x C x H x W) with values in [0, 1]; every
function flattens each image to one vector.
"""

from __future__ import annotations

import numpy as np

# nearest_neighbours works on reference blocks of at most this many values (64 MB as float32) and this many rows,
# against this many query rows at a time: a distance block is then at most 1024 x 4096 (16 MB).
BLOCK_VALUES = 2**24
BLOCK_ROWS = 4096
QUERY_ROWS = 1024


def _flat(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 1 or len(x) == 0:
        raise ValueError(f"{name} must hold at least one row, got shape {x.shape}")
    return x.reshape(len(x), -1)


def psnr(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio of each image pair, in dB: 10 log10(data_range^2 / MSE) -> (N,).

    MSE is over all pixels and channels of one image; identical images give inf.
    Reference: the usual definition, as in skimage.metrics.peak_signal_noise_ratio (per image, not per batch).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in shape: {x.shape} vs {y.shape}")
    mse = np.mean((_flat(x, "x") - _flat(y, "y")) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def active_units(mu: np.ndarray, threshold: float = 0.01) -> int:
    """Number of latent dimensions whose encoder mean varies over the data: Var_x(mu_d(x)) > threshold.

    A dimension the encoder ignores has a mean that stays put whatever the input (the posterior collapsed to
    the prior there). Reference: Burda, Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders",
    Sec. 5.2 (threshold 0.01).
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2:
        raise ValueError(f"mu must be N x D, got shape {mu.shape}")
    return int(np.sum(np.var(mu, axis=0) > threshold))


def kl_per_dim(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL(q(z_d|x) || N(0, 1)) per latent dimension, averaged over the N rows -> (D,), in nats.

    0.5 * (mu^2 + exp(logvar) - 1 - logvar) for a diagonal Gaussian posterior; the sum over dimensions is the
    KL term of the beta-VAE loss. Reference: Kingma & Welling 2014, "Auto-Encoding Variational Bayes", App. B.
    """
    mu, logvar = np.asarray(mu, dtype=np.float64), np.asarray(logvar, dtype=np.float64)
    if mu.shape != logvar.shape or mu.ndim != 2:
        raise ValueError(f"mu and logvar must both be N x D, got {mu.shape} and {logvar.shape}")
    return np.mean(0.5 * (mu**2 + np.exp(logvar) - 1.0 - logvar), axis=0)


def _pair_distances(a: np.ndarray, ia: np.ndarray, b: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Exact L2 distance between rows a[ia[k]] and b[ib[k]] for every k, in float64.

    A few thousand pairs at a time (~32 M values, 256 MB, whatever the image size) so the differences stay
    small in memory.
    """
    step = max(1, 2**25 // a.shape[1])
    out = np.empty(len(ia))
    for s in range(0, len(ia), step):
        d = a[ia[s : s + step]].astype(np.float64) - b[ib[s : s + step]]
        out[s : s + step] = np.sqrt(np.einsum("ij,ij->i", d, d))
    return out


def mean_pairwise_distance(x: np.ndarray, max_pairs: int = 20_000, seed: int = 0) -> float:
    """Mean L2 distance between two different rows of x (N x ..., flattened), a diversity measure.

    All N(N-1)/2 pairs when there are at most `max_pairs` of them; otherwise `max_pairs` pairs of distinct
    rows drawn uniformly with numpy's generator seeded by `seed`, so the same input always gives the same
    number.
    """
    x = _flat(x, "x")
    n = len(x)
    if n < 2:
        raise ValueError("need at least 2 rows for a pairwise distance")
    if n * (n - 1) // 2 <= max_pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, size=max_pairs)
        # An offset in 1..n-1 makes j uniform over the other rows, never i itself.
        j = (i + rng.integers(1, n, size=max_pairs)) % n
    return float(np.mean(_pair_distances(x, i, x, j)))


def nearest_neighbours(
    queries: np.ndarray, reference: np.ndarray, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the L2 distance to its nearest reference row and that row's index -> ((M,), (M,)).

    Images are flattened. exclude_self=True means queries and reference are the same rows (M == N) and row i
    may not match itself, e.g. the distance from each training frame to the next-closest training frame.

    Candidates come from float32 matrix products (|q|^2 + |r|^2 - 2 q.r) over blocks of both sets, so 1000
    queries against 15000 references of 64x64x3 never hold more than a few hundred MB; the winner's distance
    is then recomputed exactly in float64, because the expanded form loses the small distances that matter
    most (a sample that copies a training frame should read 0, not 0.02).
    """
    queries = _flat(queries, "queries")
    q = queries.astype(np.float32, copy=False)
    r = _flat(reference, "reference")
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} values per row but reference has {r.shape[1]}")
    if exclude_self and len(q) != len(r):
        raise ValueError("exclude_self needs queries and reference to be the same rows")
    if exclude_self and len(r) < 2:
        raise ValueError("exclude_self needs at least 2 rows")
    # Reference blocks are converted one at a time so a float64 or uint8 reference is never copied whole.
    r_step = max(1, min(BLOCK_ROWS, BLOCK_VALUES // r.shape[1]))
    q_step = QUERY_ROWS
    q_sq = np.einsum("ij,ij->i", q, q)
    best = np.full(len(q), np.inf, dtype=np.float32)
    index = np.zeros(len(q), dtype=np.int64)
    for rs in range(0, len(r), r_step):
        rb = r[rs : rs + r_step].astype(np.float32)
        rb_sq = np.einsum("ij,ij->i", rb, rb)
        for qs in range(0, len(q), q_step):
            rows = np.arange(qs, min(qs + q_step, len(q)))
            d2 = q_sq[qs : qs + q_step, None] + rb_sq[None, :] - 2.0 * (q[qs : qs + q_step] @ rb.T)
            if exclude_self:
                inside = (rows >= rs) & (rows < rs + len(rb))
                d2[inside.nonzero()[0], rows[inside] - rs] = np.inf
            arg = np.argmin(d2, axis=1)
            val = d2[np.arange(len(rows)), arg]
            better = val < best[rows]
            best[rows[better]] = val[better]
            index[rows[better]] = arg[better] + rs
    return _pair_distances(queries, np.arange(len(q)), r, index), index


def nearest_neighbour_distance(queries: np.ndarray, reference: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """L2 distance from each query row to its nearest reference row -> (M,); see `nearest_neighbours`."""
    return nearest_neighbours(queries, reference, exclude_self)[0]
