"""evaluate.py's work: the seed's experiments on one checkpoint, written to an output directory and W&B.

Sections, each a module of `facevae.analysis`: reconstruction on the test blocks, three-point interpolation,
prior samples (mode collapse and memorisation), traversals, where smiles sit, the expression shift, and
disentanglement. Everything is written into a staging folder and moved into the output folder at the end, so a
failed evaluation leaves the previous results (or nothing) rather than half of a new set; the output folder must be
new, empty or a previous evaluation, whose files alone it replaces (facevae.core.outputs).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from facevae.analysis import disentanglement as dis
from facevae.analysis.checkpoint import TrainedRun, datamodule_for, evaluation_dir, load_run, saved_metrics
from facevae.analysis.encoding import decode_latents, encode_images
from facevae.analysis.generator_eval import evaluate_generator
from facevae.analysis.reconstruction import reconstruction_figure, reconstruction_metrics
from facevae.analysis.sampler_eval import check_sampler
from facevae.analysis.sweep_report import SweepReport, sweep_report
from facevae.analysis.sweep_report import log_to_wandb as log_sweep_to_wandb
from facevae.core.device import pick_device
from facevae.core.errors import FaceVAEError, require
from facevae.core.files import write_text
from facevae.core.outputs import OutputKind, output_folder
from facevae.data.cache import load_cache
from facevae.data.datamodule import FaceCropDataModule
from facevae.data.extract import prepare_cache
from facevae.data.split import cv_groups
from facevae.metrics import smile_labels as sl
from facevae.metrics.psnr import mean_face_psnr
from facevae.metrics.smile_labels import SmileLabels

log = logging.getLogger(__name__)

# Rows of traversals.png: every latent of the seed's 32, the 32 highest-KL ones of a larger code (a figure of a
# thousand rows would take minutes to draw and could not be read).
TRAVERSAL_ROWS = 32

FIGURES = (
    "reconstruction.png",
    "interpolation.png",
    "samples.png",
    "traversals.png",
    "smiles_latent.png",
    "expression_shift.png",
)


def _earlier_evaluation(folder: Path) -> bool:
    """A folder evaluate.py wrote before it recorded its files: a metrics.json of a checkpoint's evaluation."""
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(metrics, dict) and {"checkpoint", "model_class"} <= metrics.keys()


EVALUATION = OutputKind(
    "evaluation",
    "evaluate.py",
    frozenset({"metrics.json", "latents.npz", "sampler.npz", *FIGURES}),
    earlier=_earlier_evaluation,
)


def evaluate(cfg: DictConfig) -> tuple[dict, Path]:
    """Run every analysis on cfg.ckpt_path; returns the metrics and the output directory."""
    if not cfg.get("ckpt_path"):
        raise FaceVAEError(
            "nothing to evaluate: give ckpt_path=PATH, sweep_dir=DIR (a train.py -m sweep), "
            "or compare=[PATH,PATH] for a side-by-side table"
        )
    start = time.perf_counter()
    run = load_run(cfg.ckpt_path, pick_device(cfg.device))
    check_sampler(cfg.get("sampler", "fitted"))
    out_dir = Path(cfg.output_dir).expanduser() if cfg.get("output_dir") else evaluation_dir(run.path)
    with output_folder(out_dir, EVALUATION) as tmp:  # checked before any work: it never replaces a user's files
        data_overrides = OmegaConf.to_container(cfg.data, resolve=True) if cfg.get("data") else {}
        dm = datamodule_for(run, data_overrides)
        require(
            len(dm.rows("test")) > 0,
            f"{run.path}: its run held out no test blocks (data.test_fraction=0): no frame "
            "the model never trained on to evaluate it with",
        )
        encodes = hasattr(run.model, "encode")  # a generator alone (the WGAN) gets the sections that apply to samples
        smiles = _extra_set(cfg.smiles, dm, cfg.smile_block_s) if cfg.get("smiles") and encodes else None
        neutral = _extra_set(cfg.neutral, dm, cfg.smile_block_s) if cfg.get("neutral") and smiles is not None else None
        if encodes:
            metrics, latents = analyse(run, dm, cfg, tmp, smiles, neutral)
            np.savez_compressed(tmp / "latents.npz", **latents)
        else:
            metrics = evaluate_generator(run, dm, cfg, tmp)
        # What evaluate.py compare= checks before it reuses these numbers.
        metrics.update(model_class=run.meta["model_class"], n_samples=int(cfg.n_samples), seed=int(cfg.seed))
        metrics["elapsed_s"] = round(time.perf_counter() - start, 1)
        write_text(tmp / "metrics.json", json.dumps(_jsonable(metrics), indent=2, sort_keys=True) + "\n")
    _log_to_wandb(cfg, run, metrics, out_dir)
    return metrics, out_dir


