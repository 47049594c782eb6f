"""One generated set scored against held-out real crops, beside the same scores of a real set: the reference.

For every measure (`prdc`'s four and the Fréchet distance) three numbers: the value for the generated set, the
value for a real set in its place (training crops against the same held-out crops: what a perfect generator
reaches, since held-out frames are new frames of the same person), and a bootstrap 95% interval of the value
(for precision, recall, density and coverage the 2.5th and 97.5th percentiles over resamples,
`prdc_bootstrap`; for the Fréchet distance the bias-shifted interval of `frechet_bootstrap`). Sizes matter to
all five, so the caller gives the generated and the real set the same number of rows.

Sample quality against the held-out crops in a feature space of their own: every sampler scored the same way.

The features are `facevae.metrics.features.random_cnn_features` with a fixed seed (FEATURE_SEED): they need no
download, are not the judged model's encoder, and of the candidates measured they alone ranked every flawed set of
`facevae.metrics.degraded` as it should (docs/performance.md, "Sample quality"). A generated set is scored against
the held-out test crops; the reference is training crops in its place, at the same size, so each number reads
beside what new frames of the person reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facevae.metrics.features import random_cnn_features
from facevae.metrics.frechet import frechet_bootstrap
from facevae.metrics.prdc import DEFAULT_K, prdc_bootstrap
from facevae.metrics.samples import spread_indices

MEASURES = ("precision", "recall", "density", "coverage", "fd")
FEATURE_SEED = 0  # one network for every evaluation, so scores of two checkpoints compare
N_BOOT = 200
# A set "looks like the real frames" when it reaches these shares of the real references (and the face rate).
GOOD_SHARE = 0.8
GOOD_FACE_SHARE = 0.95


@dataclass(frozen=True)
class SetScores:
    """One set's measures against the held-out crops, with their 95% bootstrap intervals."""

    values: dict[str, float]
    ci: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class SampleQuality:
    """A generated set's scores beside a real set's: `as_metrics` gives metrics.json's keys."""

    generated: SetScores
    real: SetScores
    recon: SetScores | None = None  # the model's reconstructions of the real set: what its decoder reaches

    def as_metrics(self, prefix: str = "sample") -> dict[str, float | list[float]]:
        out: dict[str, float | list[float]] = {}
        for m in MEASURES:
            out[f"{prefix}_{m}"] = self.generated.values[m]
            out[f"{prefix}_{m}_real"] = self.real.values[m]
            out[f"{prefix}_{m}_ci"] = list(self.generated.ci[m])
            if self.recon is not None:
                out[f"{prefix}_{m}_recon"] = self.recon.values[m]
        return out


def set_scores(
    heldout: np.ndarray, generated: np.ndarray, k: int = DEFAULT_K, n_boot: int = 200, seed: int = 0
) -> SetScores:
    """PRDC and Fréchet distance of `generated` against `heldout` features (rows), with bootstrap intervals."""
    point, boots = prdc_bootstrap(heldout, generated, k, n_boot, seed)
    fd, fd_ci = frechet_bootstrap(heldout, generated, n_boot, seed)
    values = {**vars(point), "fd": fd}
    ci = {m: tuple(float(q) for q in np.percentile([getattr(b, m) for b in boots], [2.5, 97.5])) for m in vars(point)}
    return SetScores(values, {**ci, "fd": (float(fd_ci[0]), float(fd_ci[1]))})


@dataclass(frozen=True)
class QualityReference:
    """The held-out crops' features and a real set's scores against them: what every sampler is read against."""

    heldout: np.ndarray  # features of the held-out crops
    real: SetScores  # training crops in the generated set's place
    size: int  # rows of a generated set (the real set's size)
    seed: int


def quality_reference(train: np.ndarray, heldout: np.ndarray, n_samples: int, seed: int = 0) -> QualityReference:
    """Features of the held-out crops, and the scores of min(n_samples, len(train)) training crops against them."""
    size = min(int(n_samples), len(train))
    features = random_cnn_features(heldout, FEATURE_SEED)
    real = random_cnn_features(train[spread_indices(len(train), size)], FEATURE_SEED)
    return QualityReference(features, set_scores(features, real, n_boot=N_BOOT, seed=seed), size, seed)


def sample_quality(
    reference: QualityReference, samples: np.ndarray, train_recon: np.ndarray | None = None
) -> SampleQuality:
    """The first `reference.size` samples (uint8 crops) scored against the held-out crops, beside the reference.

    With `train_recon` (the model's reconstructions of every training crop, in order) also the scores of the
    reconstructions of the real set's crops: a sampler cannot beat its decoder on real codes, so a shortfall both
    share is the decoder's (blur), and one the samples alone show is the sampler's."""
    if len(samples) < reference.size:
        raise ValueError(f"need {reference.size} samples to compare with the real set, got {len(samples)}")
    scores = _scores(reference, samples[: reference.size])
    recon = None
    if train_recon is not None:
        recon = _scores(reference, train_recon[spread_indices(len(train_recon), reference.size)])
    return SampleQuality(scores, reference.real, recon)


def _scores(reference: QualityReference, images: np.ndarray) -> SetScores:
    features = random_cnn_features(images, FEATURE_SEED)
    return set_scores(reference.heldout, features, n_boot=N_BOOT, seed=reference.seed)


def verdict(
    face_rate: float,
    heldout_face_rate: float,
    precision: float,
    precision_real: float,
    recall: float,
    recall_real: float,
) -> str:
    """One line a figure's title can carry: do these samples look like the real frames, and if not, why not."""
    faults = []
    if face_rate < GOOD_FACE_SHARE * heldout_face_rate:
        faults.append("often not faces")
    if precision < GOOD_SHARE * precision_real:
        faults.append("unlike real frames")
    if recall < GOOD_SHARE * recall_real:
        faults.append("too little variety")
    return "samples like the real frames" if not faults else "FAILS: " + ", ".join(faults)
