"""Comparing the jobs of a sweep without a dashboard: one row per job, a Markdown summary and the plots.

`python evaluate.py sweep_dir=multirun/DATE/TIME` evaluates each job's best checkpoint (reusing a metrics.json
already written for it: facevae.evaluation.context.saved_metrics) and writes sweep.csv, sweep.md and the plots
into the sweep directory: the rate-distortion curve (KL against reconstruction NLL on the test blocks, one point
per job), and PSNR, disentanglement and active units against beta, with the spread over seeds.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from facevae.core.errors import FaceVAEError, user_error
from facevae.core.files import write_text
from facevae.core.outputs import OutputKind, output_folder
from facevae.core.sweep_folder import job_dirs, read_status, sweep_group
from facevae.metrics.sample_quality import MEASURES as QUALITY_MEASURES
from facevae.plots.sweep import PLOTS, plot_sweep
from facevae.plots.tables import MISSING, markdown_table

log = logging.getLogger(__name__)

IDENTITY = ["job", "status", "swept", "model", "beta", "latent_dim", "seed"]
# The measures a sweep is compared on, as metrics.json names them (test blocks unless said otherwise).
MEASURES = [
    "psnr",
    "psnr_mean_face",
    "ssim",
    "recon_nll",
    "kl",
    "neg_elbo",
    "active_units",
    "active_units_kl",
    "mig",
    "sap",
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness",
    "smile_auc",
    "shift_smile_gain",
    "sample_face_rate",
    "diversity_ratio",
    "memorisation_ratio",
    # Sample quality of the default sampler (evaluate.py's sampler=), each beside its real reference and interval.
    *(f"sample_{m}{end}" for m in QUALITY_MEASURES for end in ("", "_real", "_ci")),
]
SHOWN = [
    "psnr",
    "recon_nll",
    "kl",
    "active_units",
    "mig",
    "dci_disentanglement",
    "smile_auc",
    "sample_face_rate",
    "sample_precision",
    "sample_recall",
]


def _earlier_report(folder: Path) -> bool:
    """A folder a sweep report went into before facevae recorded its files: sweep.csv with this table's header."""
    try:
        with (folder / "sweep.csv").open() as f:
            return f.readline().startswith(",".join(IDENTITY[:3]))
    except (OSError, UnicodeDecodeError):
        return False


def report_kind(shared: bool) -> OutputKind:
    """The sweep report's files; written beside the jobs in the sweep directory (shared), or into a folder of its
    own given by output_dir=."""
    files = frozenset({"sweep.csv", "sweep.md", *PLOTS})
    return OutputKind("sweep report", "evaluate.py sweep_dir=", files, shared=shared, earlier=_earlier_report)


@dataclass
class SweepReport:
    table: pd.DataFrame
    out_dir: Path
    files: list[Path]


