"""Disentanglement metrics as plain functions of arrays.

Every function takes the encoder means `mu` (N x D, one row per frame) and the
factors (N x K, one column per factor). The supervised metrics follow google-research/disentanglement_lib
(`evaluation/metrics/{mig,sap_score,dci,utils}.py`); the unsupervised ones, which need no factors, are in
facevae.metrics.unsupervised. Deviations are named in each docstring.

Our rows come from one video in time order, so neighbouring frames are near copies. Metrics that need held-out
data therefore split the rows into contiguous blocks (first `train_fraction` trains, the rest tests) rather
than at random, which would put near-duplicates on both sides and flatter the score.

Dead latent dimensions (constant columns) and constant factors never produce NaN or a crash: a dead dimension
carries no information, and a constant factor has nothing to explain, so it is left out of the mean over
factors.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from scipy.stats import entropy
from sklearn.base import ClassifierMixin
from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC

log = logging.getLogger(__name__)

# A column whose variance is below this is treated as dead (disentanglement_lib's SAP uses the same bound).
_DEAD_VAR = 1e-12


def _as_2d(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be N x K, got shape {a.shape}")
    if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _check_rows(mu: np.ndarray, factors: np.ndarray) -> None:
    if mu.shape[0] != factors.shape[0]:
        raise ValueError(f"mu has {mu.shape[0]} rows but factors has {factors.shape[0]}")


def _split(n: int, train_fraction: float) -> int:
    """Index of the first test row of a contiguous train/test split."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    cut = int(round(n * train_fraction))
    if cut < 1 or cut > n - 1:
        raise ValueError(f"{n} rows are too few to split at train_fraction={train_fraction}")
    return cut


def discretize(values: np.ndarray, bins: int = 20) -> np.ndarray:
    """Discretise each column of `values` (N x K) into integer labels (N x K).

    A column with at most `bins` distinct values is already categorical: its distinct values become the labels
    0..u-1 (so a constant column is all 0). Any other column is cut into `bins` equal-width bins between its
    min and max, labels 0..bins-1.

    Reference: disentanglement_lib `evaluation/metrics/utils.py::_histogram_discretize`
    (`np.digitize(x, np.histogram(x, num_bins)[1][:-1])`), whose published configs use 20 bins. It works on
    codes x points; we take points x codes. It would bin categorical columns too, which can merge or split
    their classes; keeping their values is why we deviate.
    """
    values = _as_2d(values, "values")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    out = np.empty(values.shape, dtype=np.int64)
    for j in range(values.shape[1]):
        col = values[:, j]
        uniques, inverse = np.unique(col, return_inverse=True)
        if len(uniques) <= bins:
            out[:, j] = inverse
        else:
            edges = np.histogram(col, bins)[1]
            # digitize against the left edges gives 1..bins (the max lands in the last bin, not past it).
            out[:, j] = np.digitize(col, edges[:-1]) - 1
    return out


def _factor_labels(factors: np.ndarray, bins: int) -> np.ndarray:
    """Integer factor columns are labels already; float columns are discretised like the latents."""
    if np.issubdtype(factors.dtype, np.integer) or factors.dtype == bool:
        # Relabel 0..u-1 but never bin: a factor with 32 positions keeps 32 classes.
        return np.stack([np.unique(col, return_inverse=True)[1] for col in factors.T], axis=1)
    return discretize(factors, bins=bins)


