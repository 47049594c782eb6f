"""Where the Hydra configs live, for the entry points that are modules (`python -m facevae.prepare`)."""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
