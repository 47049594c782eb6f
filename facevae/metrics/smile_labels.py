"""Which frames of the user's own video smile, when only a separate set of smiles (and perhaps of neutral faces)
is labelled; and an independent smile detector to check any such labels against.

A selfie video holds smiles of its own. Taking all of its frames as "not smiling" puts those smiles on the wrong
side of every comparison, so the video's frames are labelled first, from pixels of the mouth region of the crops
(the VAE plays no part, so the labels do not depend on the model being judged):

- `label_by_pu`: positive-unlabelled learning in two steps (Liu et al. 2003, "Building text classifiers using
  positive and unlabeled examples"). First a strongly penalised classifier of "in the smiles set" against "in the
  video" ranks the video's frames by how much they look like the set; the frames ranked below nearly every
  held-out smile of the set (its 2nd percentile) are reliable non-smiles. Then a classifier of the smiles set
  against those frames gives each frame P(smile). A frame is smiling from SMILING_AT up, not smiling below
  NOT_SMILING_BELOW, and neither in between. A one-step correction (Elkan and Noto 2008: divide P(in the set) by
  its mean over the set) ranked as well on the demo but depends on that classifier's calibration: with 14 photos
  it called no frame of the video smiling or nearly all.
- `label_by_classifier`: with a set of neutral faces as well, an ordinary classifier of smiles against them.

On the 180 s demo, with a 20 s clip of broad smiles: the video's frames ranked at an ROC AUC of 0.99 against its
true smile factor (> 0.5 against < 0.2); 348 called smiling, 99% of them truly > 0.5; 1011 not smiling, 92% of
them truly < 0.5 and none above 0.75. With a 9 s clip: AUC 0.98, 95% of the non-smiling truly < 0.5, none above
0.75. With 14 photos: AUC 0.88; 85% of the non-smiling truly < 0.5, 7% above 0.75. With the 14 photos and 12
neutral ones: AUC 1.0, all of the non-smiling truly < 0.2.

Both score out of fold: each frame by a classifier fitted without its own group of time (facevae.data.split.
cv_groups), since a frame scored by a model that trained on it would be pushed toward its own label.

`smile_cascade_votes` counts the windows in which OpenCV's smile cascade (`haarcascade_smile.xml`, Viola and
Jones 2001) fires over the mouth region: a graded score that owes nothing to the labels or the VAE. On the demo's
aligned crops it separates smile factor > 0.5 from < 0.2 at an ROC AUC of 0.93.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

SMILING_AT, NOT_SMILING_BELOW = 0.5, 0.05
RELIABLE_QUANTILE = 0.02  # frames ranked below this share of the held-out smiles are reliable non-smiles
SMILE, NOT_SMILING, NEITHER = 1, 0, -1
# The mouth region of an aligned (or box) crop, as shares of its side: rows, then columns.
MOUTH_ROWS, MOUTH_COLS = (0.5, 0.95), (0.12, 0.88)
SMILE_CASCADE = "haarcascade_smile.xml"


@dataclass
class SmileLabels:
    """Labels of a video's frames: 1 smiling, 0 not smiling, -1 neither, with each frame's P(smile) and the rule."""

    labels: np.ndarray
    probability: np.ndarray
    rule: str  # in words, for metrics.json and figure titles
    smile_share: float | None = None  # the share of the video's frames called smiling

    @property
    def n_smiling(self) -> int:
        return int(np.sum(self.labels == SMILE))

    @property
    def n_not_smiling(self) -> int:
        return int(np.sum(self.labels == NOT_SMILING))


def mouth_features(images: np.ndarray) -> np.ndarray:
    """uint8 N x H x W x 3 crops -> N x F: the mouth region in grey at 32 x 32, each image standardised alone.

    Standardising each image removes its brightness and contrast, which differ between recordings.
    """
    images = np.asarray(images)
    grey = np.stack(
        [cv2.resize(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA) for im in images]
    )
    rows, cols = (slice(round(a * 32), round(b * 32)) for a, b in (MOUTH_ROWS, MOUTH_COLS))
    x = grey[:, rows, cols].reshape(len(images), -1).astype(np.float64)
    return (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-6)


def _ranker(n_rows: int) -> Pipeline:
    # Many pixels, few frames of the set: PCA and a strong penalty keep the ranking smooth.
    return make_pipeline(
        StandardScaler(), PCA(min(50, n_rows // 2), random_state=0), LogisticRegression(C=1e-3, max_iter=2000)
    )


def _classifier(n_rows: int) -> Pipeline:
    # Balanced classes: P(smile) = 0.5 at the boundary whatever the sizes of the two sets.
    return make_pipeline(
        StandardScaler(),
        PCA(min(20, n_rows // 2), random_state=0),
        LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"),
    )


def out_of_fold_probability(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, model=_classifier, n_folds: int = 5
) -> np.ndarray:
    """P(y = 1 | x) for every row from a classifier fitted on the other groups. No more folds than either class
    has groups, so StratifiedGroupKFold leaves both classes in every training part."""
    n_folds = min(n_folds, *(len(np.unique(groups[y == c])) for c in (0, 1)))
    if n_folds < 2:
        raise ValueError("each class needs at least 2 groups to be scored out of fold")
    p = np.zeros(len(y))
    for train, test in StratifiedGroupKFold(n_folds, shuffle=True, random_state=0).split(x, y, groups):
        p[test] = model(len(train)).fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    return p


def _label(probability: np.ndarray, rule: str) -> SmileLabels:
    labels = np.full(len(probability), NEITHER, np.int64)
    labels[probability >= SMILING_AT] = SMILE
    labels[probability < NOT_SMILING_BELOW] = NOT_SMILING
    return SmileLabels(labels, probability, rule)


def label_by_pu(
    video: np.ndarray, smiles: np.ndarray, video_groups: np.ndarray, smile_groups: np.ndarray
) -> SmileLabels:
    """Label the video's crops from a separate set of smiling crops: positive-unlabelled, in two steps.

    `*_groups` are cross-validation groups (facevae.data.split.cv_groups), numbered apart from each other here.
    """
    x = mouth_features(np.concatenate([smiles, video]))
    s = np.r_[np.ones(len(smiles), np.int64), np.zeros(len(video), np.int64)]
    groups = np.r_[np.asarray(smile_groups), np.asarray(video_groups) + np.max(smile_groups) + 1]
    likeness = out_of_fold_probability(x, s, groups, _ranker)
    reliable = (s == 0) & (likeness < np.quantile(likeness[s == 1], RELIABLE_QUANTILE))
    if reliable.sum() < 2 or len(np.unique(groups[reliable])) < 2:
        raise ValueError("no frame of the video looks unlike the smiles set")
    kept = (s == 1) | reliable
    probability = np.empty(len(s))
    # The reliable non-smiles out of fold; every other frame by a classifier of all the kept ones.
    probability[kept] = out_of_fold_probability(x[kept], s[kept], groups[kept])
    if (~kept).any():
        probability[~kept] = _classifier(kept.sum()).fit(x[kept], s[kept]).predict_proba(x[~kept])[:, 1]
    rule = (
        f"P(smile) >= {SMILING_AT:g}, not smiling < {NOT_SMILING_BELOW:g}: the smiles set against the video's "
        f"{int(reliable.sum())} least smile-like frames (two-step PU)"
    )
    labels = _label(probability[s == 0], rule)
    labels.smile_share = labels.n_smiling / len(video)
    return labels


def label_by_classifier(video: np.ndarray, smiles: np.ndarray, neutral: np.ndarray) -> SmileLabels:
    """Label the video's crops by a classifier of a smiles set against a neutral set (both apart from the video)."""
    x = mouth_features(np.concatenate([smiles, neutral]))
    y = np.r_[np.ones(len(smiles), np.int64), np.zeros(len(neutral), np.int64)]
    model = _classifier(len(y)).fit(x, y)
    probability = model.predict_proba(mouth_features(video))[:, 1]
    rule = f"P(smile) >= {SMILING_AT:g}, not smiling < {NOT_SMILING_BELOW:g}: the smiles set against the neutral set"
    labels = _label(probability, rule)
    labels.smile_share = labels.n_smiling / len(video)
    return labels


