"""reconstruction.png: per-frame PSNR and SSIM of the held-out test frames beside the mean training face, and the
worst, median and best frames over their reconstructions; its PSNR title says whether the model beats the mean face."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facevae.core.tensors import image_grid, to_uint8_hwc
from facevae.metrics.reconstruction import ReconstructionScores
from facevae.plots.figure import save_figure


def pick_frames(psnr_per_frame: np.ndarray, n: int = 8) -> np.ndarray:
    """Rows of the n worst, n median and n best frames by PSNR, in that order (3n rows)."""
    order = np.argsort(psnr_per_frame)
    return np.concatenate([order[:n], order[len(order) // 2 - n // 2 :][:n], order[-n:]])[: 3 * n]


def reconstruction_figure(
    scores: ReconstructionScores, picked: np.ndarray, recon: np.ndarray, path: str | Path, n: int = 8
) -> Path:
    """Histograms of per-frame PSNR and SSIM, and the worst, median and best test frames (`picked`, the rows
    `pick_frames` chose) over their reconstructions `recon`."""
    # matplotlib is heavy and only needed when a figure is drawn.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = {**scores.metrics(), "psnr_per_frame": scores.psnr_per_frame, "ssim_per_frame": scores.ssim_per_frame}
    fig = plt.figure(figsize=(12, 8), dpi=110)
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1.4])
    for col, (key, unit) in enumerate([("psnr", "dB"), ("ssim", "")]):
        ax = fig.add_subplot(grid[0, col])
        values = metrics[f"{key}_per_frame"]
        ax.hist(values, bins=40, color="tab:blue", alpha=0.8)
        ax.axvline(values.mean(), color="k", linestyle="--", label=f"mean of frames {values.mean():.3f} {unit}")
        title = f"{key.upper()} of reconstructions on the held-out test blocks (n={len(values)})"
        if key == "psnr" and "psnr_mean_face" in metrics:
            # The baseline: the mean training face as every frame's reconstruction (train.py prints it too).
            base, gain = metrics["psnr_mean_face"], metrics["psnr"] - metrics["psnr_mean_face"]
            ax.axvline(metrics["psnr"], color="k", label=f"whole set {metrics['psnr']:.2f} dB (as train.py)")
            ax.axvline(base, color="tab:red", linestyle=":", lw=2, label=f"mean training face {base:.2f} dB")
            title += f"\n{gain:+.2f} dB over the mean face: " + ("better" if gain > 0 else "NO BETTER") + " than it"
        ax.set_xlabel(f"{key.upper()} per test frame {f'({unit})' if unit else ''}")
        ax.set_ylabel("test frames")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[1, :])
    rows = []
    for r in range(3):
        rows += [to_uint8_hwc(picked[r * n : (r + 1) * n]), recon[r * n : (r + 1) * n]]
    ax.imshow(image_grid(np.concatenate(rows), ncols=n))
    side = picked.shape[1] + 2  # image_grid's tile plus its 2-pixel gap
    names = [f"{kind} {what}" for kind in ("worst", "median", "best") for what in ("input", "reconstruction")]
    ax.set_yticks([2 + side * r + side / 2 for r in range(6)], names)
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("worst / median / best test frames by PSNR: each input row above its reconstruction")
    fig.tight_layout()
    return save_figure(fig, path)
