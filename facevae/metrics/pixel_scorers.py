"""Judges of decoded faces fitted on real crops: pixel models of the smile (and of the other factors).

The expression shift is judged by these, not by the VAE itself: a ridge regression of a continuous smile factor
(`fit_smile_regressor`, Hoerl and Kennard 1970), a logistic regression where only smile/non-smile labels exist
(`fit_smile_classifier`), and a regressor per other factor (`fit_factor_regressors`), to see what else moved. Each
reports its score on whole time blocks it was not fitted on, the reference for how far to trust it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURE_SIZE = 32  # pixel models see 32x32 grayscale: enough for the mouth's shape, few enough weights to fit
HELDOUT_FRACTION = 0.2
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4)
LOGISTIC_CS = (1e-4, 1e-3, 1e-2)
ImageScorer = Callable[[np.ndarray], np.ndarray]


def pixel_features(images: np.ndarray, size: int = FEATURE_SIZE) -> np.ndarray:
    """uint8 N x H x W x 3 crops -> N x size*size float32 grayscale in [0, 1], area-averaged down to size x size.

    Averaging blurs away pixel-level detail, which the VAE's decoder cannot reproduce either: a model of sharp
    crops then judges the decoder's smooth images on the features both share.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected N x H x W x 3 images, got shape {images.shape}")
    gray = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0  # ITU-R BT.601 luma
    n, h, w = gray.shape
    if h % size == 0 and w % size == 0:
        small = gray.reshape(n, size, h // size, size, w // size).mean(axis=(2, 4))
    else:
        small = np.stack([cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA) for g in gray]) if n else gray
    return small.reshape(n, -1)


@dataclass
class PixelScorer:
    """A pixel model of one quantity, callable on uint8 crops: images -> N predicted values (or probabilities).

    heldout_score is measured on time blocks the model was not fitted on: R^2 for a regressor, ROC AUC for a
    classifier. target_sd is the spread of the fitted values (the factor's standard deviation, or 1 for labels),
    the unit for "how much did it change". The model used afterwards is refitted on all frames.
    """

    model: Pipeline
    kind: str
    heldout_score: float
    target_sd: float
    feature_size: int = FEATURE_SIZE

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = pixel_features(images, self.feature_size)
        if self.kind == "classifier":
            return self.model.predict_proba(x)[:, 1]
        return self.model.predict(x)


def _blocks_or_chunks(n: int, blocks: np.ndarray | None) -> np.ndarray:
    """Time blocks, or without them ten contiguous chunks of the rows (crops are stored in time order)."""
    if blocks is None:
        return np.arange(n) * 10 // max(n, 1)
    blocks = np.asarray(blocks)
    if blocks.shape != (n,):
        raise ValueError(f"blocks must have one entry per image ({n}), got shape {blocks.shape}")
    return blocks


