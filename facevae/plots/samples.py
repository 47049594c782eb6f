"""samples.png: generated faces above their nearest training crops, one column per sampler, each titled with its
verdict (facevae.metrics.sample_quality.verdict) beside the real references."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facevae.core.tensors import image_grid
from facevae.metrics.sample_quality import verdict
from facevae.plots.figure import save_figure


@dataclass(frozen=True)
class SamplerPanel:
    """One sampler's column of samples.png: its name, the samples shown, and the title line that judges them."""

    name: str  # e.g. "z ~ N(0, I)"
    samples: np.ndarray  # uint8 n x H x W x 3, the first ones of the set the measures used
    verdict: str  # `sampler_title_line`'s line
    nearest_distance: np.ndarray  # (n,) each sample's distance to its nearest training crop (`nearest_training_crops`)
    nearest_rows: np.ndarray  # (n,) that crop's row in the training crops


def sampler_title_line(stats: dict, prefix: str = "sample") -> str:
    """Face rate, precision and recall of a sampler beside their real references, and the verdict on them."""
    face, held = stats[f"{prefix}_face_rate"], stats["heldout_face_rate"]
    p, p_real = stats[f"{prefix}_precision"], stats[f"{prefix}_precision_real"]
    r, r_real = stats[f"{prefix}_recall"], stats[f"{prefix}_recall_real"]
    line = verdict(face, held, p, p_real, r, r_real)
    if "sample_precision_recon" in stats:  # what the decoder reaches on real codes: the most a sampler can
        line += (
            f" (reconstructions of real frames: precision {stats['sample_precision_recon']:.2f}, "
            f"recall {stats['sample_recall_recon']:.2f})"
        )
    return (
        f"face rate {face:.2f} (held-out {held:.2f}), precision {p:.2f} (real {p_real:.2f}), "
        f"recall {r:.2f} (real {r_real:.2f})\n{line}"
    )


def _pairs_picture(samples: np.ndarray, nn_images: np.ndarray, ncols: int, gap: int = 14) -> tuple[np.ndarray, int]:
    """Rows of `ncols` samples, each row over the nearest training crop of each; returns the picture and the
    number of pairs of rows. `gap`: a white band between two pairs."""
    blocks = []
    for start in range(0, len(samples), ncols):
        chunk = slice(start, min(start + ncols, len(samples)))
        blank = np.full((ncols - (chunk.stop - chunk.start), *samples.shape[1:]), 255, np.uint8)
        pair = image_grid(np.concatenate([samples[chunk], blank, nn_images[chunk], blank]), ncols=ncols, pad=2)
        blocks += [pair, np.full((gap, pair.shape[1], 3), 255, np.uint8)]
    return np.concatenate(blocks[:-1]), len(blocks) // 2


def _draw_pairs(ax, samples: np.ndarray, nn_images: np.ndarray, nn_distances: np.ndarray | None, ncols: int) -> None:
    side, step, gap = samples.shape[1], samples.shape[1] + 2, 14
    picture, n_pairs = _pairs_picture(samples, nn_images, ncols, gap)
    ax.imshow(picture)
    tops = np.repeat(np.arange(n_pairs) * (2 * step + 2 + gap), 2) + np.tile([0, step], n_pairs)  # each tile row
    ax.set_yticks(tops + 2 + side / 2, ["sample", "its nearest\ntraining crop"] * n_pairs)
    ax.set_xticks([])
    ax.tick_params(length=0, labelsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for i, d in enumerate([] if nn_distances is None else np.asarray(nn_distances)[: len(samples)]):
        r, c = divmod(i, ncols)
        # On the bottom edge of the training crop (the chin), where it hides the least.
        ax.text(
            2 + c * step + side / 2,
            tops[2 * r + 1] + 2 + side - 2,
            f"d = {d:.2f}",
            ha="center",
            va="bottom",
            fontsize=7,
            color="white",
            bbox={"boxstyle": "round,pad=0.15", "fc": "black", "alpha": 0.6, "lw": 0},
        )


def samples_figure(
    panels: list[SamplerPanel],
    train: np.ndarray,
    path: str | Path,
    n: int = 16,
    reference_distance: float | None = None,
    ncols: int = 8,
) -> Path:
    """Save samples.png (150 dpi): for each sampler side by side, its first n samples, each above its nearest
    training crop (the panel's `nearest_rows` of `train`, distance d under it), titled with the sampler's verdict.

    A decoder that replays frames shows twins; reference_distance, the held-out crops' mean distance to their
    nearest training crop, goes in the title as the distance a genuinely new frame has.
    """
    # matplotlib is heavy and only needed when a figure is drawn.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, *(len(p.samples) for p in panels))
    ncols = min(ncols, n)
    n_pairs = -(-n // ncols)
    tile_in = 0.8  # inches per tile at 150 dpi: 120 screen pixels, enough to tell a copy from a look-alike
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=((tile_in * ncols + 2.2) * len(panels), tile_in * 2.2 * n_pairs + 1.8),
        squeeze=False,
        layout="constrained",
    )
    for ax, panel in zip(axes[0], panels, strict=True):
        shown = np.asarray(panel.samples)[:n]
        rows = np.asarray(panel.nearest_rows)[:n]
        _draw_pairs(ax, shown, np.asarray(train)[rows], np.asarray(panel.nearest_distance)[:n], ncols)
        ax.set_title(f"{panel.name}\n{panel.verdict}", fontsize=10)
    reference = (
        f"; held-out (new) frames lie {reference_distance:.2f} from their nearest training crop"
        if reference_distance is not None
        else ""
    )
    fig.suptitle(
        "Generated faces, each above its nearest training crop (d = pixel L2 on 0-1 values: twins, or d far below "
        f"the held-out reference, mean replayed frames{reference})\nprecision and recall: random-CNN features "
        "against the held-out crops, beside training crops in the samples' place (real)",
        fontsize=10,
    )
    return save_figure(fig, path, dpi=150, bbox_inches="tight")
