"""Fault suite, kill -9: a process killed midway leaves nothing half-written under a final name, and running the
same command again works (clearing what the killed one left in hidden temporaries).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults import ENTRY_POINTS, ROOT, assert_succeeded, run_commands

from facevae.core.checkpoint import read_checkpoint
from facevae.data.cache import load_cache
from facevae.data.datamodule import FaceCropDataModule


def start(command: str, *args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, *ENTRY_POINTS[command], *args]
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_interruptible(argv: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    """The command as a terminal starts it: SIGINT at its default. Run from a background job (`make test &`) the
    tests inherit SIGINT ignored, and Python then never turns Ctrl-C into KeyboardInterrupt in the child."""
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def kill_when(process: subprocess.Popen, ready, timeout: float = 300, every: float = 0.02) -> bool:
    """SIGKILL `process` as soon as `ready()` holds; False when it ended first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(every)
    process.kill()
    process.wait()
    return False


def test_a_kill_during_extraction_leaves_no_cache_and_the_rerun_builds_it(long_clip, tmp_path):
    cache_dir = tmp_path / "cache"
    process = start("prepare", f"data.video={long_clip}", f"data.cache_dir={cache_dir}", cwd=tmp_path)
    # The temporary folder appears when extraction starts; the crops are saved into it only when it ends.
    assert kill_when(process, lambda: cache_dir.is_dir() and any(cache_dir.glob(".tmp-*"))), "ended before the kill"
    assert process.returncode == -signal.SIGKILL
    assert [p.name for p in cache_dir.iterdir() if not p.name.startswith(".")] == []  # nothing under a final name
    # The killed command's settings (conf/data/faces.yaml's fps and align): the same cache, whose temporary it clears.
    dm = FaceCropDataModule(video=str(long_clip), cache_dir=str(cache_dir), fps=8, align="eyes+ecc", progress=False)
    result = dm.prepare_cache()
    assert not result.reused and len(load_cache(result.path).crops) > 0
    assert sorted(p.name for p in cache_dir.iterdir()) == [result.path.name]  # the killed one's temporary cleared


def test_ctrl_c_during_extraction_is_one_line_and_leaves_no_cache(long_clip, tmp_path):
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    # Every frame of the clip (30 fps, not 8): extraction lasts long enough for the interrupt to land inside it
    # however loaded the machine is.
    argv = [sys.executable, *ENTRY_POINTS["prepare"], f"data.video={long_clip}", f"data.cache_dir={cache_dir}"]
    argv.append("data.extraction.fps=30")
    process = start_interruptible(argv, cwd=tmp_path, env=env)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and not any(cache_dir.glob(".tmp-*")):
        time.sleep(0.02)
    assert process.poll() is None, "ended before the interrupt"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and err.strip() == "interrupted", f"{process.returncode}\n{err[-3000:]}"
    assert not cache_dir.exists() or [p.name for p in cache_dir.iterdir() if not p.name.startswith(".")] == []


@pytest.mark.slow
def test_a_kill_during_evaluation_leaves_the_output_folder_to_the_rerun(tiny_run, tmp_path):
    out = tmp_path / "eval"
    args = [f"ckpt_path={tiny_run / 'checkpoints' / 'last.ckpt'}", f"output_dir={out}", "wandb=false", "n_samples=50"]
    process = start("evaluate", *args, cwd=tmp_path)
    assert kill_when(process, lambda: any(out.glob(".facevae-staging*/*.png"))), "ended before the kill"
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == []
    (result,) = run_commands("evaluate", [[*args, "shift_frames=8"]], cwd=tmp_path)
    assert_succeeded(result)
    assert (out / "metrics.json").is_file() and not list(out.glob(".facevae-staging*"))


@pytest.mark.slow
def test_a_kill_during_training_leaves_only_whole_checkpoints(long_clip, tmp_path):
    from conftest import tiny_overrides

    run = tmp_path / "run"
    overrides = [*tiny_overrides(long_clip, tmp_path / "cache"), "logger=none", "trainer.max_epochs=30"]
    process = start("train", *overrides, f"hydra.run.dir={run}", cwd=tmp_path)
    # Killed while it checkpoints every epoch: once there are checkpoints, as soon as a temporary appears beside
    # them, half-written.
    folder = run / "checkpoints"
    ready = lambda: (folder / "last.ckpt").is_file() and any(folder.glob(".*.partial.ckpt"))  # noqa: E731
    assert kill_when(process, ready, every=0.003)
    checkpoints = [p for p in (run / "checkpoints").iterdir() if not p.name.startswith(".")]
    assert checkpoints
    for path in checkpoints:
        read_checkpoint(path)  # whole: its zip checksums hold


@pytest.mark.slow
def test_ctrl_c_during_training_is_one_line_and_keeps_whole_checkpoints(long_clip, tmp_path):
    from conftest import tiny_overrides

    run = tmp_path / "run"
    overrides = [*tiny_overrides(long_clip, tmp_path / "cache"), "logger=none", "trainer.max_epochs=300"]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, *ENTRY_POINTS["train"], *overrides, f"hydra.run.dir={run}"]
    process = start_interruptible(argv, cwd=tmp_path, env=env)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and not last.is_file():
        time.sleep(0.05)
    assert process.poll() is None, "ended before the interrupt"
    process.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal sends
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130 and err.strip() == "interrupted", f"{process.returncode}\n{err[-3000:]}"
    assert "interrupted at step" in out and "last.ckpt" in out  # the log says where to resume from
    read_checkpoint(last)  # whole: it loads
