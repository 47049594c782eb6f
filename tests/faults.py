"""The fault suite's harness: run a command as a user would, and check that it failed cleanly and lost nothing.

Every fault test runs a real entry point in a subprocess (train.py, evaluate.py, `python -m facevae.prepare`,
`python -m facevae.live`), then asserts what the house rules promise for bad input:
- a non-zero exit status, and a single line on stderr that says `error: <file or setting>: <reason>`;
- no Python traceback, no segfault (a negative status is a signal);
- every file that existed before the command still exists, byte for byte (`tree_state` before, `assert_unchanged`
  after), and no file under a final name is half-written.
The test files are `test_faults_*.py`, one per class of fault.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytorch_lightning as pl

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {
    "train": [str(ROOT / "train.py")],
    "evaluate": [str(ROOT / "evaluate.py")],
    "prepare": ["-m", "facevae.prepare"],
    "live": ["-m", "facevae.live"],
    "synthetic": ["-m", "facevae.data.synthetic"],
    "bench": ["-m", "facevae.bench"],
}


def run_command(
    command: str, *args: str, cwd: Path, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """`python <entry point> args...` in `cwd`, W&B disabled unless `env` says otherwise; output captured as text."""
    full_env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_SILENT": "true", "PYTHONPATH": str(ROOT)}
    full_env.update(env or {})
    argv = [sys.executable, *ENTRY_POINTS[command], *args]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


def tree_state(*roots: Path) -> dict[Path, str]:
    """Every file under `roots` (or the file itself) -> a sha256 of its bytes."""
    state = {}
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        for path in files:
            state[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def assert_unchanged(before: dict[Path, str]) -> None:
    """Each file recorded by `tree_state` still exists with the same bytes."""
    missing = [str(p) for p in before if not p.is_file()]
    changed = [str(p) for p, digest in before.items() if p.is_file() and tree_state(p)[p] != digest]
    assert not missing, f"files deleted: {missing}"
    assert not changed, f"files changed: {changed}"


def assert_refused(result: subprocess.CompletedProcess, *words: str) -> str:
    """A clean refusal: non-zero status (not a signal), one `error:` line on stderr naming `words`; returns it."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    assert result.returncode > 0, f"status {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n" + "\n".join(lines[-20:])
    line = lines[0]
    assert line.startswith("error: "), line
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    return line


def assert_succeeded(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"status {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]


def paths_under(root: Path) -> set[Path]:
    """Every file and folder under root: what a refused command must not add to."""
    return set(Path(root).rglob("*"))


def assert_nothing_new(root: Path, before: set[Path]) -> None:
    """No file or folder appeared under root since `paths_under(root)` (a refusal writes nothing, not even a run
    directory)."""
    new = sorted(str(p) for p in paths_under(root) - before)
    assert not new, f"written by a refused command: {new[:10]}"


class KillAtStep(pl.Callback):
    """A training callback that kills its own process with SIGKILL as the given step starts: `kill -9` mid-epoch, at
    a step known in advance. Given to train.py as `+callbacks.kill._target_=faults.KillAtStep +callbacks.kill.step=N`,
    with this folder on PYTHONPATH (`tests_env()`)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def tests_env() -> dict:
    """run_command's env for a command that imports this module (faults.KillAtStep)."""
    return {"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
