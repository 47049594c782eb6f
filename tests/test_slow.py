"""Slow end-to-end runs of the entry points as a user types them (`make test-slow`): demo video to evaluation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200
    )


def test_the_smoke_experiment_trains_on_the_built_in_demo_and_evaluates(tmp_path):
    trained = _run("train.py", "experiment=smoke", "trainer.enable_progress_bar=false", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (tmp_path / "data" / "demo" / "smoke.mp4").is_file()
    assert (tmp_path / "data" / "demo" / "smoke.factors.csv").is_file()
    hint = re.search(r"evaluate it: .* evaluate\.py ckpt_path=(\S+)", trained.stdout)
    assert hint, trained.stdout[-2000:]
    checkpoint = Path(hint.group(1))
    assert checkpoint.is_file() and "mean training face" in trained.stdout

    evaluated = _run("evaluate.py", f"ckpt_path={checkpoint}", "n_samples=1000", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    out = Path(evaluated.stdout.strip().splitlines()[-1])
    assert (out / "metrics.json").is_file() and (out / "interpolation.png").is_file()