def smile_cascade_votes(images: np.ndarray, upscale: int = 2) -> np.ndarray:
    """How many windows of OpenCV's smile cascade fire over each crop's mouth region (N,) -> a graded smile score.

    The lower half of the crop, 6% in from each side, enlarged `upscale` times and histogram-equalised; every
    window the cascade accepts counts, ungrouped (grouping with any min_neighbors leaves one box on every face).
    """
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + SMILE_CASCADE)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's {SMILE_CASCADE} could not be loaded (is opencv-python >= 4.8, < 5 installed?)")
    votes = np.zeros(len(images), np.int64)
    for i, image in enumerate(np.asarray(images)):
        side = image.shape[0]
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[side // 2 :, round(0.06 * side) : round(0.94 * side)]
        grey = cv2.equalizeHist(cv2.resize(grey, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC))
        min_size = (round(0.3 * side * upscale), round(0.15 * side * upscale))
        votes[i] = len(cascade.detectMultiScale(grey, scaleFactor=1.05, minNeighbors=0, minSize=min_size))
    return votes


def cascade_agreement(labels: np.ndarray, votes: np.ndarray) -> float | None:
    """ROC AUC of the smile cascade's votes for the frames labelled smiling against those labelled not smiling:
    1 when the cascade ranks every smile above every non-smile, 0.5 when it ignores the labels; None without both."""
    labels, votes = np.asarray(labels), np.asarray(votes)
    known = labels >= 0
    if len(np.unique(labels[known])) < 2:
        return None
    return float(roc_auc_score(labels[known] == SMILE, votes[known]))


def smile_labels_from_factor(smile: np.ndarray, threshold: float = 0.5, neutral_below: float = 0.2) -> np.ndarray:
    """Per-frame labels from a continuous smile factor: 1 smiling (> threshold), 0 not (< neutral_below), -1 neither.

    The band in between is left out (-1) so that half-smiles, which belong to neither group, do not blur the
    grouping metrics. On the demo video's factor (module docstring of facevae.data.synthetic) a frown is negative
    and so counts as not smiling.
    """
    smile = np.asarray(smile, dtype=np.float64)
    if neutral_below > threshold:
        raise ValueError(f"neutral_below={neutral_below} must not exceed threshold={threshold}")
    labels = np.full(smile.shape, NEITHER, dtype=np.int64)
    labels[smile > threshold] = SMILE
    labels[smile < neutral_below] = NOT_SMILING
    return labels
