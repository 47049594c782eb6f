"""evaluate.py's work: the selected analyses on one checkpoint, written to an output directory and W&B.

The analyses are the `analysis` config group (facevae.evaluation.analyses). Everything is written into a staging
folder and moved into the output folder at the end, so a failed evaluation leaves the previous results (or nothing)
rather than half of a new set; the output folder must be new, empty or a previous evaluation, whose files alone it
replaces (facevae.core.outputs).
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from facevae.core import rules
from facevae.core.checkpoint import TrainedRun, load_run
from facevae.core.device import pick_device
from facevae.core.errors import FaceVAEError, require
from facevae.core.files import write_text
from facevae.core.outputs import OutputKind, output_folder
from facevae.data.from_checkpoint import datamodule_for
from facevae.evaluation.context import Evaluation, evaluation_dir, extra_set, saved_metrics
from facevae.evaluation.generator import evaluate_generator
from facevae.evaluation.samplers import check_sampler
from facevae.evaluation.sweep_report import SweepReport, sweep_report
from facevae.evaluation.sweep_report import log_to_wandb as log_sweep_to_wandb
from facevae.metrics.disentanglement import discretize
from facevae.models.inference import encode_images

log = logging.getLogger(__name__)

AnalysisFn = Callable[[Evaluation], dict]

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
    """Run the selected analyses (cfg.analysis) on cfg.ckpt_path; returns the metrics and the output directory."""
    if not cfg.get("ckpt_path"):
        raise FaceVAEError(
            "nothing to evaluate: give ckpt_path=PATH, sweep_dir=DIR (a train.py -m sweep), "
            "or compare=[PATH,PATH] for a side-by-side table"
        )
    start = time.perf_counter()
    analyses = build_analyses(cfg)  # every analysis and its settings checked before any work
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
        smiles = extra_set(cfg.smiles, dm, cfg.smile_block_s) if cfg.get("smiles") and encodes else None
        neutral = extra_set(cfg.neutral, dm, cfg.smile_block_s) if cfg.get("neutral") and smiles is not None else None
        if encodes:
            mu, logvar = encode_images(run.model, dm.data.crops)
            evaluation = Evaluation(run, dm, cfg, tmp, mu, logvar, smiles, neutral)
            metrics = analyse(evaluation, analyses)
            np.savez_compressed(tmp / "latents.npz", **_latents(evaluation))
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

    build_analyses(cfg)  # checked before the first job is evaluated

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


def build_analyses(cfg: DictConfig) -> dict[str, AnalysisFn]:
    """The analyses cfg.analysis selects, by name, in order, each built from its `_target_` (a class or a function
    taking the Evaluation) with its settings checked; `analysis.NAME=null` leaves one out."""
    nodes = cfg.get("analysis")
    require(isinstance(nodes, DictConfig), f"analysis={rules.shown(nodes)}: must be a group (analysis=[samples,...])")
    built = {}
    for name, node in nodes.items():
        if node is not None:
            built[str(name)] = _build(f"analysis.{name}", OmegaConf.to_container(node, resolve=True))
    require(built, "analysis: none selected; give at least one, e.g. analysis=[reconstruction] (conf/analysis/)")
    return built


def _build(prefix: str, node: object) -> AnalysisFn:
    require(isinstance(node, dict) and "_target_" in node, f"{prefix}: must name an analysis to run (_target_)")
    target = node["_target_"]
    rules.text(f"{prefix}._target_", target)
    module, _, name = str(target).rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        found = None
    require(callable(found), f"{prefix}._target_={target}: no such analysis (a class or function to import)")
    settings = {k: v for k, v in node.items() if not k.startswith("_")}
    if inspect.isclass(found):
        rules.known_keys(prefix, settings, found.__init__, found.__name__)
        check = getattr(found, "check_settings", None)
        if check is not None:
            check(settings, prefix)
        return found(**settings)
    rules.known_keys(prefix, settings, found, name)
    return partial(found, **settings)


def analyse(ev: Evaluation, analyses: dict[str, AnalysisFn]) -> dict:
    """Every analysis in turn on one checkpoint; their numbers in one dict, after what every evaluation records."""
    metrics: dict = {"checkpoint": str(ev.run.path), "n_test": len(ev.test), "n_train": len(ev.train)}
    for name, analysis in analyses.items():
        result = analysis(ev)
        if not isinstance(result, dict):
            raise FaceVAEError(f"analysis.{name}: returned {type(result).__name__}, not a dict of numbers")
        metrics.update(result)
    return metrics


def _latents(ev: Evaluation) -> dict[str, np.ndarray]:
    """latents.npz: every frame's code, frame number and split, and with factors their values and bins."""
    dm = ev.dm
    latents = {"mu": ev.mu, "logvar": ev.logvar, "frame": dm.data.frames["frame"].to_numpy(), "split": dm.labels}
    if dm.data.factors() is not None:
        latents["factor_labels"] = discretize(dm.data.factors(), ev.cfg.factor_bins)
        latents["factor_names"] = np.array(dm.factor_names)
        latents["factors"] = dm.data.factors()
    return latents


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
    import wandb  # slow to import, and needed only when a run is logged

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
    figures = sorted({*FIGURES, *(p.name for p in out_dir.glob("*.png"))})  # a user's own analyses' figures too
    images = {f"eval/{name[:-4]}": wandb.Image(str(out_dir / name)) for name in figures if (out_dir / name).exists()}
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
    return [
        f"  {k:22s} {metrics[k]:.4g}{_reference(metrics, k)}" for k in keys if isinstance(metrics.get(k), int | float)
    ]


# The reference each printed score reads against, as metrics.json keeps it beside the score.
CHANCE = {"smile_auc": 0.5, "smile_silhouette": 0.0}


def _reference(metrics: dict, key: str) -> str:
    real = metrics.get(f"{key}_real")
    if isinstance(real, int | float):
        return f"   (real-vs-real {real:.4g})"
    if key in CHANCE:
        return f"   (chance {CHANCE[key]:g})"
    return ""