def evaluate_sweep(cfg: DictConfig) -> SweepReport:
    """Every job of cfg.sweep_dir evaluated (or its metrics reused), compared in sweep.csv, sweep.md and plots."""

    def job_metrics(ckpt: Path) -> dict:
        metrics = saved_metrics(ckpt, cfg.n_samples, cfg.seed)
        if metrics is not None:
            log.info("reusing %s", evaluation_dir(ckpt) / "metrics.json")
            return metrics
        log.info("evaluating %s", ckpt)
        job_cfg = cfg.copy()
        with open_dict(job_cfg):
            job_cfg.ckpt_path, job_cfg.output_dir, job_cfg.sweep_dir = str(ckpt), None, None
        return evaluate(job_cfg)[0]

    report = sweep_report(cfg.sweep_dir, job_metrics, cfg.get("output_dir"))
    if cfg.wandb:
        log_sweep_to_wandb(report, Path(cfg.sweep_dir))
    return report


def analyse(
    run: TrainedRun,
    dm: FaceCropDataModule,
    cfg: DictConfig,
    out: Path,
    smiles: ExtraSet | None,
    neutral: ExtraSet | None = None,
) -> tuple[dict, dict]:
    from facevae.analysis import interpolation, sampler_eval, traversals

    model, seed = run.model, int(cfg.seed)
    test, train = dm.images("test"), dm.images("train")
    metrics: dict = {"checkpoint": str(run.path), "n_test": len(test), "n_train": len(train)}

    log.info("reconstruction on %d test frames", len(test))
    recon = reconstruction_metrics(model, test, seed=seed)
    recon["psnr_mean_face"] = mean_face_psnr(train, test)
    reconstruction_figure(model, test, recon, out / "reconstruction.png")
    metrics.update({k: v for k, v in recon.items() if not k.endswith("_per_frame")})

    mu, logvar = encode_images(model, dm.data.crops)
    test_rows = dm.rows("test")

    log.info("%d samples from N(0, I) and from a sampler fitted to the training codes", cfg.n_samples)
    images = {"train": train, "test": test, "recon": decode_latents(model, mu[test_rows])}
    images["train_recon"] = decode_latents(model, mu[dm.rows("train")])
    sampled = sampler_eval.evaluate_samplers(
        model, mu[dm.rows("train")], mu[dm.rows("val")], images, int(cfg.n_samples), seed, cfg.sampler
    )
    metrics.update(sampled.metrics)
    sampler_eval.write_samplers(sampled, train, sampled.metrics, out)

    log.info("three-point interpolation")
    corners = interpolation.pick_corners(mu[test_rows], seed)
    metrics.update(
        interpolation.interpolation_figure(
            model,
            mu[test_rows][corners],
            interpolation.prior_corners(mu.shape[1], seed),
            test[corners],
            path=out / "interpolation.png",
            fitted_corners=sampled.fitted.sample(3, seed),
            verdicts={name: panel.verdict for name, panel in sampled.panels.items()},
        )
    )

    log.info("latent traversals")
    base = traversals.central_code(mu[test_rows])
    ranges = traversals.data_ranges(mu[dm.rows("train")])
    kl_dims = np.asarray(recon["kl_per_dim"])
    metrics.update(
        traversals.traversal_figure(
            model, base, kl_dims, out / "traversals.png", values=ranges, max_dims=TRAVERSAL_ROWS
        )
    )

    metrics.update(_smiles_and_shift(run, dm, cfg, out, mu, smiles, neutral))
    metrics.update(_disentanglement(dm, mu, cfg))
    latents = {"mu": mu, "logvar": logvar, "frame": dm.data.frames["frame"].to_numpy(), "split": dm.labels}
    if dm.data.factors() is not None:
        latents["factor_labels"] = dis.discretize(dm.data.factors(), cfg.factor_bins)
        latents["factor_names"] = np.array(dm.factor_names)
        latents["factors"] = dm.data.factors()
    return metrics, latents


