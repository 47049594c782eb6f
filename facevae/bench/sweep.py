"""`python -m facevae.bench sweep`: a beta sweep on one device, three ways, against one run's wall clock.

The seed's model leaves a GPU mostly idle at batch 64 (each step is launch-bound), so a sweep can share it two ways:
the joblib launcher runs the sweep's jobs as processes side by side, or sweep=beta_stacked trains the betas as one
vectorised model in one process (StackedBetaVAEModule: one step launches the kernels of one network, each K times
wider). Either way each beta is still its own W&B run, status and checkpoint. This times, as a user would type them,
`python train.py model.beta=B` once, `python train.py -m model.beta=... hydra/launcher=joblib hydra.launcher.n_jobs=N`
and `python train.py sweep=beta_stacked model.betas=[...]`, process start-up included; then the bare training step
of K models one at a time against the K stacked. The target it checks: the 5-value sweep on one H100
in under 2x one run's wall clock, and which way is faster. On a 2-core CPU the jobs share the cores, so there a sweep
can only take about as long as its jobs' CPU time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facevae.bench import data_overrides
from facevae.bench.machine import describe_machine
from facevae.bench.training import bare_loop, optimizer_steps, training_crops
from facevae.core.errors import FaceVAEError
from facevae.models import BetaVAE, StackedBetaVAEModule

ROOT = Path(__file__).resolve().parents[2]


def bench_sweep(args: argparse.Namespace) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    common = [
        *data_overrides(args),
        f"trainer.max_epochs={args.epochs}",
        "test=false",
        "data.progress=false",
        "trainer.enable_progress_bar=false",
    ]
    if args.bare_only:
        print(f"\n{describe_machine(device)}")
        print_bare_steps(args, device)
        return
    betas = ",".join(f"{b:g}" for b in args.betas)
    k = len(args.betas)
    print(f"\n{describe_machine(device)}; {args.epochs} epochs per run, W&B offline\n")
    print("| what | wall s | x one run |\n|---|---:|---:|", flush=True)
    with tempfile.TemporaryDirectory() as out:
        single = run_train([*common, f"model.beta={args.betas[0]:g}", f"hydra.run.dir={out}/single"])
        print(f"| one run, model.beta={args.betas[0]:g} | {single:.1f} | 1.00 |", flush=True)
        launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}"]
        runs = [
            (f"{k} betas, joblib launcher, {args.n_jobs} jobs at once", ["-m", f"model.beta={betas}", *launcher]),
            (f"{k} betas as one stacked model (sweep=beta_stacked)", ["sweep=beta_stacked", f"model.betas=[{betas}]"]),
        ]
        if args.sequential:
            runs.append((f"{k} betas one after another (basic launcher)", ["-m", f"model.beta={betas}"]))
        for i, (what, overrides) in enumerate(runs):
            where = f"hydra.sweep.dir={out}/{i}" if "-m" in overrides else f"hydra.run.dir={out}/{i}"
            seconds = run_train([*overrides, *common, where])
            print(f"| {what} | {seconds:.1f} | {seconds / single:.2f} |", flush=True)
    print_bare_steps(args, device)


def print_bare_steps(args: argparse.Namespace, device_type: str) -> None:
    """The training step alone: K models one after another against the K stacked into one, in images/s per model
    summed over the models (each of K models trained on a batch of 64 counts 64 images)."""

    device = torch.device(device_type)
    crops = training_crops(args)
    k = len(args.betas)
    print(f"\nThe bare training step, {k} models ({args.steps} steps timed; images/s summed over the models)\n")
    print("| step (eager unless captured) | batch | images/s | x one at a time |\n|---|---:|---:|---:|")
    # (what, stacked with vmap on/off or None for one model at a time, captured as one CUDA graph)
    ways = [("one model at a time", None, False), ("stacked, vectorised (vmap)", True, False)]
    ways.append(("stacked, members one after another", False, False))
    if device.type == "cuda":
        ways += [("one model at a time, captured", None, True), ("stacked, vectorised, captured", True, True)]
        ways.append(("stacked, members one after another, captured", False, True))
    for batch in args.batch_sizes:
        base = None
        for what, vmap, captured in ways:
            if vmap is None:
                ips, _ = bare_loop(crops, batch, args.steps, device, captured=captured)
            else:
                ips = stacked_loop(crops, batch, args.steps, device, k, vmap=vmap, captured=captured)
            base = base or ips
            print(f"| {what} | {batch} | {ips:,.0f} | {ips / base:.2f} |", flush=True)


def stacked_loop(
    crops: np.ndarray, batch: int, steps: int, device: torch.device, k: int, vmap: bool = True, captured: bool = False
) -> float:
    """Images/s summed over the K members of a StackedBetaVAEModule's step: crops on the device, a random batch
    gathered there, the members' losses, backward from their sum, Adam (fused on a GPU); captured as one CUDA graph
    when asked, as model.cuda_graph does."""
    torch.manual_seed(0)
    module = StackedBetaVAEModule(BetaVAE(), betas=[float(b) for b in range(1, k + 1)], vmap=vmap).to(device)
    data = torch.from_numpy(crops).to(device)
    params = list(module.parameters())
    images_per_s, _ = optimizer_steps(data, batch, steps, params, module.train_step.backward_step, captured)
    return images_per_s * k


def run_train(overrides: list[str], extra_env: dict[str, str] | None = None) -> float:
    """Wall seconds of `python train.py OVERRIDES`, as a separate process, as a user runs it."""
    return run_script("train.py", overrides, extra_env)


def run_script(script: str, overrides: list[str], extra_env: dict[str, str] | None = None) -> float:
    """Wall seconds of `python SCRIPT OVERRIDES` (train.py, evaluate.py), as a separate process; one line naming the
    command and its last output line if it fails. `extra_env` adds to (or replaces in) the environment."""
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"), "WANDB_SILENT": "true"}
    env.update(extra_env or {})
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / script), *overrides], cwd=Path.cwd(), env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise FaceVAEError(f"{script} {' '.join(overrides)} failed: {tail[0]}")
    return seconds
