"""Shifting a face toward a smile in latent space, and measuring what changed: the seed proposal's payoff.

Sullivan, "Analysis and Modification of Encoded Single User Facial Expression Data", section 2.2: "we will
interpolate from other data points to the center of the smiling data points in order to, hopefully, get a nice
facial expression shift." Three kinds of path start at the code z of a non-smiling frame (`shift_paths`):

    centroid     z + t (c_smile - z)   ends on the smiling centroid, whatever the start was
    normal       z + t s n             n the unit normal of the boundary between the smiling and other codes'
                                       centroids (smiles.edit_direction),
                                       s = (c_smile - z) . n: as far as the start lies from the smiles along n
    conditional  z + t s' n'           n' the normal with the directions of the other factors projected out
                                       (`conditional_direction`, InterFaceGAN's conditional edit: Shen et al.
                                       2020), s' = (c_smile - z) . n': a smile that should keep pose and light

The normal and conditional paths are shorter than the centroid's (a projection of the same gap), so every kind is
also scored at one distance from its start, the shortest of the three (`shift_smile_gain_equal_distance`).

Each path is decoded and judged by pixel models fitted on real crops, not by the VAE itself: a smile scorer
(`fit_smile_regressor` where a continuous smile factor exists, `fit_smile_classifier` where only smile/non-smile
labels do), an independent measure if given (the smile cascade's votes, facevae.metrics.smile_labels), and
optionally regressors of the other factors (`fit_factor_regressors`), to see what else moved. The mouth region
(`mouth_mask`) splits the pixel change into the change where a smile should happen and the change everywhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from facevae.analysis.encoding import decode_latents, encode_images
from facevae.core.tensors import image_grid
from facevae.plots.figure import save_figure

log = logging.getLogger(__name__)

DEFAULT_STEPS = np.linspace(0.0, 1.0, 7)
FEATURE_SIZE = 32  # pixel models see 32x32 grayscale: enough for the mouth's shape, few enough weights to fit
HELDOUT_FRACTION = 0.2
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4)
LOGISTIC_CS = (1e-4, 1e-3, 1e-2)
PATH_KINDS = ("centroid", "normal", "conditional")
SUFFIX = {"centroid": "", "normal": "_normal", "conditional": "_conditional"}

ImageScorer = Callable[[np.ndarray], np.ndarray]


# -- paths in latent space -------------------------------------------------------------------------------------


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


# -- pixel models fitted on real crops --------------------------------------------------------------------------


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


# -- the shift -----------------------------------------------------------------------------------------------------


def mouth_mask(
    size: int = 64, rows: tuple[float, float] = (0.5, 0.95), cols: tuple[float, float] = (0.12, 0.88)
) -> np.ndarray:
    """bool size x size mask of the mouth region of a face crop: `rows` and `cols` as shares of the side.

    The defaults fit the project's tight crops (conf/data/faces.yaml: crop_scale 0.8, crop_shift_y 0.08). On 80
    frames of the demo video re-rendered at smile 0 and 1 with everything else kept, and cropped by the same
    boxes, the region holds 88% (at least 79%) of the pixel change a smile makes in a third of the crop; the
    narrower rows 0.55-0.95, columns 0.2-0.8 hold 72%, missing the mouth's corners and the lifted cheeks.
    """
    mask = np.zeros((size, size), bool)
    mask[round(rows[0] * size) : round(rows[1] * size), round(cols[0] * size) : round(cols[1] * size)] = True
    return mask


def _scores(scorer: ImageScorer, images: np.ndarray) -> np.ndarray:
    """Scores of N x S x H x W x 3 path images -> N x S."""
    n, s = images.shape[:2]
    return np.asarray(scorer(images.reshape(n * s, *images.shape[2:])), np.float64).reshape(n, s)


def _region_change(images: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean absolute change from the first to the last step on [0, 1] pixels -> (inside mask, outside)."""
    change = np.abs(images[:, -1].astype(np.float64) - images[:, 0].astype(np.float64)).mean(axis=-1) / 255.0
    return float(change[:, mask].mean()), float(change[:, ~mask].mean())


