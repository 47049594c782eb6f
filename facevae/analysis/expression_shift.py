"""Shifting a face toward a smile in latent space, and measuring what changed: the seed proposal's payoff.

Sullivan, "Analysis and Modification of Encoded Single User Facial Expression Data", section 2.2: "we will
interpolate from other data points to the center of the smiling data points in order to, hopefully, get a nice
facial expression shift." Two kinds of path start at the code z of a non-smiling frame (`shift_paths`):

    centroid   z + t (c_smile - z)      ends on the smiling centroid, whatever the start was
    normal     z + t alpha n            n the unit normal of a linear smile classifier (smiles.smile_direction),
                                        alpha = (c_smile - c_other) . n, the gap between the centroids along n;
                                        moves only along the smile direction, keeping the rest of the code

Each path is decoded and judged by pixel models fitted on real crops, not by the VAE itself: a smile scorer
(`fit_smile_regressor` where a continuous smile factor exists, `fit_smile_classifier` where only smile/non-smile
labels do) and optionally regressors of the other factors (`fit_factor_regressors`), to see what else moved. The
mouth region (`mouth_mask`) splits the pixel change into the change where a smile should happen and the change
everywhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from facevae.analysis.encoding import decode_latents, encode_images
from facevae.core.tensors import image_grid
from facevae.plots.figure import save_figure

DEFAULT_STEPS = np.linspace(0.0, 1.0, 7)
FEATURE_SIZE = 32  # pixel models see 32x32 grayscale: enough for the mouth's shape, few enough weights to fit
HELDOUT_FRACTION = 0.2
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4)
LOGISTIC_CS = (1e-4, 1e-3, 1e-2)
PATH_KINDS = ("centroid", "normal")

ImageScorer = Callable[[np.ndarray], np.ndarray]


# -- paths in latent space -------------------------------------------------------------------------------------


def normal_step_length(normal: np.ndarray, centroid_smile: np.ndarray, centroid_other: np.ndarray) -> float:
    """alpha = (c_smile - c_other) . n / |n|: how far t=1 of a normal path goes, the centroids' gap along n."""
    normal = np.asarray(normal, np.float64)
    return float(np.dot(np.asarray(centroid_smile) - np.asarray(centroid_other), normal / np.linalg.norm(normal)))


