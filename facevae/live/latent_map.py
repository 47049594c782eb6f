"""The live view's latent map: a plane through the training crops' mu, fitted once per checkpoint and cached.

The plane is a linear projection of mu: PCA's two principal axes, the two most used latents, or (where the
training data knows the smile) the direction from other faces to smiles against the main axis of the rest. It is
fitted on the training split's crops and cached beside the checkpoint as `<ckpt>.live-projection.npz`, keyed on the
checkpoint's content, so a rewritten `last.ckpt` is fitted again.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from facevae.core.checkpoint import TrainedRun
from facevae.core.errors import FaceVAEError
from facevae.core.files import atomic_file, file_identity
from facevae.data.from_checkpoint import datamodule_for
from facevae.metrics.smile_labels import smile_labels_from_factor
from facevae.metrics.smiles import smile_direction
from facevae.models.inference import encode_images

log = logging.getLogger(__name__)

PROJECTIONS = ("auto", "pca", "active", "smile")
MAP_FORMAT = 1  # part of the cache key: bump it when what the cached file holds changes


@dataclass
class LatentMap:
    """A linear map from latents to the view's plane, and the training crops on that plane."""

    method: str
    mean: np.ndarray  # (D,) subtracted before projecting
    axes: np.ndarray  # (2, D): the plane's x and y directions in latent space
    axis_names: tuple[str, str]
    train_xy: np.ndarray  # (N, 2) the training crops' mu on the plane
    smile: np.ndarray | None  # (N,) their smile factor, when the training data has one
    mu_mean: np.ndarray  # (D,) each latent's mean and sd over the training crops, drawn behind the bars
    mu_std: np.ndarray

    def project(self, mu: np.ndarray) -> np.ndarray:
        return (mu - self.mean) @ self.axes.T


def latent_map_path(ckpt_path: Path) -> Path:
    return ckpt_path.with_name(f"{ckpt_path.stem}.live-projection.npz")


def load_latent_map(run: TrainedRun, method: str, data_overrides: dict | None = None) -> tuple[LatentMap, bool]:
    """The checkpoint's latent map and whether it came from the cache beside the checkpoint.

    The cache is keyed on the checkpoint file's content and the method: a checkpoint written over (a resumed run's
    last.ckpt) or another projection refits it.
    """
    if method not in PROJECTIONS:
        raise FaceVAEError(f"projection={method}: must be one of {', '.join(PROJECTIONS)}")
    path = latent_map_path(run.path)
    key = f"{file_identity(run.path)}:{method}:{MAP_FORMAT}"
    cached = _read_map(path, key)
    if cached is not None:
        log.info("reusing the latent map cached at %s", path)
        return cached, True
    latent_map = fit_latent_map(run, method, data_overrides)
    _write_map(path, key, latent_map)
    return latent_map, False


def fit_latent_map(run: TrainedRun, method: str, data_overrides: dict | None = None) -> LatentMap:
    """Encode the training split's crops and fit the plane on their mu."""
    try:
        dm = datamodule_for(run, data_overrides)
    except FaceVAEError as err:
        raise FaceVAEError(
            f"{err} (the live view's latent map is fitted once on the training crops: point data.video= and "
            "data.cache_dir= at them)"
        ) from None
    log.info("fitting the latent map (%s) on %d training crops", method, len(dm.rows("train")))
    mu, _ = encode_images(run.model, dm.images("train"))
    smile = dm.factors("train")[:, dm.factor_names.index("smile")] if "smile" in dm.factor_names else None
    if method == "auto":
        # PCA's plane is mostly pose and light: where smiles are known, put them on x so a smile moves the point.
        method = "smile" if smile is not None and _has_both_groups(smile) else "pca"
    return latent_map_from(mu, method, smile)


def _has_both_groups(smile: np.ndarray) -> bool:
    labels = smile_labels_from_factor(smile)
    return min((labels == 1).sum(), (labels == 0).sum()) >= 2


