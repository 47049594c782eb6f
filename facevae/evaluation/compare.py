"""evaluate.py compare=[A,B,...]: checkpoints side by side on the measures they share, whatever the model.

One row per checkpoint: the model, its latent size and beta, the sample measures of SHARED_MEASURES (generator.py)
and, for a model that reconstructs, the test PSNR. A checkpoint's numbers come from the metrics.json evaluate.py
wrote beside it when that file holds every shared measure for the same n_samples and seed; otherwise they are
computed here (the sample measures only, tens of seconds). Writes compare.csv, compare.md and compare.png (each
model's first 16 samples over its prior interpolation grid, one column per checkpoint) into the output directory.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from facevae.core.checkpoint import TrainedRun, load_run
from facevae.core.device import pick_device
from facevae.core.errors import FaceVAEError
from facevae.core.files import atomic_file, write_text
from facevae.core.outputs import OutputKind, output_folder
from facevae.core.tensors import image_grid
from facevae.data.from_checkpoint import datamodule_for
from facevae.evaluation.context import evaluation_dir, saved_metrics
from facevae.evaluation.generator import GRID, SHARED_MEASURES, sample_measures
from facevae.metrics.reconstruction import reconstruction_scores
from facevae.models.inference import prior_grid, prior_samples, reconstruction_terms
from facevae.plots import tables
from facevae.plots.compare import compare_figure

log = logging.getLogger(__name__)

MODEL_NAMES = {"BetaVAEModule": "beta-VAE", "WGANGPModule": "WGAN-GP"}
MISSING = tables.MISSING  # a measure that does not apply to the model (PSNR of a GAN, beta of anything but a beta-VAE)
COLUMNS = ("name", "model", "latent_dim", "beta", *SHARED_MEASURES, "psnr", "source", "checkpoint")


def _earlier_comparison(folder: Path) -> bool:
    """A folder a comparison wrote before facevae recorded its files: compare.csv with this table's header."""
    try:
        with (folder / "compare.csv").open() as f:
            return f.readline().startswith("name,model,latent_dim,")
    except (OSError, UnicodeDecodeError):
        return False


COMPARISON = OutputKind(
    "comparison",
    "evaluate.py compare=",
    frozenset({"compare.csv", "compare.md", "compare.png"}),
    earlier=_earlier_comparison,
)


def compare(cfg: DictConfig) -> tuple[list[dict], Path]:
    """Rows of the comparison of cfg.compare's checkpoints, and the directory the table and figure went to."""
    paths = _checkpoint_paths(cfg)
    device = pick_device(cfg.device)
    runs = [load_run(path, device) for path in paths]  # every checkpoint readable before any work
    out_dir = Path(cfg.output_dir).expanduser() if cfg.get("output_dir") else Path(cfg.paths.log_dir) / "compare"
    with output_folder(out_dir, COMPARISON) as tmp:  # checked before any work: it never replaces a user's files
        rows, panels = [], []
        for run in runs:
            log.info("%s: %s", run.path, type(run.model).__name__)
            rows.append(_row(run, cfg))
            panels.append(_panels(run.model, int(cfg.seed)))
        write_csv(rows, tmp / "compare.csv")
        write_text(tmp / "compare.md", "\n".join(markdown_table(rows) + markdown_notes(rows)) + "\n")
        compare_figure([f"{r['name']} ({r['model']})" for r in rows], panels, tmp / "compare.png")
    return rows, out_dir


def _checkpoint_paths(cfg: DictConfig) -> list[str]:
    if cfg.get("ckpt_path"):
        raise FaceVAEError("give ckpt_path=PATH (one checkpoint, every analysis) or compare=[PATH,PATH], not both")
    paths = cfg.compare  # a list, or one path on its own: compare=PATH is a table of one row
    return [str(p) for p in (OmegaConf.to_container(paths) if isinstance(paths, ListConfig) else [paths])]