def best_checkpoint(job_dir: Path) -> Path | None:
    """The job's best checkpoint by its monitored metric; its last one when no best was kept."""
    ckpts = job_dir / "checkpoints"
    best = sorted(ckpts.glob("best*.ckpt"), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    last = ckpts / "last.ckpt"
    return last if last.is_file() else None


def sweep_jobs(sweep_dir: Path) -> list[tuple[int | str, Path]]:
    """(label, directory) of each job in order. A job that is a stacked run (sweep=beta_stacked, e.g. one per seed of
    `train.py -m sweep=beta_stacked seed=0,1,2`) counts each of its members as a job of its own, labelled `2/0`."""
    jobs = []
    for job_dir in job_dirs(sweep_dir):
        members = [m for m in job_dirs(job_dir) if _is_member(m)]
        jobs += [(f"{job_dir.name}/{m.name}", m) for m in members] if members else [(int(job_dir.name), job_dir)]
    return jobs


def _is_member(job_dir: Path) -> bool:
    config = job_dir / ".hydra" / "config.yaml"
    return config.is_file() and "stacked_run" in OmegaConf.load(config)


def job_identity(job_dir: Path, label: int | str | None = None) -> dict:
    """What the job was: its swept overrides and its beta, latent size and seed, from Hydra's saved config."""
    status = read_status(job_dir)
    row = {
        "job": int(job_dir.name) if label is None else label,
        "status": status["status"],
        "swept": " ".join(status.get("swept", [])),
    }
    config_file = job_dir / ".hydra" / "config.yaml"
    if config_file.is_file():
        cfg = OmegaConf.load(config_file)
        model = cfg.get("model") or {}
        row["model"] = str(model.get("_target_", "")).rpartition(".")[2]
        row["beta"] = model.get("beta")
        row["latent_dim"] = _latent_dim(model)
        row["seed"] = cfg.get("seed")
    if status["status"] == "failed":
        row["error"] = status.get("error", "")
    return row


def _latent_dim(model: dict) -> int | None:
    """The code size a job's model config names: under its network (model.net, a WGAN's model.generator), or flat
    as in runs made before the modules took built networks."""
    for part in ("net", "generator"):
        node = model.get(part)
        if node is not None and node.get("latent_dim") is not None:
            return node.get("latent_dim")
    return model.get("latent_dim")


def collect(sweep_dir: Path, metrics_of: Callable[[Path], dict]) -> pd.DataFrame:
    """One row per job: identity, status and the measures `metrics_of` gives for its best checkpoint (evaluate.py's
    metrics.json). Jobs without a checkpoint keep a row with their status."""
    rows = []
    for label, job_dir in sweep_jobs(sweep_dir):
        row = job_identity(job_dir, label)
        ckpt = best_checkpoint(job_dir)
        row["checkpoint"] = str(ckpt) if ckpt else ""
        if ckpt is not None:
            try:
                row.update({k: v for k, v in metrics_of(ckpt).items() if k in MEASURES})
            except Exception as err:  # noqa: BLE001 - one bad job must not hide the others
                reason = user_error(err) or f"{type(err).__name__}: {err}"
                log.error("job %s: evaluation failed: %s", job_dir.name, reason)
                row["status"], row["error"] = "evaluation failed", str(reason)
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.reindex(columns=[*IDENTITY, *MEASURES, "checkpoint", "error"])


def spread_over_seeds(table: pd.DataFrame, measures: list[str]) -> pd.DataFrame:
    """Mean and standard deviation of each measure over the seeds of each (beta, latent size)."""
    done = table.dropna(subset=["beta"]).dropna(subset=measures, how="all")
    if done.empty:
        return pd.DataFrame()
    grouped = done.groupby(["beta", "latent_dim"], dropna=False)[measures].agg(["mean", "std", "count"])
    return grouped.reset_index()


# -- writing -------------------------------------------------------------------------------------------------------
def write_report(table: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    files = [write_text(out_dir / "sweep.csv", table.to_csv(index=False))]
    files.append(write_text(out_dir / "sweep.md", markdown_report(table, sweep_dir)))
    files += plot_sweep(table, out_dir)
    return files


def markdown_report(table: pd.DataFrame, sweep_dir: Path) -> str:
    counts = table["status"].value_counts().to_dict()
    lines = [f"# Sweep {sweep_dir}", "", f"{len(table)} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items())]
    lines += ["", "Measured on each job's held-out test blocks by evaluate.py (see the README's Evaluate section).", ""]
    shown = [c for c in SHOWN if table[c].notna().any()]
    lines += _markdown_table(table, ["job", "status", "swept", "beta", "latent_dim", "seed", *shown])
    spread = spread_over_seeds(table, shown)
    if not spread.empty and (spread[(shown[0], "count")] > 1).any():
        lines += ["", "## Over seeds (mean ± standard deviation)", ""]
        summary = pd.DataFrame({"beta": spread["beta"], "latent_dim": spread["latent_dim"]})
        summary["seeds"] = spread[(shown[0], "count")].astype(int)
        for c in shown:
            summary[c] = [_pm(m, s) for m, s in zip(spread[(c, "mean")], spread[(c, "std")], strict=True)]
        lines += _markdown_table(summary, list(summary.columns))
    failed = table[table["status"] != "finished"]
    if len(failed):
        lines += ["", "## Jobs that did not finish", ""]
        lines += [
            f"- job {r.job} ({r.swept}): {r.status}, {r.error if isinstance(r.error, str) else ''}"
            for r in failed.itertuples()
        ]
    return "\n".join(lines) + "\n"


def _markdown_table(table: pd.DataFrame, columns: list[str]) -> list[str]:
    return markdown_table(table.to_dict("records"), columns)


def _pm(mean: float, std: float) -> str:
    if isinstance(mean, float) and math.isnan(mean):
        return MISSING
    return f"{mean:.4g} ± {std:.2g}" if not math.isnan(std) else f"{mean:.4g}"


# -- the whole report ----------------------------------------------------------------------------------------------
def sweep_report(sweep_dir: Path | str, metrics_of: Callable[[Path], dict], out_dir: Path | None = None):
    """Collect, write and return the report of a sweep directory written by `train.py -m`."""
    sweep_dir = Path(sweep_dir).expanduser()
    if not sweep_dir.is_dir():
        raise FaceVAEError(f"sweep_dir={sweep_dir}: no such directory")
    if not job_dirs(sweep_dir):
        raise FaceVAEError(f"sweep_dir={sweep_dir}: no job directories (0/, 1/, ...) inside; is it a multirun dir?")
    out_dir = Path(out_dir).expanduser() if out_dir else sweep_dir
    shared = out_dir.resolve() == sweep_dir.resolve()
    with output_folder(out_dir, report_kind(shared)) as staging:  # checked before any job is evaluated
        table = collect(sweep_dir, metrics_of)
        files = [out_dir / f.name for f in write_report(table, sweep_dir, staging)]
    if table[MEASURES].isna().all(axis=None):
        raise FaceVAEError(f"sweep_dir={sweep_dir}: no job could be evaluated (why: {out_dir / 'sweep.md'})")
    return SweepReport(table, out_dir, files)


def log_to_wandb(report: SweepReport, sweep_dir: Path) -> None:
    """The table and plots as one `sweep-report` run in the sweep's W&B group (offline unless WANDB_MODE=online)."""
    if os.environ.get("WANDB_MODE") == "disabled":
        return
    import wandb  # slow to import, and needed only when a report is logged

    project = "facevae"
    first = job_dirs(sweep_dir)[0] / ".hydra" / "config.yaml"
    if first.is_file():
        project = OmegaConf.select(OmegaConf.load(first), "logger.wandb.project") or project
    run = wandb.init(
        project=project,
        group=sweep_group(sweep_dir),
        name=f"sweep-report {sweep_group(sweep_dir)}",
        job_type="sweep-report",
        dir=str(report.out_dir),
        mode=os.environ.get("WANDB_MODE", "offline"),
        config={"sweep_dir": str(sweep_dir), "jobs": len(report.table)},
    )
    table = report.table.astype(object).where(report.table.notna(), None)
    run.log({"sweep/table": wandb.Table(dataframe=table)})
    run.log({f"sweep/{p.stem}": wandb.Image(str(p)) for p in report.files if p.suffix == ".png"})
    run.finish()
