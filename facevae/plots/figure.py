"""Writing a matplotlib figure."""

from __future__ import annotations

from pathlib import Path


def save_figure(fig, path, **savefig_kwargs) -> Path:
    """Write a matplotlib figure to `path` (its folder made if needed) and close it, freeing its memory."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, **savefig_kwargs)
    plt.close(fig)
    return path