def _row(run: TrainedRun, cfg: DictConfig) -> dict:
    hp = run.model.hparams
    row = {
        "name": _short_name(run),
        "model": MODEL_NAMES.get(type(run.model).__name__, type(run.model).__name__),
        "latent_dim": int(hp.latent_dim),
        "beta": _beta(hp),
        "checkpoint": str(run.path),
    }
    reused = _reusable_metrics(run, cfg)
    if reused is not None:
        row.update({k: reused[k] for k in SHARED_MEASURES}, psnr=reused.get("psnr", MISSING), source="metrics.json")
        return row
    overrides = OmegaConf.to_container(cfg.data, resolve=True) if cfg.get("data") else {}
    dm = datamodule_for(run, overrides)
    test, train = dm.images("test"), dm.images("train")
    log.info("%s: %d samples against %d training and %d test crops", row["name"], cfg.n_samples, len(train), len(test))
    row.update(sample_measures(run.model, train, test, int(cfg.n_samples), int(cfg.seed)))
    row["psnr"] = MISSING
    if hasattr(run.model, "reconstruct"):
        row["psnr"] = reconstruction_scores(reconstruction_terms(run.model, test, seed=int(cfg.seed))).scores["psnr"]
    row["source"] = "computed"
    return row


def _reusable_metrics(run: TrainedRun, cfg: DictConfig) -> dict | None:
    """evaluate.py's metrics.json for this checkpoint at this n_samples and seed, if it holds every shared measure
    (older files that do not record them are recomputed rather than trusted)."""
    metrics = saved_metrics(run.path, cfg.n_samples, cfg.seed)
    if metrics is None or any(not isinstance(metrics.get(k), int | float | list) for k in SHARED_MEASURES):
        return None
    log.info("reusing %s", evaluation_dir(run.path) / "metrics.json")
    return metrics


def _short_name(run: TrainedRun) -> str:
    """<run directory>/<checkpoint stem>: e.g. 09-35-06/best-epoch199, enough to tell rows apart."""
    return f"{run.run_dir.name}/{run.path.stem}"


def _beta(hp) -> float | str:
    if "beta" not in hp:
        return MISSING
    return MISSING if hp.get("capacity_max") is not None else float(hp.beta)  # the capacity objective ignores beta


def _panels(model, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The first 16 of the prior samples the measures use, and the prior interpolation grid, as pictures."""
    _, sampled = prior_samples(model, 16, seed)
    return image_grid(sampled, ncols=8), image_grid(prior_grid(model, seed, GRID), ncols=GRID)


def write_csv(rows: list[dict], path: Path) -> None:
    with atomic_file(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows([{k: row.get(k, MISSING) for k in COLUMNS} for row in rows])


def markdown_table(rows: list[dict]) -> list[str]:
    """The table as Markdown lines, one row per checkpoint (the full paths are in compare.csv and compare.md)."""
    return tables.markdown_table(rows, [c for c in COLUMNS if c != "checkpoint"])


def markdown_notes(rows: list[dict]) -> list[str]:
    """What the columns mean, and which checkpoint each row is: the lines under the table in compare.md."""
    return [
        "",
        "Samples: n prior samples z ~ N(0, I) against the test crops (heldout_*) and the training crops "
        "(a beta-VAE's metrics.json reused here holds its default sampler's, evaluate.py's sampler=). "
        "diversity_ratio ~ 0 is mode collapse; memorisation_ratio well below 1 means samples sit nearer training "
        "frames than new frames do. sample_precision, _recall, _density, _coverage and _fd: random-CNN features "
        "of the samples against the test crops, _real the same for training crops in their place (what new frames "
        "of the person reach), _ci a bootstrap 95% interval. psnr: test frames reconstructed, for models with an "
        "encoder. source: metrics.json of an earlier evaluate.py, or computed by this comparison.",
        "",
        *[f"- {row['name']}: {row['checkpoint']}" for row in rows],
    ]