@dataclass
class ExtraSet:
    """A `smiles=` or `neutral=` set of the same person: its crops and its groups for cross-validation."""

    path: Path
    crops: np.ndarray
    groups: np.ndarray
    grouping: str  # how the groups were made, in words


def _smiles_and_shift(
    run: TrainedRun,
    dm: FaceCropDataModule,
    cfg: DictConfig,
    out: Path,
    mu: np.ndarray,
    smiles: ExtraSet | None,
    neutral: ExtraSet | None = None,
) -> dict:
    """The seed's grouping test and expression shift, from a `smiles=` set or the data's own smile factor.

    The video's own frames are labelled first (`_video_labels`): a frame that smiles never counts as "other".
    """
    from facevae.analysis import smile_analysis as sa

    held = np.sort(np.concatenate([dm.rows("val"), dm.rows("test")]))
    # Held-out frames alone are two blocks of the 3-minute demo: too few blocks of time for a blockwise AUC.
    # By default the grouping uses every frame, with the probe still trained and tested on different groups.
    pool = held if cfg.smile_frames == "heldout" else np.flatnonzero(dm.labels >= 0)
    groups, grouping = cv_groups(dm.data.frames["time_s"].to_numpy(), cfg.smile_block_s)
    labels = _video_labels(dm, cfg, smiles, neutral, groups)
    if labels is None:
        log.info("no smiles: pass smiles=PATH (a video or photo folder of smiling faces) for the smile analyses")
        return {}
    result = _label_report(labels, dm, pool)
    other = pool[labels.labels[pool] == 0]
    if smiles is not None:
        mu_smile, _ = encode_images(run.model, smiles.crops)
        smile_images, smile_groups, smile_grouping = smiles.crops, smiles.groups, smiles.grouping
    else:
        smiling = pool[labels.labels[pool] == 1]
        mu_smile, smile_images, smile_groups, smile_grouping = (
            mu[smiling],
            dm.data.crops[smiling],
            groups[smiling],
            grouping,
        )
    if len(mu_smile) < 5 or len(other) < 5:
        log.warning("too few smiling (%d) or other (%d) frames for the smile analyses", len(mu_smile), len(other))
        return {**result, "n_smile": len(mu_smile), "n_other": len(other)}
    log.info("smiles: %d smiling against %d others (%s frames)", len(mu_smile), len(other), cfg.smile_frames)
    # A separate set's groups are numbered after the video's, so no group is on both sides of a fold.
    smile_groups = sa.disjoint_blocks(smile_groups, groups) if smiles is not None else smile_groups
    # Photos, or a clip cut into stretches: each group is held out once (up to 20 folds), not dealt into 5.
    n_folds = 5 if smile_grouping.startswith("blocks") else min(20, max(5, len(np.unique(smile_groups))))
    result.update(
        sa.smile_grouping(mu_smile, mu[other], smile_groups, groups[other], seed=int(cfg.seed), n_folds=n_folds)
    )
    result["smile_auc_groups"] = f"smiles: {smile_grouping}; others: {grouping}"
    result["smile_source"] = str(smiles.path) if smiles is not None else labels.rule
    if smiles is not None:
        result.update(_in_video_auc(mu, labels, pool, groups, int(cfg.seed)))
    note = _labels_note(labels, smiles)
    scores = labels.probability[other] if labels.probability is not None else None
    result.update(
        sa.smiles_latent_figure(
            mu_smile, mu[other], out / "smiles_latent.png", smile_scores=scores, seed=int(cfg.seed), note=note
        )
    )
    starts = np.intersect1d(other, held)  # the shift moves faces the model never trained on, labelled non-smiling
    if len(starts) == 0:
        log.warning("no held-out frame labelled non-smiling to shift toward a smile")
        return result
    shift_data = (mu_smile, smile_images, smile_groups, labels, groups)
    result.update(_expression_shift(run, dm, cfg, out, mu, shift_data, other, starts, note))
    return result


