"""The fault suite's harness: run a command as a user would, and check that it failed cleanly and lost nothing.

Every fault test runs a real entry point in a subprocess (train.py, evaluate.py, `python -m facevae.prepare`,
`python -m facevae.live`), then asserts what the house rules promise for bad input:
- a non-zero exit status, and a single line on stderr that says `error: <file or setting>: <reason>`;
- no Python traceback, no segfault (a negative status is a signal);
- every file that existed before the command still exists, byte for byte (`tree_state` before, `assert_unchanged`
  after), and no file under a final name is half-written.
The test files are `test_faults_*.py`, one per class of fault.

`run_commands` runs many cases of one entry point for the start-up cost of one: a driver process imports the
program once, then forks a fresh child per case, which runs the entry point as `python <script> args...` would (its
own exit status, stdout and stderr at the file-descriptor level, a traceback or a signal seen as they would be).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


def run_commands(
    command: str,
    cases: list[list[str]],
    *,
    cwd: Path,
    env: dict | None = None,
    timeout: float = 600,
    user: int | None = None,
) -> list[subprocess.CompletedProcess]:
    """`run_command(command, *args)` for each args of `cases`, each case in a process of its own forked from one
    driver that imported the program once; `timeout` applies to each case. `user`: run as that user id (for root,
    whom file permissions do not stop; its files must be where that user can reach them)."""
    full_env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_SILENT": "true", "PYTHONPATH": str(ROOT)}
    full_env.update(env or {})
    as_user = [] if user is None else ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    with tempfile.TemporaryDirectory() as tmp:
        if user is not None:
            Path(tmp).chmod(0o777)
            full_env.update(HOME=tmp, MPLCONFIGDIR=tmp)
        spec, results = Path(tmp, "cases.json"), Path(tmp, "results.json")
        spec.write_text(json.dumps({"command": command, "cases": cases, "cwd": str(cwd), "timeout": timeout}))
        driver = subprocess.run(
            [*as_user, sys.executable, __file__, str(spec), str(results)],
            capture_output=True,
            text=True,
            timeout=timeout * len(cases) + 120,
            env=full_env,
        )
        assert driver.returncode == 0 and results.is_file(), f"the driver failed:\n{driver.stderr[-3000:]}"
        done = json.loads(results.read_text())
    argv = ENTRY_POINTS[command]
    return [
        subprocess.CompletedProcess([*argv, *args], r["returncode"], r["stdout"], r["stderr"])
        for args, r in zip(cases, done, strict=True)
    ]


def _drive(spec_file: str, results_file: str) -> None:
    """The driver: import the entry point's program, then run each case in a forked child."""
    import importlib
    import runpy
    import signal
    import traceback

    spec = json.loads(Path(spec_file).read_text())
    argv = ENTRY_POINTS[spec["command"]]
    script = argv[0] if argv[0] != "-m" else None
    sys.path.insert(0, str(ROOT))
    for module in PRELOAD.get(spec["command"], []):
        importlib.import_module(module)
    results = []
    for args in spec["cases"]:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the case: exit status, stdout and stderr as a process of its own
                code = 1
                try:
                    os.dup2(out.fileno(), 1)
                    os.dup2(err.fileno(), 2)
                    os.chdir(spec["cwd"])
                    signal.alarm(int(spec["timeout"]))
                    sys.argv = [script or argv[1], *args]
                    if script:
                        runpy.run_path(script, run_name="__main__")
                    else:
                        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
                    code = 0
                except SystemExit as exit_:
                    code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
                    if isinstance(exit_.code, str):
                        print(exit_.code, file=sys.stderr)
                except BaseException:  # noqa: BLE001 - reported as the interpreter would
                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            out.seek(0)
            err.seek(0)
            results.append({"returncode": code, "stdout": out.read(), "stderr": err.read()})
    Path(results_file).write_text(json.dumps(results))


# What the driver imports before it forks: the slow imports of each entry point.
PRELOAD = {
    "train": ["facevae.training", "facevae.sweeps", "hydra"],
    "evaluate": ["facevae.evaluation", "facevae.analysis.compare", "hydra"],
    # Not the modules `-m` runs: runpy warns (on stderr) when one was imported before it runs as __main__.
    "prepare": ["facevae.data.datamodule", "facevae.core.config", "hydra"],
    "live": ["facevae.analysis.checkpoint", "cv2"],
}


def unreachable_by_others(user: int = 65534) -> str | None:
    """Why `user` could not run this checkout's Python on it (a clone inside a private folder), or None. Tried, not
    read from the modes: a container's root may keep capabilities that let the other user in regardless."""
    probe = f"open({str(ROOT / 'facevae' / '__init__.py')!r}).read()"
    as_user = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", sys.executable, "-c", probe]
    done = subprocess.run(as_user, capture_output=True, text=True, timeout=60)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["it failed"])[-1][:200]


def _mount(*args: str) -> str | None:
    """Run mount (or umount) as given; None when it worked, else why not."""
    if shutil.which(args[0]) is None:
        return f"no {args[0]} command"
    done = subprocess.run(list(args), capture_output=True, text=True)
    return None if done.returncode == 0 else f"`{' '.join(args)}` failed: {done.stderr.strip()[:200]}"


@contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. 256k) mounted at `path`: a disk that fills up. Skips the test where mount does not
    work (no root, a container without the capability), saying why."""
    import pytest

    path.mkdir(parents=True, exist_ok=True)
    why = (
        "mounting a tmpfs needs root"
        if os.geteuid() != 0
        else _mount("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    )
    if why:
        pytest.skip(f"no small disk to fill: {why}")
    try:
        yield path
    finally:
        _mount("umount", "-l", str(path))


@functools.cache
def read_only_unavailable() -> str | None:
    """Why this machine cannot make a folder read-only for the tests (None: it can)."""
    if os.geteuid() != 0:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        why = _mount("mount", "--bind", tmp, tmp)
        if why is None:
            why = _mount("mount", "-o", "remount,bind,ro", tmp)
            _mount("umount", "-l", tmp)
    return f"cannot make a folder read-only for root: {why}" if why else None


@contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """`path` (an existing folder) read-only while the block runs: its permission bits cleared for a normal user;
    for root, whom permissions do not stop, a read-only bind mount of it on itself. Skips where neither works."""
    import pytest

    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")] if p.is_dir()}
        for folder in modes:
            folder.chmod(modes[folder] & ~0o222)
        try:
            yield path
        finally:
            for folder, mode in modes.items():
                folder.chmod(mode)
        return
    why = _mount("mount", "--bind", str(path), str(path))
    if why is None:
        why = _mount("mount", "-o", "remount,bind,ro", str(path))
        if why is not None:
            _mount("umount", "-l", str(path))
    if why:
        pytest.skip(f"cannot make a folder read-only for root: {why}")
    try:
        yield path
    finally:
        _mount("umount", "-l", str(path))


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


if __name__ == "__main__":
    _drive(*sys.argv[1:3])