@dataclass
class ShiftTarget:
    """Where the paths go: the smiles' centroid, the smile classifier's unit normal, and the other factors'
    directions (K x D, `latent_directions`) for the conditional path (None: no conditional path)."""

    centroid_smile: np.ndarray
    normal: np.ndarray
    others: np.ndarray | None = None

    def directions(self) -> dict[str, np.ndarray]:
        kinds = {"normal": np.asarray(self.normal, np.float64)}
        if self.others is not None and len(self.others):
            try:
                kinds["conditional"] = conditional_direction(self.normal, self.others)
            except ValueError as err:  # as many other directions as latents (a small model): no conditional edit
                log.info("no conditional shift path: %s", err)
        return kinds


def _latent_paths(mu_start: np.ndarray, target: ShiftTarget, steps: np.ndarray) -> tuple[dict, dict, np.ndarray]:
    """Each kind's paths (N x S x D) and lengths (N,), and the codes at the shortest kind's distance (kind -> N x D)."""
    paths = {"centroid": shift_paths(mu_start, steps=steps, target=target.centroid_smile)}
    lengths = {"centroid": np.linalg.norm(np.asarray(target.centroid_smile) - mu_start, axis=1)}
    for kind, direction in target.directions().items():
        lengths[kind] = separation_along(direction, target.centroid_smile, mu_start)
        paths[kind] = shift_paths(mu_start, steps=steps, direction=direction, length=lengths[kind])
    equal = np.min(np.stack(list(lengths.values())), axis=0)  # the same distance from the start on every kind
    at_equal = {}
    for kind, length in lengths.items():
        t = np.divide(equal, length, out=np.zeros_like(equal), where=length > 0)[:, None]
        at_equal[kind] = mu_start + t * (paths[kind][:, -1] - mu_start)
    return paths, lengths, at_equal


def _path_measures(images: np.ndarray, scorer: ImageScorer, reference: dict, others, cascade) -> dict:
    """What changed along one kind of path, from t=0 (the reconstruction) to t=1: keys without the kind's suffix."""
    score = _scores(scorer, images)
    mouth, outside = _region_change(images, mouth_mask(images.shape[2]))
    gain = float(score[:, -1].mean() - score[:, 0].mean())
    out = {
        "smile_score": score.mean(axis=0).tolist(),
        "shift_smile_gain": gain,
        "shift_mouth_change": mouth,
        "shift_outside_mouth_change": outside,
        "shift_mouth_ratio": mouth / outside if outside > 0 else None,
        "shift_smile_progress": _progress(gain, reference.get("score_span")),
        "shift_smile_progress_of_real": _progress(gain, reference.get("real_span")),
    }
    if cascade is not None:
        votes = _scores(cascade, images[:, [0, -1]])
        out["shift_cascade_gain"] = float(votes[:, 1].mean() - votes[:, 0].mean())
        out["shift_cascade_progress"] = _progress(out["shift_cascade_gain"], reference.get("cascade_span"))
    if others:
        ends = images[:, [0, -1]]
        change = {name: float(np.abs(np.diff(_scores(r, ends), axis=1)).mean()) for name, r in others.items()}
        out["shift_other_factor_change"] = change
        sds = {name: getattr(r, "target_sd", None) for name, r in others.items()}
        out["shift_other_factor_change_sd"] = {name: change[name] / sd for name, sd in sds.items() if sd}
    return out


def _progress(gain: float, span: float | None) -> float | None:
    """The gain as a share of the way from the start frames' reconstructions to the real smiles' reconstructions."""
    return gain / span if span else None