def _mutual_info_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MI in nats between every column of a (N x P) and every column of b (N x Q), labels 0..k-1 -> P x Q."""
    i, j = np.divmod(np.arange(a.shape[1] * b.shape[1]), b.shape[1])
    return _paired_mutual_info(a, b, i, j).reshape(a.shape[1], b.shape[1])


def _paired_mutual_info(a: np.ndarray, b: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """MI in nats between a[:, i[p]] and b[:, j[p]] for each pair p; a and b hold labels 0..k-1 (N x ...).

    sklearn's `mutual_info_score` arithmetic (`metrics/cluster/_supervised.py`), for many pairs at once from one
    joint histogram each: a loop of sklearn calls costs ~0.3 ms a pair, minutes per epoch for the D^2/2 pairs of a
    1000-latent model. Pairs go in chunks of at most 10 million histogram cells.
    """
    n = a.shape[0]
    ka, kb = int(a.max(initial=0)) + 1, int(b.max(initial=0)) + 1
    step = max(1, 10_000_000 // (ka * kb))
    out = np.zeros(len(i))
    for start in range(0, len(i), step):
        ci, cj = i[start : start + step], j[start : start + step]
        m = len(ci)
        cells = (np.arange(m) * ka + a[:, ci]) * kb + b[:, cj]
        joint = np.bincount(cells.ravel(), minlength=m * ka * kb).reshape(m, ka, kb).astype(np.float64)
        pa, pb = joint.sum(axis=2), joint.sum(axis=1)  # each pair's marginal counts
        pair, x, y = np.nonzero(joint)
        nz = joint[pair, x, y]
        outer = pa[pair, x].astype(np.int64) * pb[pair, y].astype(np.int64)
        terms = (nz / n) * (np.log(nz) - np.log(n)) + (nz / n) * (-np.log(outer) + 2 * np.log(n))
        terms = np.where(np.abs(terms) < np.finfo(np.float64).eps, 0.0, terms)
        out[start : start + m] = np.clip(np.bincount(pair, weights=terms, minlength=m), 0.0, None)
    return out


def _top_two_gap(score: np.ndarray) -> np.ndarray:
    """Per column of a codes x factors matrix: best minus second-best score (second is 0 with one code)."""
    ordered = np.sort(score, axis=0)[::-1]
    second = ordered[1] if ordered.shape[0] > 1 else np.zeros(ordered.shape[1])
    return ordered[0] - second


def _mean_or_nan(values: np.ndarray, what: str) -> float:
    if values.size == 0 or np.all(np.isnan(values)):
        log.warning("%s: every factor is constant, nothing to score", what)
        return float("nan")
    return float(np.nanmean(values))


def mig_details(mu: np.ndarray, factors: np.ndarray, bins: int = 20) -> dict[str, np.ndarray | float]:
    """Mutual information gap with its parts.

    Returns a dict with
      `mig`: mean over non-constant factors of (largest - second largest MI(code, factor)) / H(factor);
      `per_factor`: that gap for each factor (K,), NaN for a constant factor;
      `mutual_info`: the D x K MI matrix in nats, `entropy`: H(factor) in nats (K,).

    Latents are discretised with `discretize(mu, bins)`. Integer factor columns are used as labels; float
    factor columns are discretised the same way as the latents.

    Reference: Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs"; disentanglement_lib
    `evaluation/metrics/mig.py::compute_mig` (discrete MI via `utils.discrete_mutual_info`, entropy via
    `utils.discrete_entropy`, both sklearn `mutual_info_score`).
    """
    mu = _as_2d(mu, "mu")
    factors = _as_2d(factors, "factors")
    _check_rows(mu, factors)
    codes = discretize(mu, bins)
    labels = _factor_labels(factors, bins)
    mi = _mutual_info_matrix(codes, labels)
    h = np.array([mutual_info_score(labels[:, j], labels[:, j]) for j in range(labels.shape[1])])
    gap = _top_two_gap(mi)
    per_factor = np.full(labels.shape[1], np.nan)
    varies = h > 0
    per_factor[varies] = gap[varies] / h[varies]
    return {"mig": _mean_or_nan(per_factor, "mig"), "per_factor": per_factor, "mutual_info": mi, "entropy": h}


def mig(mu: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """Mutual information gap in [0, 1]; see `mig_details` for the definition and reference."""
    return float(mig_details(mu, factors, bins)["mig"])


def sap_matrix(mu: np.ndarray, factors: np.ndarray, continuous: bool = True, train_fraction: float = 0.8) -> np.ndarray:
    """SAP score matrix (D x K): how well each single code predicts each factor.

    continuous=True: squared Pearson correlation of code and factor (the R^2 of a 1-d linear fit) on the
    training rows, as disentanglement_lib does (its test rows are unused in this case).
    continuous=False: a balanced linear SVM (C=0.01) on the one code, trained on the first `train_fraction`
    of the rows and scored on the rest with balanced accuracy.

    Reference: disentanglement_lib `evaluation/metrics/sap_score.py::_compute_score_matrix`. Deviations in the
    categorical case: the code is standardised with training statistics first, so C=0.01 regularises every
    code alike whatever its scale (a VAE's informative codes differ in scale by orders of magnitude); and the
    score is balanced accuracy rather than accuracy, so a rare class (a smile in a mostly neutral video)
    counts. A dead code scores 0 (continuous) or chance (categorical); a factor constant on the training rows
    scores 0.
    """
    mu = _as_2d(mu, "mu").astype(np.float64)
    factors = _as_2d(factors, "factors")
    _check_rows(mu, factors)
    cut = _split(len(mu), train_fraction)
    mu_train, mu_test = mu[:cut], mu[cut:]
    y_train, y_test = factors[:cut], factors[cut:]
    if continuous:
        y_train = y_train.astype(np.float64)
        mc = mu_train - mu_train.mean(0)
        yc = y_train - y_train.mean(0)
        var_mu = (mc**2).mean(0)
        var_y = (yc**2).mean(0)
        cov = mc.T @ yc / len(mc)
        ok = (var_mu[:, None] > _DEAD_VAR) & (var_y[None, :] > _DEAD_VAR)
        denom = np.where(ok, var_mu[:, None] * var_y[None, :], 1.0)
        return np.where(ok, cov**2 / denom, 0.0)
    n_codes, n_factors = mu.shape[1], factors.shape[1]
    score = np.zeros((n_codes, n_factors))
    mean, std = mu_train.mean(0), mu_train.std(0)
    for j in range(n_factors):
        if len(np.unique(y_train[:, j])) < 2:
            continue
        for i in range(n_codes):
            if std[i] ** 2 <= _DEAD_VAR:
                # A constant code can only predict one class: chance level for balanced accuracy.
                score[i, j] = 1.0 / len(np.unique(y_test[:, j]))
                continue
            x_train = ((mu_train[:, i] - mean[i]) / std[i])[:, None]
            x_test = ((mu_test[:, i] - mean[i]) / std[i])[:, None]
            clf = LinearSVC(C=0.01, class_weight="balanced").fit(x_train, y_train[:, j])
            score[i, j] = _balanced_accuracy(y_test[:, j], clf.predict(x_test))
    return score


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in y_true (a test block may miss some training classes)."""
    classes = np.unique(y_true)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in classes]))


