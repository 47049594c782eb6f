"""A sweep's figures: the rate-distortion curve (KL against reconstruction NLL, one point per job) and PSNR,
disentanglement and active units against beta, with the spread over seeds and the mean training face as baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facevae.plots.figure import save_figure

PLOTS = ("rate_distortion.png", "psnr_vs_beta.png", "disentanglement_vs_beta.png", "active_units_vs_beta.png")


# -- plots ---------------------------------------------------------------------------------------------------------
def plot_sweep(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """The sweep's figures; a figure whose measure no job has (MIG without factors) is not drawn."""
    # matplotlib is heavy and only needed when a figure is drawn.
    import matplotlib

    matplotlib.use("Agg")
    done = table.dropna(subset=["psnr"])
    if done.empty:
        return []
    files = [_rate_distortion(done, out_dir / "rate_distortion.png")]
    with_beta = done.dropna(subset=["beta"])
    if with_beta.empty:
        return files
    panels = {
        "psnr_vs_beta.png": [("psnr", "test PSNR (dB)")],
        "disentanglement_vs_beta.png": [("mig", "MIG"), ("dci_disentanglement", "DCI disentanglement")],
        "active_units_vs_beta.png": [("active_units", "active units (Var of mu > 0.01)")],
    }
    for name, measures in panels.items():
        measures = [(c, label) for c, label in measures if with_beta[c].notna().any()]
        if measures:
            files.append(_against_beta(with_beta, measures, out_dir / name))
    return files


def _rate_distortion(done: pd.DataFrame, path: Path) -> Path:
    import matplotlib.pyplot as plt  # plot_sweep chose the Agg backend

    fig, ax = plt.subplots(figsize=(6.5, 5))
    beta = done["beta"].astype(float)
    colour = np.log2(beta.fillna(1.0).clip(lower=1e-3))
    points = ax.scatter(done["kl"], done["recon_nll"], c=colour, cmap="viridis", s=40, zorder=3)
    for _, row in done.iterrows():
        label = f"β={row['beta']:g}" if not pd.isna(row["beta"]) else f"job {row['job']}"
        ax.annotate(label, (row["kl"], row["recon_nll"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("rate: KL(q(z|x) ‖ p(z)) per image (nats)")
    ax.set_ylabel("distortion: −log p(x|z) per image (nats)")
    ax.set_title(
        "Rate–distortion, one point per job (test blocks): lower left is better\n"
        "(a Gaussian decoder's density exceeds 1, so its −log p can be negative)",
        fontsize=10,
    )
    if beta.notna().any():
        fig.colorbar(points, ax=ax, label="log2 β")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def _against_beta(done: pd.DataFrame, measures: list[tuple[str, str]], path: Path) -> Path:
    """Each job as a dot, and per latent size the mean over seeds with ±1 standard deviation as error bars."""
    import matplotlib.pyplot as plt  # plot_sweep chose the Agg backend

    fig, axes = plt.subplots(1, len(measures), figsize=(5.5 * len(measures), 4.2), squeeze=False)
    for ax, (column, label) in zip(axes[0], measures, strict=True):
        for latent, jobs in done.groupby("latent_dim", dropna=False):
            name = f"{int(latent)} latents" if not pd.isna(latent) else "jobs"
            ax.scatter(jobs["beta"], jobs[column], s=14, alpha=0.5)
            stats = jobs.groupby("beta")[column].agg(["mean", "std"]).reset_index()
            ax.errorbar(stats["beta"], stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3, label=name)
        if column == "psnr" and done["psnr_mean_face"].notna().any():
            base = float(done["psnr_mean_face"].mean())  # the same test frames in every job: one baseline
            ax.axhline(base, color="tab:red", linestyle=":", lw=2, label=f"mean training face {base:.2f} dB")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("β")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    names = " and ".join(label.split(" (")[0] for _, label in measures)
    # Two lines: a one-panel figure (PSNR alone) is narrower than the whole sentence.
    fig.suptitle(f"{names} against β on the test blocks\nmean over seeds ± 1 sd, dots are single jobs")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