def _references(model, images_start, images_smile, start_recon, scorer, cascade) -> dict:
    """The scorer (and cascade) on real and reconstructed start frames and smiles: what a shift should reach."""
    ref = {"smile_score_input": float(np.mean(scorer(np.asarray(images_start))))}
    ref["smile_score_smiling"] = ref["smile_score_smiling_input"] = None
    if images_smile is None or not len(images_smile):
        return ref
    mu_smile, _ = encode_images(model, np.asarray(images_smile))
    smile_recon = decode_latents(model, mu_smile)
    ref["smile_score_smiling"] = float(np.mean(scorer(smile_recon)))
    ref["smile_score_smiling_input"] = float(np.mean(scorer(np.asarray(images_smile))))
    ref["score_span"] = ref["smile_score_smiling"] - float(np.mean(scorer(start_recon)))
    ref["real_span"] = ref["smile_score_smiling_input"] - ref["smile_score_input"]
    if cascade is not None:
        ref["shift_cascade_smiling_recon"] = float(np.mean(cascade(smile_recon)))
        ref["shift_cascade_start_recon"] = float(np.mean(cascade(start_recon)))
        ref["cascade_span"] = ref["shift_cascade_smiling_recon"] - ref["shift_cascade_start_recon"]
    return ref


def expression_shift(
    model,
    images_start: np.ndarray,
    mu_start: np.ndarray,
    target: ShiftTarget,
    scorer: ImageScorer,
    other_regressors: Mapping[str, ImageScorer] | None = None,
    steps: np.ndarray = DEFAULT_STEPS,
    images_smile: np.ndarray | None = None,
    cascade: ImageScorer | None = None,
) -> dict:
    """Decode every kind of path from each start code toward a smile and measure the change -> result dict.

    images_start (uint8 N x H x W x 3) are the start frames (held-out, not smiling) and mu_start their encoder
    means. With images_smile (real smiling crops) the scorer's mean on their reconstructions is the level a
    shifted face would reach if it smiled as the real smiles do, and each gain is also given as a share of the way
    there (`shift_smile_progress`). `cascade` is an independent smile measure on images (e.g. the smile cascade's
    votes), scored at both ends of each path.

    Every measure compares the decoded end (t=1) with the decoded start (t=0, the reconstruction) rather than
    with the input, so the model's reconstruction error does not count as change. Returns "steps", per kind
    ("centroid", "normal", "conditional" when target has other directions) "latents" N x S x D, "images"
    uint8 N x S x H x W x 3 and "smile_score" (the mean at each step), and JSON-ready numbers for metrics.json,
    each measure once per kind (no suffix for the centroid path, "_normal", "_conditional"):

        shift_smile_gain, shift_smile_progress     score at t=1 minus at t=0; as a share of the way from the start
                                                   frames' reconstructions to the real smiles' reconstructions
        shift_smile_progress_of_real               the gain as a share of the way from the real start frames to
                                                   the real smiles (what the decoder loses counts against it)
        shift_mouth_change, shift_outside_mouth_change, shift_mouth_ratio
                                                   mean |pixel change| (0-1) inside / outside mouth_mask, and
                                                   their ratio (a smile changes the mouth, not the rest)
        shift_cascade_gain, shift_cascade_progress the same for the independent measure
        shift_other_factor_change[_sd]             {name: mean |change| of its regressor's value[, in sds]}
        shift_path_length                          {kind: mean latent distance from start to t=1}
        shift_smile_gain_equal_distance            {kind: gain at the same distance from the start on every
                                                   kind, the shortest kind's length (shift_equal_distance)}
        shift_other_factor_heldout_r2, shift_n_frames, shift_smile_score_{start,smiling}_{input,recon}
    """
    steps = np.asarray(steps, np.float64)
    if steps.ndim != 1 or len(steps) < 2 or steps[0] != 0.0:
        raise ValueError(f"steps must be 1-D, at least 2 long, starting at t=0; got {steps}")
    mu_start = np.asarray(mu_start, np.float64)
    if len(images_start) != len(mu_start) or len(mu_start) == 0:
        raise ValueError(f"need as many start images as codes (>0), got {len(images_start)} and {len(mu_start)}")
    paths, lengths, at_equal = _latent_paths(mu_start, target, steps)
    n, s, d = paths["centroid"].shape
    start_recon = decode_latents(model, mu_start)
    ref = _references(model, images_start, images_smile, start_recon, scorer, cascade)
    result: dict = {"steps": steps.tolist(), "shift_n_frames": n, "kinds": list(paths)}
    result["shift_path_length"] = {kind: float(v.mean()) for kind, v in lengths.items()}
    result["shift_equal_distance"] = float(np.min(np.stack(list(lengths.values())), axis=0).mean())
    start_score = np.asarray(scorer(start_recon), np.float64)
    result["shift_smile_gain_equal_distance"] = {
        kind: float(np.mean(scorer(decode_latents(model, z))) - start_score.mean()) for kind, z in at_equal.items()
    }
    for kind, latents in paths.items():
        images = decode_latents(model, latents.reshape(n * s, d)).reshape(n, s, *start_recon.shape[1:])
        measures = _path_measures(images, scorer, ref, other_regressors, cascade)
        result[kind] = {"latents": latents, "images": images, "smile_score": measures.pop("smile_score")}
        result.update({f"{key}{SUFFIX[kind]}": value for key, value in measures.items()})
    if other_regressors:
        r2 = {name: getattr(r, "heldout_score", None) for name, r in other_regressors.items()}
        result["shift_other_factor_heldout_r2"] = {name: float(v) for name, v in r2.items() if v is not None}
    result.update({k: v for k, v in ref.items() if k.startswith(("smile_score", "shift_"))})
    result["shift_normal_length"] = result["shift_path_length"]["normal"]
    result["shift_smile_score_start_input"] = ref["smile_score_input"]
    result["shift_smile_score_start_recon"] = float(start_score.mean())
    if ref["smile_score_smiling"] is not None:
        result["shift_smile_score_smiling_input"] = ref["smile_score_smiling_input"]
        result["shift_smile_score_smiling_recon"] = ref["smile_score_smiling"]
    return result