def sap(mu: np.ndarray, factors: np.ndarray, continuous: bool = True, train_fraction: float = 0.8) -> float:
    """Separated Attribute Predictability: mean over factors of the gap between the two best codes' scores.

    Scores come from `sap_matrix` (R^2 for continuous factors, balanced accuracy for categorical ones).
    Factors that are constant on the training rows are left out of the mean; NaN if all are.

    Reference: Kumar et al. 2018, "Variational Inference of Disentangled Latent Concepts from Unlabeled
    Observations", Sec. 3; disentanglement_lib `evaluation/metrics/sap_score.py::compute_sap` and
    `_compute_avg_diff_top_two`.
    """
    factors = _as_2d(factors, "factors")
    score = sap_matrix(mu, factors, continuous, train_fraction)
    cut = _split(len(factors), train_fraction)
    varies = np.array([len(np.unique(factors[:cut, j])) > 1 for j in range(factors.shape[1])])
    gaps = np.where(varies, _top_two_gap(score), np.nan)
    return _mean_or_nan(gaps, "sap")


def _make_dci_model(model: str, seed: int) -> ClassifierMixin:
    if model == "gbt":
        return GradientBoostingClassifier(random_state=seed)
    # Shallow trees with 10-frame leaves: deep trees end by splitting on noise codes to fit the last few
    # frames, which hands noise and dead codes importance they do not have and drags disentanglement and
    # completeness down for a representation that is in fact disentangled. Every split sees all codes
    # (max_features=None) for the same reason: a random subset of codes forces splits on whichever codes were
    # drawn.
    trees = {"extra_trees": ExtraTreesClassifier, "random_forest": RandomForestClassifier}
    if model not in trees:
        raise ValueError(f"model must be 'extra_trees', 'random_forest' or 'gbt', got {model!r}")
    return trees[model](
        n_estimators=100, max_features=None, max_depth=6, min_samples_leaf=10, n_jobs=-1, random_state=seed
    )


