"""`python -m facevae.bench sweep`: a beta sweep's jobs side by side on one device, against one run's wall clock.

The seed's model leaves a GPU mostly idle at batch 64 (each step is launch-bound), so several training processes can
share it: the joblib launcher runs the sweep's jobs as processes side by side, each still its own W&B run, status and
checkpoint. This times, as a user would type them, `python train.py model.beta=B` once and
`python train.py -m model.beta=... hydra/launcher=joblib hydra.launcher.n_jobs=N`, process start-up included. The
requirement it checks (issue 10): the 5-value sweep on one H100 in under 2x one run's wall clock. On a 2-core CPU the
jobs share the cores, so there the sweep can only take about as long as its jobs' CPU time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from facevae.bench import data_overrides
from facevae.bench.machine import describe_machine
from facevae.errors import FaceVAEError

ROOT = Path(__file__).resolve().parents[2]


def bench_sweep(args: argparse.Namespace) -> None:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    common = [
        *data_overrides(args),
        f"trainer.max_epochs={args.epochs}",
        "test=false",
        "data.progress=false",
        "trainer.enable_progress_bar=false",
    ]
    betas = ",".join(f"{b:g}" for b in args.betas)
    with tempfile.TemporaryDirectory() as out:
        single = run_train([*common, f"model.beta={args.betas[0]:g}", f"hydra.run.dir={out}/single"])
        rows = [(f"one run, model.beta={args.betas[0]:g}", single)]
        launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}"]
        side = run_train(["-m", f"model.beta={betas}", *launcher, *common, f"hydra.sweep.dir={out}/sweep"])
        rows.append((f"{len(args.betas)} betas, joblib launcher, {args.n_jobs} jobs at once", side))
        if args.sequential:
            one_by_one = run_train(["-m", f"model.beta={betas}", *common, f"hydra.sweep.dir={out}/sequential"])
            rows.append((f"{len(args.betas)} betas one after another (basic launcher)", one_by_one))
    print(f"\n{describe_machine(device)}; {args.epochs} epochs per run, W&B offline\n")
    print("| what | wall s | x one run |\n|---|---:|---:|")
    for what, seconds in rows:
        print(f"| {what} | {seconds:.1f} | {seconds / single:.2f} |")


def run_train(overrides: list[str]) -> float:
    """Wall seconds of `python train.py OVERRIDES`, as a separate process, as a user runs it."""
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"), "WANDB_SILENT": "true"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *overrides], cwd=Path.cwd(), env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise FaceVAEError(f"train.py {' '.join(overrides)} failed: {tail[0]}")
    return seconds
