"""Writing a matplotlib figure."""

from __future__ import annotations

from pathlib import Path

from facevae.core.files import atomic_file


def save_figure(fig, path, **savefig_kwargs) -> Path:
    """Write a matplotlib figure to `path` (its folder made if needed; whole or not at all) and close it, freeing its
    memory."""
    import matplotlib.pyplot as plt  # heavy: imported only when a figure is drawn

    path = Path(path)
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, **{"format": path.suffix.lstrip(".") or None, **savefig_kwargs})
    finally:
        plt.close(fig)
    return path