def _video_labels(
    dm: FaceCropDataModule, cfg: DictConfig, smiles: ExtraSet | None, neutral: ExtraSet | None, groups: np.ndarray
) -> SmileLabels | None:
    """Which of the video's frames smile: its smile factor if it has one, else labelled from the smiles set
    (against a neutral set when given, else positive-unlabelled against the video itself)."""
    from facevae.analysis import smile_analysis as sa

    names = dm.factor_names
    if "smile" in names:
        factor = dm.data.factors()[:, names.index("smile")]
        rule = f"smile factor > {cfg.smile_threshold:g} (not smiling < 0.2)"
        return SmileLabels(sa.smile_labels_from_factor(factor, cfg.smile_threshold), factor, rule)
    if smiles is None:
        return None
    try:
        if neutral is not None:
            return sl.label_by_classifier(dm.data.crops, smiles.crops, neutral.crops)
        return sl.label_by_pu(dm.data.crops, smiles.crops, groups, smiles.groups)
    except ValueError as err:
        raise FaceVAEError(f"{smiles.path}: the video's own smiles could not be told apart ({err})") from None


def _label_report(labels: SmileLabels, dm: FaceCropDataModule, pool: np.ndarray) -> dict:
    """The rule, how many frames it called smiling and not, and how far the smile cascade agrees with it."""
    votes = sl.smile_cascade_votes(dm.data.crops[pool])
    return {
        "smile_label_rule": labels.rule,
        "n_video_smiling": labels.n_smiling,
        "n_video_not_smiling": labels.n_not_smiling,
        "n_video_frames": len(labels.labels),
        "smile_label_cascade_auc": sl.cascade_agreement(labels.labels[pool], votes),
    }


def _labels_note(labels: SmileLabels, smiles: ExtraSet | None) -> str:
    source = f"smiles: {smiles.path.name}; " if smiles is not None else ""
    return (
        f"{source}the video's frames labelled by {labels.rule}: {labels.n_smiling} of {len(labels.labels)} "
        f"smiling, {labels.n_not_smiling} not smiling (the others start the shift)"
    )


def _in_video_auc(mu: np.ndarray, labels: SmileLabels, pool: np.ndarray, groups: np.ndarray, seed: int) -> dict:
    """With a separate smiles set, the AUC of the video's own smiling frames against its non-smiling ones too: a
    separate set also differs in session (light, framing), which the in-video AUC does not reward."""
    from facevae.analysis.smiles import blockwise_auc

    rows = pool[labels.labels[pool] >= 0]
    try:
        return {"smile_auc_in_video": blockwise_auc(mu[rows], labels.labels[rows], groups[rows], seed=seed)}
    except ValueError as err:
        log.info("smile_auc_in_video left out: %s", err)
        return {}


def _expression_shift(run, dm, cfg, out, mu, shift_data, other, starts, note) -> dict:
    from facevae.analysis import expression_shift as shift
    from facevae.analysis.smiles import edit_direction

    mu_smile, smile_images, smile_groups, labels, groups = shift_data
    names, factors, train = dm.factor_names, dm.data.factors(), dm.rows("train")
    z = np.concatenate([mu_smile, mu[other]])
    normal = edit_direction(z, np.r_[np.ones(len(mu_smile), int), np.zeros(len(other), int)])
    centroid_smile = mu_smile.mean(axis=0)
    others = None
    if "smile" in names:
        # A regressor fitted on real training crops scores how much any image smiles, decoded ones included.
        scorer = shift.fit_smile_regressor(dm.data.crops[train], factors[train, names.index("smile")], groups[train])
        rest = [n for n in names if n != "smile"]
        columns = [names.index(n) for n in rest]
        others = shift.fit_factor_regressors(dm.data.crops[train], factors[train][:, columns], rest, groups[train])
    else:
        negatives = train[labels.labels[train] == 0]  # training frames labelled non-smiling, never the smiles
        images = np.concatenate([smile_images, dm.data.crops[negatives]])
        y = np.r_[np.ones(len(smile_images)), np.zeros(len(negatives))]
        scorer = shift.fit_smile_classifier(images, y, np.r_[smile_groups, groups[negatives]])
    nuisance, nuisance_names = _pose_and_light(dm)
    target = shift.ShiftTarget(centroid_smile, normal, shift.latent_directions(mu[train], nuisance[train]))
    rng = np.random.default_rng(int(cfg.seed))
    starts = np.sort(rng.choice(starts, size=min(cfg.shift_frames, len(starts)), replace=False))
    result = shift.expression_shift(
        run.model,
        dm.data.crops[starts],
        mu[starts],
        target,
        scorer,
        other_regressors=others,
        images_smile=smile_images,
        cascade=sl.smile_cascade_votes,
    )
    shift.expression_shift_figure(result, dm.data.crops[starts], out / "expression_shift.png", note=note)
    result["smile_scorer_heldout_score"] = scorer.heldout_score
    result["shift_conditional_keeps"] = nuisance_names
    result["shift_start_frames"] = dm.data.frames["frame"].to_numpy()[starts].tolist()  # which frames were moved
    return {k: v for k, v in result.items() if k.startswith(("shift_", "smile_score", "smile_scorer"))}


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


