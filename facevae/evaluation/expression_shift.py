"""Shifting a face toward a smile in latent space: the seed proposal's payoff, run on one checkpoint.

Sullivan, "Analysis and Modification of Encoded Single User Facial Expression Data", section 2.2: "we will
interpolate from other data points to the center of the smiling data points in order to, hopefully, get a nice
facial expression shift." Three kinds of path start at the code z of a non-smiling frame
(facevae.models.latent_paths): to the smiling centroid, along the direction from the others' centroid to the smiles',
and by the smile's own step with pose and light held fixed (a conditional edit in the sense of InterFaceGAN, Shen et
al. 2020: the smile's coefficient when the codes are regressed on smile and the other factors at once). Each is
decoded and judged by pixel models fitted on real crops (facevae.metrics.pixel_scorers), not by the VAE itself;
facevae.metrics.expression_shift says what each number means.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from facevae.data.datamodule import FaceCropDataModule
from facevae.evaluation.context import Evaluation
from facevae.evaluation.smile_sets import SmileSets
from facevae.metrics import smile_labels as sl
from facevae.metrics.expression_shift import ShiftPath, ShiftResult, path_measures, shift_references
from facevae.metrics.pixel_scorers import ImageScorer, fit_factor_regressors, fit_smile_classifier, fit_smile_regressor
from facevae.metrics.smiles import edit_direction
from facevae.models.inference import decode_latents, decode_paths, reconstruct
from facevae.models.latent_paths import ShiftTarget, factor_steps, latent_directions, shift_latent_paths
from facevae.plots.expression_shift import expression_shift_figure

DEFAULT_STEPS = np.linspace(0.0, 1.0, 7)


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
) -> ShiftResult:
    """Decode every kind of path from each start code toward a smile and measure what changed (`ShiftResult`).

    images_start (uint8 N x H x W x 3) are the start frames (held-out, not smiling) and mu_start their encoder
    means. With images_smile (real smiling crops) the scorer's mean on their reconstructions is the level a
    shifted face would reach if it smiled as the real smiles do, and each gain is also given as a share of the way
    there. `cascade` is an independent smile measure on images (e.g. the smile cascade's votes), scored at both
    ends of each path; `other_regressors` measure what else moved (facevae.metrics.expression_shift.PathMeasures).
    """
    steps = np.asarray(steps, np.float64)
    if steps.ndim != 1 or len(steps) < 2 or steps[0] != 0.0:
        raise ValueError(f"steps must be 1-D, at least 2 long, starting at t=0; got {steps}")
    mu_start = np.asarray(mu_start, np.float64)
    if len(images_start) != len(mu_start) or len(mu_start) == 0:
        raise ValueError(f"need as many start images as codes (>0), got {len(images_start)} and {len(mu_start)}")
    paths, lengths, at_equal = shift_latent_paths(mu_start, target, steps)
    start_recon = decode_latents(model, mu_start)
    smile_recon = (
        reconstruct(model, np.asarray(images_smile)) if images_smile is not None and len(images_smile) else None
    )
    ref = shift_references(scorer, images_start, start_recon, images_smile, smile_recon, cascade)
    start_score = np.asarray(scorer(start_recon), np.float64)
    shifted = {}
    for kind, latents in paths.items():
        images = decode_paths(model, latents)
        shifted[kind] = ShiftPath(latents, images, path_measures(images, scorer, ref, other_regressors, cascade))
    r2 = None
    if other_regressors:
        held = {name: getattr(r, "heldout_score", None) for name, r in other_regressors.items()}
        r2 = {name: float(v) for name, v in held.items() if v is not None}
    return ShiftResult(
        steps=steps,
        paths=shifted,
        path_length={kind: float(v.mean()) for kind, v in lengths.items()},
        equal_distance=float(np.min(np.stack(list(lengths.values())), axis=0).mean()),
        gain_equal_distance={
            kind: float(np.mean(scorer(decode_latents(model, z))) - start_score.mean()) for kind, z in at_equal.items()
        },
        references=ref,
        n_frames=len(mu_start),
        start_score_recon=float(start_score.mean()),
        other_factor_heldout_r2=r2,
    )


def shift_toward_smiles(ev: Evaluation, sets: SmileSets, starts: np.ndarray) -> dict:
    """evaluate.py's expression shift: `shift_frames` of the held-out frames labelled not smiling (`starts`) moved
    toward the smiles, judged by a smile scorer fitted on real training crops; expression_shift.png and its numbers."""
    dm, cfg, mu, other = ev.dm, ev.cfg, ev.mu, sets.other
    mu_smile, smile_images, smile_groups, labels, groups = (
        sets.mu_smile,
        sets.smile_images,
        sets.smile_groups,
        sets.labels,
        sets.groups,
    )
    names, factors, train = dm.factor_names, dm.data.factors(), dm.rows("train")
    z = np.concatenate([mu_smile, mu[other]])
    normal = edit_direction(z, np.r_[np.ones(len(mu_smile), int), np.zeros(len(other), int)])
    centroid_smile = mu_smile.mean(axis=0)
    others = None
    if "smile" in names:
        # A regressor fitted on real training crops scores how much any image smiles, decoded ones included.
        scorer = fit_smile_regressor(dm.data.crops[train], factors[train, names.index("smile")], groups[train])
        rest = [n for n in names if n != "smile"]
        columns = [names.index(n) for n in rest]
        others = fit_factor_regressors(dm.data.crops[train], factors[train][:, columns], rest, groups[train])
    else:
        negatives = train[labels.labels[train] == 0]  # training frames labelled non-smiling, never the smiles
        images = np.concatenate([smile_images, dm.data.crops[negatives]])
        y = np.r_[np.ones(len(smile_images)), np.zeros(len(negatives))]
        scorer = fit_smile_classifier(images, y, np.r_[smile_groups, groups[negatives]])
    nuisance, nuisance_names = _pose_and_light(dm)
    step = _smile_step(dm, labels, mu, nuisance, train)
    # Without the smile's own step (too few labelled frames), the conditional path projects pose and light out.
    others = latent_directions(mu[train], nuisance[train]) if step is None else None
    target = ShiftTarget(centroid_smile, normal, others, conditional_step=step)
    rng = np.random.default_rng(int(cfg.seed))
    starts = np.sort(rng.choice(starts, size=min(cfg.shift_frames, len(starts)), replace=False))
    result = expression_shift(
        ev.model,
        dm.data.crops[starts],
        mu[starts],
        target,
        scorer,
        other_regressors=others,
        images_smile=smile_images,
        cascade=sl.smile_cascade_votes,
    )
    expression_shift_figure(result, dm.data.crops[starts], ev.out / "expression_shift.png", note=sets.note)
    result.extra["smile_scorer_heldout_score"] = scorer.heldout_score
    if "conditional" in result.kinds:
        result.extra["shift_conditional_keeps"] = nuisance_names
    result.extra["shift_start_frames"] = dm.data.frames["frame"].to_numpy()[starts].tolist()  # which frames moved
    return result.metrics()


# Fewer training frames of either kind than this and the regression's smile column is mostly noise: the conditional
# path then projects the other factors' directions out of the normal instead.
MIN_FRAMES_FOR_STEP = 20


def _smile_step(dm, labels: sl.SmileLabels, mu: np.ndarray, nuisance: np.ndarray, train: np.ndarray):
    """The step a smile makes in the codes with pose and light held fixed: the smile column of the regression of
    the training codes on smile and the other factors (or their proxies), times the gap in smile between the
    smiling frames and the others. The smile is the data's smile factor when it has one, else the video's own
    labels (1 smiling, 0 not); None when too few training frames are labelled either way."""
    rows = train[labels.labels[train] >= 0]
    smiling = labels.labels[rows] == 1
    if min(smiling.sum(), (~smiling).sum()) < MIN_FRAMES_FOR_STEP:
        return None
    names = dm.factor_names
    smile = dm.data.factors()[:, names.index("smile")] if "smile" in names else labels.labels.astype(np.float64)
    gap = smile[rows][smiling].mean() - smile[rows][~smiling].mean()
    steps = factor_steps(mu[rows], np.column_stack([smile[rows], nuisance[rows]]))
    return steps[0] * gap


def _pose_and_light(dm: FaceCropDataModule) -> tuple[np.ndarray, list[str]]:
    """What the conditional shift keeps: the factors other than smile when the data has them; otherwise proxies
    of pose and light, the crop's place, size and turn in the frame and its brightness."""
    names = dm.factor_names
    if "smile" in names and len(names) > 1:
        rest = [n for n in names if n != "smile"]
        return dm.data.factors()[:, [names.index(n) for n in rest]], rest
    frames = dm.data.frames
    proxies = {
        "crop_x": frames["x"] + frames["w"] / 2,
        "crop_y": frames["y"] + frames["h"] / 2,
        "crop_log_size": np.log(frames["w"]),
        "crop_angle": frames.get("crop_angle"),
        "brightness": dm.data.crops.reshape(len(frames), -1).mean(axis=1),
    }
    proxies = {k: np.asarray(v, np.float64) for k, v in proxies.items() if v is not None and np.std(v) > 0}
    return np.stack(list(proxies.values()), axis=1), list(proxies)
