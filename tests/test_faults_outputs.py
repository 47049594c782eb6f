"""Fault suite, output paths: evaluate.py and its compare= and sweep_dir= modes never delete or change what they did
not write. A folder that exists and holds anything else, a file, a read-only folder or run: each refused in one line
before any work, naming the override, with every file as it was. A previous result is replaced, and only its files.

The refusals run in one batch of forked evaluate.py processes (tests/faults.py: run_commands).
"""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from pathlib import Path

import pytest
from faults import assert_refused, assert_succeeded, assert_unchanged, read_only, read_only_unavailable, run_commands
from faults import tree_state as state

from facevae.core.outputs import MANIFEST

FAST = ["wandb=false", "n_samples=50", "shift_frames=8"]


def user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("three weeks of notes\n")
    (path / "photo.jpg").write_bytes(b"\xff\xd8 not really a photo")
    return path


def fake_sweep(path: Path, *user_files: str) -> Path:
    """A sweep directory's shape (a job folder) with files of the user's own beside the jobs."""
    (path / "0" / ".hydra").mkdir(parents=True)
    (path / "multirun.yaml").write_text("hydra: {}\n")
    for name in user_files:
        (path / name).write_text(f"my own {name}\n")
    return path


def manifest(path: Path, kind: str, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / MANIFEST).write_text(json.dumps({"kind": kind, "files": files}))
    return path


@pytest.fixture(scope="module")
def cases(tiny_run, tmp_path_factory) -> dict:
    """Every case of this file run once: name -> (result, the files that existed before, the paths involved)."""
    tmp = tmp_path_factory.mktemp("outputs")
    run = shutil.copytree(tiny_run, tmp / "run")
    ckpt = run / "checkpoints" / "last.ckpt"
    (tmp / "a_file.txt").write_text("a file of the user's\n")
    legacy = user_folder(tmp / "legacy_compare")
    (legacy / "compare.csv").write_text("name,model,latent_dim,beta\nold,beta-VAE,4,1\n")
    changed = manifest(tmp / "changed", "evaluation", {"metrics.json": "0" * 64})
    (changed / "metrics.json").write_text('{"edited": "by hand"}\n')
    plan = {
        "run_folder": ([f"ckpt_path={ckpt}", f"output_dir={run}"], [run]),
        "user_folder": ([f"ckpt_path={ckpt}", f"output_dir={user_folder(tmp / 'mine')}"], [tmp / "mine"]),
        "a_file": ([f"ckpt_path={ckpt}", f"output_dir={tmp / 'a_file.txt'}"], [tmp / "a_file.txt"]),
        "under_a_file": ([f"ckpt_path={ckpt}", f"output_dir={tmp / 'a_file.txt' / 'out'}"], [tmp / "a_file.txt"]),
        "changed_result": ([f"ckpt_path={ckpt}", f"output_dir={changed}"], [changed]),
        "other_kind": ([f"ckpt_path={ckpt}", f"output_dir={manifest(tmp / 'cmp', 'comparison', {})}"], [tmp / "cmp"]),
        "bad_manifest": ([f"ckpt_path={ckpt}", f"output_dir={tmp / 'bad'}"], [tmp / "bad"]),
        "compare_user_folder": ([f"compare=[{ckpt}]", f"output_dir={user_folder(tmp / 'mine2')}"], [tmp / "mine2"]),
        "sweep_user_report": ([f"sweep_dir={fake_sweep(tmp / 'sweep', 'sweep.md')}"], [tmp / "sweep"]),
        "sweep_into_user_folder": (
            [f"sweep_dir={fake_sweep(tmp / 'sweep2')}", f"output_dir={user_folder(tmp / 'mine3')}"],
            [tmp / "sweep2", tmp / "mine3"],
        ),
        # A comparison written before facevae recorded its files, with a note of the user's beside it: replaced,
        # the note kept; then replaced again, now by its manifest.
        "compare_over_earlier": ([f"compare=[{ckpt}]", f"output_dir={legacy}"], [legacy / "notes.txt"]),
        "compare_again": ([f"compare=[{ckpt}]", f"output_dir={legacy}"], [legacy / "notes.txt"]),
    }
    (tmp / "bad").mkdir()
    (tmp / "bad" / MANIFEST).write_text("{ not json")
    with ExitStack() as stack:
        if read_only_unavailable() is None:
            ro_run = stack.enter_context(read_only(shutil.copytree(tiny_run, tmp / "ro_run")))
            (tmp / "ro_out").mkdir()
            ro_out = stack.enter_context(read_only(tmp / "ro_out"))
            plan["read_only_run"] = ([f"ckpt_path={ro_run / 'checkpoints' / 'last.ckpt'}"], [ro_run])
            plan["read_only_output"] = ([f"ckpt_path={ckpt}", f"output_dir={ro_out / 'out'}"], [ro_out])
        before = {name: state(*paths) for name, (_, paths) in plan.items()}
        results = run_commands("evaluate", [[*args, *FAST] for args, _ in plan.values()], cwd=tmp, timeout=300)
    return {name: (result, before[name], plan[name][1]) for name, result in zip(plan, results, strict=True)}