def _tile_centres(n: int, side: int, pad: int = 2) -> np.ndarray:
    """Pixel centres of n tiles of `side` pixels laid out by image_grid with `pad` between them."""
    return pad + np.arange(n) * (side + pad) + side / 2


def expression_shift_figure(
    result: dict, inputs: np.ndarray, path: str | Path, n_rows: int = 6, note: str | None = None
) -> Path:
    """Save expression_shift.png: inputs, each kind's decoded path, and the mean smile score against t.

    One row per start frame (n_rows of them, spread evenly over the result's; `inputs` are the start images the
    result was made from): the real input crop, then its decoded path of each kind (t=0 is the reconstruction).
    At the side, the scorer's mean over all start frames at each t for each kind, with the smiling frames'
    reconstructions as a dashed reference line (and the real smiling crops dotted) when the result has them.
    `note` adds a line to the title, e.g. which rule labelled the smiles.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, kinds = np.asarray(result["steps"]), result.get("kinds", ["centroid", "normal"])
    total = len(result["centroid"]["images"])
    if len(inputs) != total:
        raise ValueError(f"inputs must be the {total} start images the result was made from, got {len(inputs)}")
    # Rows spread evenly over the start frames: neighbours in a list of frames are often neighbours in time.
    rows = np.unique(np.linspace(0, total - 1, min(n_rows, total)).round().astype(int))
    n, s, side = len(rows), len(steps), result["centroid"]["images"].shape[2]
    pictures = [image_grid(np.asarray(inputs)[rows], ncols=1)]
    pictures += [image_grid(result[k]["images"][rows].reshape(n * s, side, side, 3), ncols=s) for k in kinds]
    titles = ["input\n(real crop)"] + [_path_title(result, kind) for kind in kinds]
    tile_in, plot_tiles = 1.0, 5.0
    widths = [1] + [0.25, s] * len(kinds) + [1.1, plot_tiles]
    fig = plt.figure(figsize=(tile_in * sum(widths), tile_in * n + 2.4))
    grid = fig.add_gridspec(
        1, len(widths), width_ratios=widths, wspace=0.0, left=0.01, right=0.99, top=0.76, bottom=0.1
    )
    for column, picture, title in zip(range(0, len(widths) - 2, 2), pictures, titles, strict=True):
        ax = fig.add_subplot(grid[0, column])
        ax.imshow(picture)
        ax.set_title(title, fontsize=10)
        ax.set_yticks([])
        if column == 0:
            ax.set_xticks([])
        else:
            labels = [f"t={t:.2g}" if j in (0, s - 1) else f"{t:.2g}" for j, t in enumerate(steps)]
            ax.set_xticks(_tile_centres(s, side), labels, fontsize=9)
            ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    _score_plot(fig.add_subplot(grid[0, len(widths) - 1].subgridspec(6, 1)[1:5, 0]), result, steps, kinds)
    fig.suptitle(_shift_verdict(result, kinds) + (f"\n{note}" if note else ""), fontsize=12)
    return save_figure(fig, path, dpi=100)


PATH_TITLES = {
    "centroid": "toward the smiling centroid: z + t (c_smile - z)",
    "normal": "along the smile normal n: z + t s n,\ns = (c_smile - z)·n",
    "conditional": "along n with pose and light projected out\n(conditional edit)",
}
PATH_STYLES = {"centroid": ("o-", "tab:orange"), "normal": ("s-", "tab:blue"), "conditional": ("^-", "tab:green")}


def _path_title(result: dict, kind: str) -> str:
    suffix = SUFFIX[kind]
    progress = result.get(f"shift_smile_progress{suffix}")
    of_real = result.get(f"shift_smile_progress_of_real{suffix}")
    # shift_smile_progress is measured between reconstructions (start to smiling); the real crops are farther.
    way = f", {100 * progress:.0f}% of the way to reconstructed smiles" if progress is not None else ""
    way += f" ({100 * of_real:.0f}% to real ones)" if of_real is not None else ""
    return (
        f"{PATH_TITLES[kind]}\nlength {result['shift_path_length'][kind]:.2f}; smile score "
        f"{result[f'shift_smile_gain{suffix}']:+.2f}{way}"
    )


def _score_plot(ax, result: dict, steps: np.ndarray, kinds: list[str]) -> None:
    for kind in kinds:
        marker, colour = PATH_STYLES[kind]
        ax.plot(steps, result[kind]["smile_score"], marker, color=colour, label=kind)
    if result.get("smile_score_smiling") is not None:
        ax.axhline(result["smile_score_smiling"], ls="--", color="k", lw=1.2, label="smiling frames, reconstructed")
        ax.axhline(result["smile_score_smiling_input"], ls=":", color="0.4", lw=1.2, label="smiling frames, real")
    ax.axhline(result["smile_score_input"], ls=":", color="tab:red", lw=1.2, label="start frames, real")
    ax.set_xlabel("t (0 = reconstruction of the start)")
    ax.set_ylabel("mean smile score of the faces")
    ax.set_title(f"smile score along the paths\n(mean over {result['shift_n_frames']} start frames)", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)


def _shift_verdict(result: dict, kinds: list[str]) -> str:
    """The title: what each kind did to the mouth and to the rest, and the gains at one distance."""
    changes = "; ".join(
        f"{kind}: mouth {result[f'shift_mouth_change{SUFFIX[kind]}']:.3f}, "
        f"elsewhere {result[f'shift_outside_mouth_change{SUFFIX[kind]}']:.3f}"
        for kind in kinds
    )
    equal = ", ".join(f"{k} {v:+.2f}" for k, v in result["shift_smile_gain_equal_distance"].items())
    return (
        "Shifting held-out non-smiling faces toward a smile in the VAE's latent space (each tile decoded at step t)\n"
        f"mean |pixel change| from t=0 to 1 (0-1 pixels): {changes}\n"
        f"smile score gained at the same distance ({result['shift_equal_distance']:.2f}) on every path: {equal}"
    )
