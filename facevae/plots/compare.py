"""compare.png: checkpoints side by side, each column a model's samples over its prior interpolation grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facevae.plots.figure import save_figure


def compare_figure(names: list[str], panels: list[tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """compare.png: one column per checkpoint, its 16 samples above its prior interpolation grid."""
    # matplotlib is heavy and only needed when a figure is drawn.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2, len(panels), figsize=(5.5 * len(panels), 8.5), squeeze=False, height_ratios=[1, 4], layout="constrained"
    )
    for col, (name, (sampled, grid)) in enumerate(zip(names, panels, strict=True)):
        axes[0, col].imshow(sampled)
        axes[0, col].set_title(f"{name}\n16 samples (the same z for models of one latent size)", fontsize=9)
        axes[1, col].imshow(grid)
        axes[1, col].set_title("between three prior draws: A top-left, B top-right, C bottom-left", fontsize=8)
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    return save_figure(fig, path, dpi=120, bbox_inches="tight")