def _disentanglement(dm: FaceCropDataModule, mu: np.ndarray, cfg: DictConfig) -> dict:
    """Supervised scores against the sidecar factors when there are any; the unsupervised ones always.

    They use every frame in time order (a representation's disentanglement is a property of the data it encodes,
    not of held-out generalisation); SAP and DCI fit on the first 80% and score on the last 20% of that order.
    """
    log.info("disentanglement over %d frames", len(mu))
    scores = dis.unsupervised_scores(mu, cfg.factor_bins)
    factors = dm.data.factors()
    if factors is not None:
        order = np.argsort(dm.data.frames["time_s"].to_numpy(), kind="stable")
        labels = dis.discretize(factors[order], cfg.factor_bins)
        details = dis.mig_details(mu[order], labels, cfg.factor_bins)
        d = dis.dci(mu[order], labels, bins=cfg.factor_bins)
        scores.update(
            {
                "mig": float(details["mig"]),
                "mig_per_factor": dict(zip(dm.factor_names, map(float, details["per_factor"]), strict=True)),
                "sap": float(dis.sap(mu[order], factors[order], continuous=True)),
                "dci_disentanglement": float(d["disentanglement"]),
                "dci_completeness": float(d["completeness"]),
                "dci_informativeness": float(d["informativeness"]),
                # Which factors the latents hold: position, scale and roll should fall with aligned crops.
                "dci_informativeness_per_factor": dict(
                    zip(dm.factor_names, d["informativeness_per_factor"], strict=True)
                ),
                "factor_bins": int(cfg.factor_bins),
            }
        )
    return scores


def _extra_set(path: str, dm: FaceCropDataModule, block_s: float) -> ExtraSet:
    """A `smiles=` or `neutral=` video or photo folder through the training data's extraction (and cache), with
    groups for cross-validation: blocks of time, each photo its own, or a short clip cut into stretches."""
    result = prepare_cache(Path(path), dm.hparams.cache_dir, dm.params, progress=False)
    data = load_cache(result.path)
    photos = data.manifest.get("kind") == "images"
    groups, grouping = cv_groups(data.frames["time_s"].to_numpy(), block_s, independent=photos)
    return ExtraSet(Path(path), np.array(data.crops), groups, grouping)  # a writable copy, as torch wants


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _log_to_wandb(cfg: DictConfig, run: TrainedRun, metrics: dict, out_dir: Path) -> None:
    """An evaluation run in the training run's project and group, named after it, with every number and figure."""
    if not cfg.wandb or os.environ.get("WANDB_MODE") == "disabled":
        return
    import wandb

    train_run = run.meta.get("wandb") or {}
    eval_run = wandb.init(
        project=train_run.get("project") or "facevae",
        group=train_run.get("group") or train_run.get("id"),
        name=f"eval-{train_run.get('name') or run.path.stem}",
        job_type="evaluation",
        dir=str(out_dir),
        mode=os.environ.get("WANDB_MODE", "offline"),
        config={"ckpt_path": str(run.path), "train_run_id": train_run.get("id"), "train_config": run.config},
    )
    scalars = {f"eval/{k}": v for k, v in _jsonable(metrics).items() if isinstance(v, int | float)}
    images = {f"eval/{name[:-4]}": wandb.Image(str(out_dir / name)) for name in FIGURES if (out_dir / name).exists()}
    eval_run.log({**scalars, **images})
    eval_run.summary.update(scalars)
    eval_run.finish()


def summary_lines(metrics: dict) -> list[str]:
    keys = [
        "psnr",
        "psnr_mean_face",
        "ssim",
        "neg_elbo",
        "kl",
        "active_units",
        "sample_face_rate",
        "sample_precision",
        "sample_recall",
        "sample_fd",
        "diversity_ratio",
        "memorisation_ratio",
        "smile_silhouette",
        "smile_auc",
        "shift_smile_gain",
        "mig",
        "sap",
        "dci_disentanglement",
        "dci_completeness",
        "dci_informativeness",
    ]
    return [f"  {k:22s} {metrics[k]:.4g}" for k in keys if isinstance(metrics.get(k), int | float)]
