"""expression_shift.png: held-out non-smiling faces moved toward a smile along each kind of path, and the smile
score along them; the title says what each path did to the mouth and to the rest."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from facevae.core.tensors import image_grid
from facevae.metrics.expression_shift import SUFFIX, ShiftResult
from facevae.plots.figure import save_figure


def _tile_centres(n: int, side: int, pad: int = 2) -> np.ndarray:
    """Pixel centres of n tiles of `side` pixels laid out by image_grid with `pad` between them."""
    return pad + np.arange(n) * (side + pad) + side / 2


def expression_shift_figure(
    result: ShiftResult, inputs: np.ndarray, path: str | Path, n_rows: int = 6, note: str | None = None
) -> Path:
    """Save expression_shift.png: inputs, each kind's decoded path, and the mean smile score against t.

    One row per start frame (n_rows of them, spread evenly over the result's; `inputs` are the start images the
    result was made from): the real input crop, then its decoded path of each kind (t=0 is the reconstruction).
    At the side, the scorer's mean over all start frames at each t for each kind, with the smiling frames'
    reconstructions as a dashed reference line (and the real smiling crops dotted) when the result has them.
    `note` adds a line to the title, e.g. which rule labelled the smiles.
    """
    # matplotlib is heavy and only needed when a figure is drawn.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, kinds, metrics = np.asarray(result.steps), result.kinds, result.metrics()
    total = len(result.paths["centroid"].images)
    if len(inputs) != total:
        raise ValueError(f"inputs must be the {total} start images the result was made from, got {len(inputs)}")
    # Rows spread evenly over the start frames: neighbours in a list of frames are often neighbours in time.
    rows = np.unique(np.linspace(0, total - 1, min(n_rows, total)).round().astype(int))
    n, s, side = len(rows), len(steps), result.paths["centroid"].images.shape[2]
    pictures = [image_grid(np.asarray(inputs)[rows], ncols=1)]
    pictures += [image_grid(result.paths[k].images[rows].reshape(n * s, side, side, 3), ncols=s) for k in kinds]
    titles = ["input\n(real crop)"] + [_path_title(metrics, kind) for kind in kinds]
    tile_in, plot_tiles = 1.0, 5.0
    widths = [1] + [0.25, s] * len(kinds) + [1.1, plot_tiles]
    fig = plt.figure(figsize=(tile_in * sum(widths), tile_in * n + 2.4))
    grid = fig.add_gridspec(
        1, len(widths), width_ratios=widths, wspace=0.0, left=0.01, right=0.99, top=0.76, bottom=0.1
    )
    for column, picture, title in zip(range(0, len(widths) - 2, 2), pictures, titles, strict=True):
        ax = fig.add_subplot(grid[0, column])
        ax.imshow(picture)
        ax.set_title(title, fontsize=10)
        ax.set_yticks([])
        if column == 0:
            ax.set_xticks([])
        else:
            labels = [f"t={t:.2g}" if j in (0, s - 1) else f"{t:.2g}" for j, t in enumerate(steps)]
            ax.set_xticks(_tile_centres(s, side), labels, fontsize=9)
            ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    _score_plot(fig.add_subplot(grid[0, len(widths) - 1].subgridspec(6, 1)[1:5, 0]), result, steps, kinds)
    wrapped = "\n".join(textwrap.wrap(note, 160)) if note else ""
    fig.suptitle(_shift_verdict(metrics, kinds) + (f"\n{wrapped}" if note else ""), fontsize=12)
    return save_figure(fig, path, dpi=100)


PATH_TITLES = {
    "centroid": "toward the smiling centroid: z + t (c_smile - z)",
    "normal": "along the smile normal n: z + t s n,\ns = (c_smile - z)·n",
    "conditional": "the smile with pose and light held fixed\n(conditional edit)",
}


PATH_STYLES = {"centroid": ("o-", "tab:orange"), "normal": ("s-", "tab:blue"), "conditional": ("^-", "tab:green")}


def _path_title(result: dict, kind: str) -> str:
    suffix = SUFFIX[kind]
    progress = result.get(f"shift_smile_progress{suffix}")
    of_real = result.get(f"shift_smile_progress_of_real{suffix}")
    # shift_smile_progress is measured between reconstructions (start to smiling); the real crops are farther.
    way = f", {100 * progress:.0f}% of the way to reconstructed smiles" if progress is not None else ""
    way += f"\n(lands {100 * of_real:.0f}% of the way from real starts to real smiles)" if of_real is not None else ""
    return (
        f"{PATH_TITLES[kind]}\nlength {result['shift_path_length'][kind]:.2f}; smile score "
        f"{result[f'shift_smile_gain{suffix}']:+.2f}{way}"
    )


def _score_plot(ax, result: ShiftResult, steps: np.ndarray, kinds: list[str]) -> None:
    for kind in kinds:
        marker, colour = PATH_STYLES[kind]
        ax.plot(steps, result.paths[kind].measures.smile_score, marker, color=colour, label=kind)
    ref = result.references
    if ref.smiling_recon is not None:
        ax.axhline(ref.smiling_recon, ls="--", color="k", lw=1.2, label="smiling frames, reconstructed")
        ax.axhline(ref.smiling_input, ls=":", color="0.4", lw=1.2, label="smiling frames, real")
    ax.axhline(ref.start_input, ls=":", color="tab:red", lw=1.2, label="start frames, real")
    ax.set_xlabel("t (0 = reconstruction of the start)")
    ax.set_ylabel("mean smile score of the faces")
    ax.set_title(f"smile score along the paths\n(mean over {result.n_frames} start frames)", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)


def _shift_verdict(result: dict, kinds: list[str]) -> str:
    """The title: what each kind did to the mouth and to the rest, and the gains at one distance."""
    changes = "; ".join(
        f"{kind}: mouth {result[f'shift_mouth_change{SUFFIX[kind]}']:.3f}, "
        f"elsewhere {result[f'shift_outside_mouth_change{SUFFIX[kind]}']:.3f}"
        for kind in kinds
    )
    equal = ", ".join(f"{k} {v:+.2f}" for k, v in result["shift_smile_gain_equal_distance"].items())
    return (
        f"{smiles_verdict(result, kinds)}\n"
        "Shifting held-out non-smiling faces toward a smile in the VAE's latent space (each tile decoded at step t)\n"
        f"mean |pixel change| from t=0 to 1 (0-1 pixels): {changes}\n"
        f"smile score gained at the same distance ({result['shift_equal_distance']:.2f}) on every path: {equal}"
    )


# What "the face smiles" takes: most of the way to the reconstructed smiles, with the mouth changing at least twice
# as much as the rest of the face (a shift that brightens or moves the whole face is not a smile).
SMILES_PROGRESS, SMILES_MOUTH_RATIO = 0.8, 2.0
# Below this gap between the reconstructed smiles' and starts' scores (a 0-1 smile probability), progress divides by
# almost nothing and says nothing.
SMILE_GAP = 0.05


def smiles_verdict(result: dict, kinds: list[str]) -> str:
    """The verdict: the first path that makes the faces smile, else the one that went furthest toward the smiles."""
    progress = {k: result.get(f"shift_smile_progress{SUFFIX[k]}") for k in kinds}
    progress = {k: v for k, v in progress.items() if v is not None and v == v}
    if not progress:
        return "NO VERDICT: no smile score for the paths (too few smiling or non-smiling frames)"
    smiling, start = result.get("shift_smile_score_smiling_recon"), result.get("shift_smile_score_start_recon")
    if smiling is not None and start is not None and smiling - start < SMILE_GAP:
        return (
            f"NO VERDICT: the model reconstructs smiling and non-smiling faces alike (smile score {smiling:.2f} "
            f"against {start:.2f}): there is no learnt smile to move toward"
        )
    ratio = {k: result.get(f"shift_mouth_ratio{SUFFIX[k]}") or 0.0 for k in progress}
    smile = [k for k in progress if progress[k] >= SMILES_PROGRESS and ratio[k] >= SMILES_MOUTH_RATIO]
    best = smile[0] if smile else max(progress, key=progress.get)
    said = (
        f"{best} path: {progress[best]:.0%} of the way to the reconstructed smiles, mouth {ratio[best]:.1f}x the rest"
    )
    if smile:
        return f"THE FACES SMILE ({said})"
    if progress[best] >= 0.3:
        return f"PARTLY: the faces move toward a smile and fall short ({said}; a smile: >= 80%, >= 2x)"
    return f"THE FACES DO NOT SMILE ({said}; a smile: >= 80%, >= 2x)"