def _heldout_rows(blocks: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices: a random HELDOUT_FRACTION of the blocks, whole, is held out.

    Neighbouring frames are near-copies, so frames held out one by one would flatter the model.
    """
    ids = np.unique(blocks)
    if len(ids) < 2:
        raise ValueError("need at least 2 time blocks to hold some out")
    held = np.random.default_rng(seed).permutation(ids)[: max(1, round(HELDOUT_FRACTION * len(ids)))]
    test = np.isin(blocks, held)
    return np.flatnonzero(~test), np.flatnonzero(test)


def _fit_by_blocks(estimator: Pipeline, grid: dict, x: np.ndarray, y: np.ndarray, blocks: np.ndarray) -> Pipeline:
    """The classifier refitted with the grid value that scores best over folds of whole blocks; the folds keep
    both classes on each side, so no fit fails for want of one."""
    n_folds = min(3, *(len(np.unique(blocks[y == c])) for c in np.unique(y)))
    if n_folds < 2:
        return estimator.fit(x, y)
    folds = list(StratifiedGroupKFold(n_folds).split(x, y, blocks))
    return GridSearchCV(estimator, grid, cv=folds).fit(x, y).best_estimator_


def _ridge() -> Pipeline:
    # Standardised pixels so that one penalty suits dark and bright regions alike. RidgeCV picks the penalty by
    # generalised cross-validation from one decomposition, ~30x faster than a grid over block folds; its
    # leave-one-out view favours small penalties on near-duplicate frames, but the held-out R^2 is measured on
    # whole unseen blocks, so that bias cannot flatter the reported score.
    return make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))


def _logistic() -> tuple[Pipeline, dict]:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), {"logisticregression__C": LOGISTIC_CS}


def _fit_regressor(x: np.ndarray, y: np.ndarray, blocks: np.ndarray, seed: int) -> PixelScorer:
    train, test = _heldout_rows(blocks, seed)
    r2 = float(r2_score(y[test], _ridge().fit(x[train], y[train]).predict(x[test])))
    return PixelScorer(_ridge().fit(x, y), "regressor", r2, float(np.std(y)))


def fit_smile_regressor(
    images: np.ndarray, smile_values: np.ndarray, blocks: np.ndarray | None = None, seed: int = 0
) -> PixelScorer:
    """A ridge regression of a continuous smile factor on 32x32 grayscale pixels of real crops -> PixelScorer.

    Ridge (Hoerl and Kennard 1970) on standardised pixels, its penalty picked by generalised cross-validation.
    On the 180 s demo video (1440 crops, 5 s blocks) it reaches a held-out R^2 of 0.95, where a random forest and
    gradient-boosted trees on the same pixels reach 0.41 and 0.43: a smile is a smooth, nearly linear change of
    the mouth's pixels, while trees split on single pixels that move with the head.

    `heldout_score` is the R^2 on a random fifth of the blocks (or, without `blocks`, of ten contiguous chunks)
    left out of that fit; the returned model is then fitted on every frame given. Pass the training split's
    crops so that frames the VAE is tested on never train the judge.
    """
    x = pixel_features(images)
    y = np.asarray(smile_values, np.float64)
    if y.shape != (len(x),):
        raise ValueError(f"smile_values must have one value per image ({len(x)}), got shape {y.shape}")
    return _fit_regressor(x, y, _blocks_or_chunks(len(x), blocks), seed)


def fit_smile_classifier(
    images: np.ndarray, labels: np.ndarray, blocks: np.ndarray | None = None, seed: int = 0
) -> PixelScorer:
    """A logistic regression of smile (1) vs not (0) on 32x32 grayscale pixels -> PixelScorer giving P(smile).

    For when only labels exist (smiles from a separate clip or photo folder). Penalty picked by 3-fold
    cross-validation over whole blocks; `heldout_score` is the ROC AUC on held-out blocks, as in
    `fit_smile_regressor`. A separate smile set was filmed at another time, so give it block ids of its own
    (smile_analysis.disjoint_blocks) and remember the classifier may also learn that session's light or framing.
    """
    x = pixel_features(images)
    y = np.asarray(labels).astype(np.int64)
    if y.shape != (len(x),) or not set(np.unique(y).tolist()) == {0, 1}:
        raise ValueError("labels must be 0/1, one per image, with both classes present")
    blocks = _blocks_or_chunks(len(x), blocks)
    auc = float("nan")
    if min(len(np.unique(blocks[y == c])) for c in (0, 1)) >= 2:
        # One fold of five, both classes on each side, is held out: a short smile set may span only a few groups.
        train, test = next(StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(x, y, blocks))
        if len(np.unique(y[test])) == 2:
            held = _fit_by_blocks(*_logistic(), x[train], y[train], blocks[train])
            auc = float(roc_auc_score(y[test], held.predict_proba(x[test])[:, 1]))
    return PixelScorer(_fit_by_blocks(*_logistic(), x, y, blocks), "classifier", auc, 1.0)


def fit_factor_regressors(
    images: np.ndarray,
    factors: np.ndarray,
    names: Sequence[str],
    blocks: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, PixelScorer]:
    """One ridge pixel regressor per factor column (N x K, named by `names`) -> {name: PixelScorer}.

    Used to measure what else a smile shift changes (head pose, light, gaze...). Check each heldout_score
    (R^2): a factor the pixels barely predict (a crop re-centred on the face hides the face's place in the
    frame) cannot show a change either.
    """
    x = pixel_features(images)
    factors = np.asarray(factors, np.float64)
    if factors.shape != (len(x), len(names)):
        raise ValueError(f"factors must be N x K = {len(x)} x {len(names)}, got {factors.shape}")
    blocks = _blocks_or_chunks(len(x), blocks)
    return {name: _fit_regressor(x, factors[:, i], blocks, seed) for i, name in enumerate(names)}