def shift_paths(
    z_start: np.ndarray,
    *,
    steps: np.ndarray,
    target: np.ndarray | None = None,
    direction: np.ndarray | None = None,
    length: float = 1.0,
) -> np.ndarray:
    """Latent paths from each start code, N x D -> N x S x D, one row per step t in `steps`.

    Give exactly one of `target` (D: z + t (target - z), so t=0 is z and t=1 is the target) or `direction`
    (D: z + t length u, u the direction scaled to unit length; `normal_step_length` gives the length that makes
    t=1 cross the gap between two centroids).
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
    """The estimator refitted with the grid value that scores best over folds of whole blocks."""
    n_folds = min(3, len(np.unique(blocks)))
    if n_folds < 2:
        return estimator.fit(x, y)
    search = GridSearchCV(estimator, grid, cv=GroupKFold(n_splits=n_folds))
    return search.fit(x, y, groups=blocks).best_estimator_


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
    train, test = _heldout_rows(blocks, seed)
    auc = float("nan")
    if len(np.unique(y[train])) == 2 and len(np.unique(y[test])) == 2:
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


def expression_shift(
    model,
    images_start: np.ndarray,
    mu_start: np.ndarray,
    centroid_smile: np.ndarray,
    normal: np.ndarray,
    scorer: ImageScorer,
    other_regressors: Mapping[str, ImageScorer] | None = None,
    steps: np.ndarray = DEFAULT_STEPS,
    centroid_other: np.ndarray | None = None,
    images_smile: np.ndarray | None = None,
) -> dict:
    """Decode both kinds of path from each start code toward a smile and measure the change -> result dict.

    images_start (uint8 N x H x W x 3) are the start frames (held-out, not smiling) and mu_start their encoder
    means; centroid_smile, normal and centroid_other come from smiles.smile_direction. Without centroid_other the
    start codes' mean stands in for it (they are non-smiling frames too). `steps` run from 0 to 1. With
    images_smile (real smiling crops), the scorer's mean on their reconstructions is the level a shifted face
    would reach if it smiled like the real smiles do.

    Every measure compares the decoded end (t=1) with the decoded start (t=0, the reconstruction) rather than
    with the input, so the model's reconstruction error does not count as change. Returns a dict whose keys
    starting with "shift_" or "smile_score" are JSON-ready numbers (or None, or {name: number}) for metrics.json:

        "steps"                     the t values
        "centroid", "normal"        per kind: "latents" N x S x D, "images" uint8 N x S x H x W x 3,
                                    "smile_score" the mean score at each step (list of S)
        "smile_score_input"         the scorer's mean on the real start frames
        "smile_score_smiling"       its mean on the reconstructions of images_smile (None without them)
        "smile_score_smiling_input" its mean on images_smile themselves (None without them)
            shift_smile_gain, shift_smile_gain_normal      mean score at t=1 minus at t=0, per kind
            shift_mouth_change, shift_outside_mouth_change mean |pixel change| (0-1) inside / outside
                                                           mouth_mask, centroid path; "_normal" for the other
            shift_other_factor_change[_normal]             {name: mean |change| of its predicted value}
            shift_other_factor_change_sd[_normal]          the same in standard deviations of the factor,
                                                           when the regressor knows it (PixelScorer)
            shift_other_factor_heldout_r2                  {name: the regressor's held-out R^2}: ignore the
                                                           change of a factor whose R^2 is near or below 0
            shift_normal_length                            alpha, latent units moved along the normal by t=1
            shift_n_frames                                 N
            shift_smile_score_start_input, _start_recon    the scorer's mean on the real start frames and on
                                                           their reconstructions (t=0)
            shift_smile_score_smiling_input, _recon        the same for images_smile, when given: if the
                                                           reconstructions of real smiles score no higher
                                                           than those of the starts, the decoder has lost
                                                           the smile and the gains mean little
    """
    steps = np.asarray(steps, np.float64)
    if steps.ndim != 1 or len(steps) < 2 or steps[0] != 0.0:
        raise ValueError(f"steps must be 1-D, at least 2 long, starting at t=0; got {steps}")
    mu_start = np.asarray(mu_start, np.float64)
    if len(images_start) != len(mu_start) or len(mu_start) == 0:
        raise ValueError(f"need as many start images as codes (>0), got {len(images_start)} and {len(mu_start)}")
    if centroid_other is None:
        centroid_other = mu_start.mean(axis=0)
    length = normal_step_length(normal, centroid_smile, centroid_other)
    latents = {
        "centroid": shift_paths(mu_start, steps=steps, target=centroid_smile),
        "normal": shift_paths(mu_start, steps=steps, direction=normal, length=length),
    }
    n, s, d = latents["centroid"].shape
    mask = mouth_mask(np.shape(images_start)[1])  # crops are square and decode to their own size
    result: dict = {"steps": steps.tolist(), "shift_normal_length": length, "shift_n_frames": n}
    for kind in PATH_KINDS:
        images = decode_latents(model, latents[kind].reshape(n * s, d))
        images = images.reshape(n, s, *images.shape[1:])
        score = _scores(scorer, images)
        suffix = "" if kind == "centroid" else "_normal"
        mouth, outside = _region_change(images, mask)
        result[f"shift_smile_gain{suffix}"] = float(score[:, -1].mean() - score[:, 0].mean())
        result[f"shift_mouth_change{suffix}"] = mouth
        result[f"shift_outside_mouth_change{suffix}"] = outside
        if other_regressors:
            ends = images[:, [0, -1]]
            change = {name: np.abs(np.diff(_scores(r, ends), axis=1)).mean() for name, r in other_regressors.items()}
            result[f"shift_other_factor_change{suffix}"] = {name: float(v) for name, v in change.items()}
            if kind == "centroid":
                # A factor the pixels do not predict (held-out R^2 near or below 0) cannot show a change either.
                r2 = {name: getattr(r, "heldout_score", None) for name, r in other_regressors.items()}
                result["shift_other_factor_heldout_r2"] = {name: float(v) for name, v in r2.items() if v is not None}
            sds = {name: getattr(r, "target_sd", None) for name, r in other_regressors.items()}
            result[f"shift_other_factor_change_sd{suffix}"] = {
                name: float(change[name] / sd) for name, sd in sds.items() if sd
            }
        result[kind] = {"latents": latents[kind], "images": images, "smile_score": score.mean(axis=0).tolist()}

    result["smile_score_input"] = float(np.mean(scorer(np.asarray(images_start))))
    result["smile_score_smiling"] = result["smile_score_smiling_input"] = None
    if images_smile is not None and len(images_smile):
        mu_smile, _ = encode_images(model, np.asarray(images_smile))
        result["smile_score_smiling"] = float(np.mean(scorer(decode_latents(model, mu_smile))))
        result["smile_score_smiling_input"] = float(np.mean(scorer(np.asarray(images_smile))))
    # The scorer saw only real crops: how it rates real and reconstructed faces of both kinds shows whether
    # its verdict on decoded images can be trusted (a decoder that blurs the mouth away leaves it nothing).
    result["shift_smile_score_start_input"] = result["smile_score_input"]
    result["shift_smile_score_start_recon"] = result["centroid"]["smile_score"][0]
    if result["smile_score_smiling"] is not None:
        result["shift_smile_score_smiling_input"] = result["smile_score_smiling_input"]
        result["shift_smile_score_smiling_recon"] = result["smile_score_smiling"]
    return result


def _tile_centres(n: int, side: int, pad: int = 2) -> np.ndarray:
    """Pixel centres of n tiles of `side` pixels laid out by image_grid with `pad` between them."""
    return pad + np.arange(n) * (side + pad) + side / 2


def expression_shift_figure(result: dict, inputs: np.ndarray, path: str | Path, n_rows: int = 6) -> Path:
    """Save expression_shift.png: inputs, both decoded paths, and the mean smile score against t.

    One row per start frame (n_rows of them, spread evenly over the result's; `inputs` are the start images the
    result was made from): the real input crop, then its decoded path toward
    the smiling centroid (t=0 is the reconstruction), then its path along the classifier's normal. At the side,
    the scorer's mean over all start frames at each t for both kinds, with the smiling frames' reconstructions as
    a dashed reference line (and the real smiling crops dotted) when the result has them.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.asarray(result["steps"])
    total = len(result["centroid"]["images"])
    if len(inputs) != total:
        raise ValueError(f"inputs must be the {total} start images the result was made from, got {len(inputs)}")
    # Rows spread evenly over the start frames: neighbours in a list of frames are often neighbours in time.
    rows = np.unique(np.linspace(0, total - 1, min(n_rows, total)).round().astype(int))
    n, s, side = len(rows), len(steps), result["centroid"]["images"].shape[2]
    blocks = {
        "input": image_grid(np.asarray(inputs)[rows], ncols=1),
        "centroid": image_grid(result["centroid"]["images"][rows].reshape(n * s, side, side, 3), ncols=s),
        "normal": image_grid(result["normal"]["images"][rows].reshape(n * s, side, side, 3), ncols=s),
    }
    titles = {
        "input": "input\n(real crop)",
        "centroid": (
            f"toward the smiling centroid: z + t (c_smile - z)\nsmile score gain {result['shift_smile_gain']:+.2f}"
        ),
        "normal": (
            f"along the smile classifier's unit normal n: z + t·{result['shift_normal_length']:.2f}·n\n"
            f"smile score gain {result['shift_smile_gain_normal']:+.2f}"
        ),
    }
    # Widths in tiles: input, gap, path, gap, path, gap for the plot's y label, plot. Height: the tiles plus
    # room for two-line titles above and the t labels below.
    tile_in, plot_tiles = 1.0, 5.0
    widths = [1, 0.25, s, 0.25, s, 1.1, plot_tiles]
    fig = plt.figure(figsize=(tile_in * sum(widths), tile_in * n + 2.0))
    grid = fig.add_gridspec(1, len(widths), width_ratios=widths, wspace=0.0, left=0.01, right=0.99, top=0.8, bottom=0.1)
    for column, (kind, picture) in zip((0, 2, 4), blocks.items(), strict=True):
        ax = fig.add_subplot(grid[0, column])
        ax.imshow(picture)
        ax.set_title(titles[kind], fontsize=11)
        ax.set_yticks([])
        if kind == "input":
            ax.set_xticks([])
        else:
            labels = [f"t={t:.2g}" if j in (0, s - 1) else f"{t:.2g}" for j, t in enumerate(steps)]
            ax.set_xticks(_tile_centres(s, side), labels, fontsize=9)
            ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)

    ax = fig.add_subplot(grid[0, 6].subgridspec(6, 1)[1:5, 0])
    ax.plot(steps, result["centroid"]["smile_score"], "o-", color="tab:orange", label="toward centroid")
    ax.plot(steps, result["normal"]["smile_score"], "s-", color="tab:blue", label="along normal")
    if result.get("smile_score_smiling") is not None:
        ax.axhline(result["smile_score_smiling"], ls="--", color="k", lw=1.2, label="smiling frames, reconstructed")
        ax.axhline(result["smile_score_smiling_input"], ls=":", color="0.4", lw=1.2, label="smiling frames, real")
    ax.axhline(result["smile_score_input"], ls=":", color="tab:green", lw=1.2, label="start frames, real")
    ax.set_xlabel("t (0 = reconstruction of the start)")
    ax.set_ylabel("mean smile score of the faces")
    ax.set_title(f"smile score along the paths\n(mean over {result['shift_n_frames']} start frames)", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)

    fig.suptitle(
        "Shifting held-out non-smiling faces toward a smile in the VAE's latent space (each tile decoded at step t)\n"
        f"mean |pixel change| from t=0 to 1 (0-1 pixels), toward centroid: mouth region "
        f"{result['shift_mouth_change']:.3f}, elsewhere {result['shift_outside_mouth_change']:.3f}; "
        f"along normal: mouth {result['shift_mouth_change_normal']:.3f}, "
        f"elsewhere {result['shift_outside_mouth_change_normal']:.3f}",
        fontsize=12,
    )
    path = save_figure(fig, path, dpi=100)
    return path