def dci_importance(
    mu: np.ndarray,
    factors: np.ndarray,
    model: Literal["extra_trees", "random_forest", "gbt"] = "extra_trees",
    train_fraction: float = 0.8,
    bins: int = 20,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Importance matrix for DCI: one tree-ensemble classifier per factor, predicting it from all codes.

    Returns (importance D x K, train accuracy K, test accuracy K). Training uses the first `train_fraction` of
    the rows, testing the rest. A factor with one class on the training rows gets a zero importance column and
    NaN accuracies. Integer factors are class labels; float factors are discretised with `discretize(bins)`.

    Reference: disentanglement_lib `evaluation/metrics/dci.py::compute_importance_gbt` (model="gbt" is its
    sklearn GradientBoostingClassifier with default settings).
    """
    mu = _as_2d(mu, "mu").astype(np.float64)
    factors = _as_2d(factors, "factors")
    _check_rows(mu, factors)
    labels = _factor_labels(factors, bins)
    cut = _split(len(mu), train_fraction)
    n_codes, n_factors = mu.shape[1], labels.shape[1]
    importance = np.zeros((n_codes, n_factors))
    acc_train = np.full(n_factors, np.nan)
    acc_test = np.full(n_factors, np.nan)
    for j in range(n_factors):
        y_train, y_test = labels[:cut, j], labels[cut:, j]
        if len(np.unique(y_train)) < 2:
            continue
        clf = _make_dci_model(model, seed).fit(mu[:cut], y_train)
        importance[:, j] = np.abs(clf.feature_importances_)
        acc_train[j] = np.mean(clf.predict(mu[:cut]) == y_train)
        acc_test[j] = np.mean(clf.predict(mu[cut:]) == y_test)
    return importance, acc_train, acc_test


def _dci_scores(importance: np.ndarray) -> tuple[float, float]:
    """(disentanglement, completeness) of a D x K importance matrix, as in disentanglement_lib dci.py."""
    n_codes, n_factors = importance.shape
    total = importance.sum()
    if total == 0.0:
        return 0.0, 0.0
    # 1e-11 keeps all-zero rows/columns finite (they get entropy 1, score 0) and they weigh 0 below anyway.
    per_code = 1.0 - entropy(importance.T + 1e-11, base=n_factors) if n_factors > 1 else np.ones(n_codes)
    per_factor = 1.0 - entropy(importance + 1e-11, base=n_codes) if n_codes > 1 else np.ones(n_factors)
    d = float(np.sum(per_code * importance.sum(axis=1) / total))
    c = float(np.sum(per_factor * importance.sum(axis=0) / total))
    return d, c


def dci(
    mu: np.ndarray,
    factors: np.ndarray,
    model: Literal["extra_trees", "random_forest", "gbt"] = "extra_trees",
    train_fraction: float = 0.8,
    bins: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """Disentanglement, completeness and informativeness (Eastwood & Williams 2018).

    Returns a dict with
      `disentanglement`: mean over codes of 1 - H_K(code's normalised importance row), weighted by each code's
        share of the total importance;
      `completeness`: mean over factors of 1 - H_D(factor's normalised importance column), weighted by each
        factor's share of the total (every classifier's importances sum to 1, so this is the plain mean over
        the factors that vary);
      `informativeness`: mean test accuracy over factors (chance is 1/classes, not 0);
      `informativeness_train`: mean training accuracy;
      `informativeness_per_factor`: each factor's test accuracy.

    Importances come from `dci_importance`. model="gbt" is disentanglement_lib's sklearn
    GradientBoostingClassifier, but it fits one tree per class per boosting stage: about 100 s for 2000 rows x
    32 codes x 9 factors of 2-20 classes on 2 cores. The default "extra_trees" (100 shallow extremely
    randomised trees, see `_make_dci_model`) takes about 5 s on the same data with the same test accuracy, and
    on a planted one-code-per-factor representation it scores D/C 0.91/0.88 where "gbt" scores 0.66/0.59: the
    boosted trees spend their later stages fitting noise codes. "random_forest" (the DCI paper's model, same
    capacity limits) sits in between at about 20 s and 0.74/0.68.

    Reference: disentanglement_lib `evaluation/metrics/dci.py`: `compute_dci`, `disentanglement`,
    `completeness`.
    """
    importance, acc_train, acc_test = dci_importance(mu, factors, model, train_fraction, bins, seed)
    d, c = _dci_scores(importance)
    return {
        "disentanglement": d,
        "completeness": c,
        "informativeness": _mean_or_nan(acc_test, "dci"),
        "informativeness_train": _mean_or_nan(acc_train, "dci"),
        "informativeness_per_factor": [float(a) for a in acc_test],
    }
