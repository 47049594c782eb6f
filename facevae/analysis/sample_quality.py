"""Sample quality against the held-out crops in a feature space of their own: every sampler scored the same way.

The features are `facevae.metrics.features.random_cnn_features` with a fixed seed (FEATURE_SEED): they need no
download, are not the judged model's encoder, and of the candidates measured they alone ranked every flawed set of
`facevae.metrics.degraded` as it should (docs/performance.md, "Sample quality"). A generated set is scored against
the held-out test crops; the reference is training crops in its place, at the same size, so each number reads
beside what new frames of the person reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facevae.analysis.samples import spread_indices
from facevae.metrics.features import random_cnn_features
from facevae.metrics.sample_quality import SampleQuality, SetScores, set_scores

FEATURE_SEED = 0  # one network for every evaluation, so scores of two checkpoints compare
N_BOOT = 200
# A set "looks like the real frames" when it reaches these shares of the real references (and the face rate).
GOOD_SHARE = 0.8
GOOD_FACE_SHARE = 0.95


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