@pytest.mark.parametrize(
    "name, words",
    [
        ("run_folder", ["output_dir=", "did not write", "checkpoints"]),
        ("user_folder", ["output_dir=", "notes.txt"]),
        ("a_file", ["is a file", "output_dir="]),
        ("under_a_file", ["is a file", "output_dir="]),
        ("changed_result", ["metrics.json", "changed since"]),
        ("other_kind", ["holds a comparison"]),
        ("bad_manifest", [MANIFEST, "not a readable record"]),
        ("compare_user_folder", ["output_dir=", "notes.txt"]),
        ("sweep_user_report", ["sweep.md", "output_dir="]),
        ("sweep_into_user_folder", ["output_dir=", "notes.txt"]),
    ],
)
def test_an_output_folder_holding_anything_else_is_refused_and_left_as_it_was(cases, name, words):
    result, before, _ = cases[name]
    assert_refused(result, *words)
    assert_unchanged(before)


@pytest.mark.parametrize("name", ["read_only_run", "read_only_output"])
def test_a_read_only_run_or_output_folder_is_refused_naming_the_override(cases, name):
    if name not in cases:
        pytest.skip(read_only_unavailable())
    result, before, _ = cases[name]
    line = assert_refused(result, "output_dir=")
    assert "read-only" in line or "permission denied" in line
    assert_unchanged(before)


def test_a_comparison_replaces_only_its_own_files_and_keeps_the_users(cases):
    for name in ("compare_over_earlier", "compare_again"):
        result, before, (note,) = cases[name]
        assert_succeeded(result)
        assert_unchanged(before)  # the user's note, byte for byte
        folder = note.parent
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [MANIFEST, "compare.csv", "compare.md", "compare.png", "notes.txt", "photo.jpg"]
        )
        assert "old" not in (folder / "compare.csv").read_text()
        recorded = json.loads((folder / MANIFEST).read_text())["files"]
        assert sorted(recorded) == ["compare.csv", "compare.md", "compare.png"]
    assert not list(folder.glob(".facevae-staging*")) and not list(folder.glob(".*partial*"))


@pytest.mark.slow
def test_an_evaluation_replaces_a_previous_one_keeping_the_users_files(tiny_run, tmp_path):
    """Evaluated twice into one folder, with the user's own file and a W&B folder added in between."""
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    out = tmp_path / "eval"
    (first,) = run_commands("evaluate", [[f"ckpt_path={ckpt}", f"output_dir={out}", *FAST]], cwd=tmp_path)
    assert_succeeded(first)
    written = json.loads((out / MANIFEST).read_text())["files"]
    assert {"metrics.json", "latents.npz", "reconstruction.png"} <= written.keys()
    (out / "my_notes.md").write_text("what I saw\n")
    (out / "wandb").mkdir()
    (out / "wandb" / "offline-run-1.wandb").write_bytes(b"not synced yet")
    before = state(out / "my_notes.md", out / "wandb")
    (second,) = run_commands("evaluate", [[f"ckpt_path={ckpt}", f"output_dir={out}", *FAST]], cwd=tmp_path)
    assert_succeeded(second)
    assert_unchanged(before)
    assert json.loads((out / MANIFEST).read_text())["files"].keys() == written.keys()
