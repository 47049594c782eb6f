"""A sweep's folder as train.py leaves it: one directory per job (Hydra numbers them 0, 1, 2, ...), each with the
`status.json` its job wrote (finished, with its metric, or failed, with the reason); and the sweep's W&B group name.

The sweep pipeline writes it (facevae.sweeps, facevae.members for a stacked run's members) and the reports read it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from facevae.core.files import write_text

STATUS_FILE = "status.json"


def sweep_group(sweep_dir: Path) -> str:
    """A sweep's group name in W&B: its directory's last two parts, `multirun/DATE/TIME` -> `DATE_TIME`."""
    return "_".join(Path(sweep_dir).resolve().parts[-2:])


def write_status(job_dir: Path, status: dict[str, Any]) -> None:
    write_text(job_dir / STATUS_FILE, json.dumps(status, indent=2, default=float) + "\n")


def read_status(job_dir: Path) -> dict[str, Any]:
    """What a job recorded; a job directory without status.json was killed or is still running."""
    path = job_dir / STATUS_FILE
    if not path.is_file():
        return {"status": "unfinished"}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {"status": "unfinished"}


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job directories of a sweep (Hydra numbers them 0, 1, 2, ...), in job order."""
    dirs = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(dirs, key=lambda p: int(p.name))