def latent_map_from(mu: np.ndarray, method: str, smile: np.ndarray | None = None) -> LatentMap:
    """The plane through the training crops' mu (N x D) that `method` names.

    pca: their two principal axes. active: the two latents whose mu varies most (a beta-VAE's most used ones).
    smile: x along the direction from other faces to smiles (needs the smile factor), y the first principal axis
    of what is left; the point then moves sideways with a smile, whatever else varies more.
    """
    mu = np.asarray(mu, np.float64)
    dim = mu.shape[1]
    if method == "pca":
        axes, names = _principal_axes(mu, 2)
    elif method == "active":
        top = np.argsort(mu.var(axis=0))[::-1][:2]
        axes, names = np.eye(dim)[top], [f"z{i}" for i in top]
    elif method == "smile":
        normal = _smile_axis(mu, smile)
        rest = mu - np.outer(mu @ normal, normal)
        second, second_name = _principal_axes(rest, 1)
        axes, names = np.vstack([normal, second]), ["towards smiles", *second_name]
    else:
        raise FaceVAEError(f"projection={method}: must be one of {', '.join(PROJECTIONS)}")
    # One latent (or one crop) gives a line: the plane's y stays at zero.
    axes = np.vstack([axes, np.zeros((2 - len(axes), dim))])
    names = (names + ["-"])[:2]
    mean = mu.mean(axis=0)
    return LatentMap(
        method=method,
        mean=mean,
        axes=axes,
        axis_names=(names[0], names[1]),
        train_xy=(mu - mean) @ axes.T,
        smile=None if smile is None else np.asarray(smile, np.float64),
        mu_mean=mean,
        mu_std=mu.std(axis=0),
    )


def _principal_axes(mu: np.ndarray, n: int) -> tuple[np.ndarray, list[str]]:
    pca = PCA(n_components=min(n, *mu.shape), random_state=0).fit(mu)
    names = [f"PC{i + 1} ({100 * r:.0f}% of variance)" for i, r in enumerate(pca.explained_variance_ratio_)]
    return pca.components_, names


def _smile_axis(mu: np.ndarray, smile: np.ndarray | None) -> np.ndarray:
    """evaluate.py's smile direction: the normal of a logistic regression between smiles (> 0.5) and others (< 0.2)."""
    if smile is None:
        raise FaceVAEError("projection=smile: the training data has no smile factor (a <video>.factors.csv with one)")
    labels = smile_labels_from_factor(smile)
    if min((labels == 1).sum(), (labels == 0).sum()) < 2:
        raise FaceVAEError("projection=smile: the training crops need at least two smiles and two other faces")
    normal, _, _ = smile_direction(mu[labels >= 0], labels[labels >= 0])
    return normal


def _read_map(path: Path, key: str) -> LatentMap | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key"]) != key:
                log.info("%s was fitted for another checkpoint or projection: fitting it again", path)
                return None
            return LatentMap(
                method=str(f["method"]),
                mean=f["mean"],
                axes=f["axes"],
                axis_names=tuple(str(n) for n in f["axis_names"]),
                train_xy=f["train_xy"],
                smile=f["smile"] if "smile" in f.files else None,
                mu_mean=f["mu_mean"],
                mu_std=f["mu_std"],
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        log.warning("%s is unreadable (%s): fitting the latent map again", path, err)
        return None


def _write_map(path: Path, key: str, m: LatentMap) -> None:
    """Write to a temporary name and rename: a reader never sees half a file. A read-only folder only warns."""
    arrays = {
        "key": np.array(key),
        "method": np.array(m.method),
        "mean": m.mean,
        "axes": m.axes,
        "axis_names": np.array(m.axis_names),
        "train_xy": m.train_xy,
        "mu_mean": m.mu_mean,
        "mu_std": m.mu_std,
    }
    if m.smile is not None:
        arrays["smile"] = m.smile
    try:
        with atomic_file(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(f, **arrays)
        log.info("cached the latent map at %s", path)
    except OSError as err:
        log.warning("could not cache the latent map at %s (%s): it is fitted again next time", path, err)
