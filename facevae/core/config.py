"""Where the Hydra configs live, for the entry points that are modules (`python -m facevae.prepare`), and how to
call this Python in the commands the entry points suggest."""

import os
import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def python_command() -> str:
    """How to call this Python from here: `.venv/bin/python` after `make train`, else plain `python`."""
    exe = Path(sys.executable).absolute()
    return os.path.relpath(exe) if exe.is_relative_to(Path.cwd()) else "python"
