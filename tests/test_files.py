"""facevae.core.files and facevae.core.outputs: whole files or none, and output folders that replace only their own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from faults import small_disk

from facevae.core.checkpoint import AtomicCheckpointIO
from facevae.core.errors import FaceVAEError, WriteError, user_error
from facevae.core.files import atomic_file, partial_path, write_text
from facevae.core.outputs import MANIFEST, OutputKind, check_output_folder, output_folder

KIND = OutputKind("evaluation", "evaluate.py", frozenset({"metrics.json", "figure.png"}))


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = write_text(tmp_path / "status.json", "old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and names(tmp_path) == ["status.json"]


def test_a_failed_first_write_leaves_no_folders_behind(tmp_path):
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "a" / "b" / "x.png"):
        raise RuntimeError
    assert names(tmp_path) == []


def test_the_temporary_sits_beside_the_target_and_keeps_its_suffix(tmp_path):
    tmp = partial_path(tmp_path / "crops.npy")
    assert tmp.parent == tmp_path and tmp.suffix == ".npy" and tmp.name.startswith(".crops.npy.")


def test_a_temporary_left_by_a_killed_writer_is_cleared_and_a_running_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    stale = tmp_path / f".last.ckpt.{host}-{dead.stdout.strip()}-abc123.partial.ckpt"
    live = tmp_path / f".last.ckpt.{host}-{os.getppid()}-abc123.partial.ckpt"
    stale.write_bytes(b"half")
    live.write_bytes(b"being written")
    write_text(tmp_path / "last.ckpt", "whole")
    assert names(tmp_path) == sorted([live.name, "last.ckpt"])


def test_checkpoints_are_written_beside_their_name(tmp_path, monkeypatch):
    moves = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (moves.append((Path(a), Path(b))), real(a, b)))
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}}, tmp_path / "ckpts" / "last.ckpt")
    assert [(a.parent, b) for a, b in moves] == [(tmp_path / "ckpts", tmp_path / "ckpts" / "last.ckpt")]
    assert torch.load(tmp_path / "ckpts" / "last.ckpt")["state_dict"]["w"].sum() == 3


def test_a_full_disk_is_a_one_line_error_naming_the_file_and_leaves_the_old_one(tmp_path):
    with small_disk(tmp_path / "disk", "64k") as disk:
        write_text(disk / "report.md", "old")
        with pytest.raises(WriteError) as caught:
            write_text(disk / "report.md", "x" * 200_000, setting="output_dir")
        assert str(caught.value).startswith(f"{disk / 'report.md'}: cannot write it: no space left")
        assert "output_dir=" in str(caught.value)
        assert names(disk) == ["report.md"] and (disk / "report.md").read_text() == "old"


def test_a_disk_error_no_writer_named_still_becomes_one_line():
    err = PermissionError(13, "Permission denied", "/data/me.jpg")
    assert user_error(RuntimeError("a bug")) is None
    wrapped = RuntimeError("while reading")
    wrapped.__cause__ = err
    assert str(user_error(wrapped)) == "/data/me.jpg: permission denied"


# -- output folders ------------------------------------------------------------------------------------------------
def write_result(folder: Path, kind: OutputKind = KIND, **files: str) -> None:
    with output_folder(folder, kind) as staging:
        for name, text in files.items():
            (staging / name.replace("_", ".")).write_text(text)


def test_a_new_folder_gets_the_files_and_a_manifest_of_them(tmp_path):
    write_result(tmp_path / "out", metrics_json="{}", figure_png="png")
    assert names(tmp_path / "out") == [MANIFEST, "figure.png", "metrics.json"]
    assert sorted(json.loads((tmp_path / "out" / MANIFEST).read_text())["files"]) == ["figure.png", "metrics.json"]


def test_a_previous_result_is_replaced_file_by_file_and_the_users_files_stay(tmp_path):
    out = tmp_path / "out"
    write_result(out, metrics_json="{1}", figure_png="old")
    (out / "notes.txt").write_text("mine")
    (out / "wandb").mkdir()
    write_result(out, metrics_json="{2}")
    assert names(out) == [MANIFEST, "metrics.json", "notes.txt", "wandb"]  # figure.png was its own: gone
    assert (out / "metrics.json").read_text() == "{2}" and (out / "notes.txt").read_text() == "mine"


def test_a_failed_run_leaves_the_previous_result_whole(tmp_path):
    out = tmp_path / "out"
    write_result(out, metrics_json="{1}")
    with pytest.raises(RuntimeError), output_folder(out, KIND) as staging:
        (staging / "metrics.json").write_text("{half")
        raise RuntimeError
    assert names(out) == [MANIFEST, "metrics.json"] and (out / "metrics.json").read_text() == "{1}"


def test_a_failed_first_run_leaves_no_folder(tmp_path):
    with pytest.raises(RuntimeError), output_folder(tmp_path / "a" / "out", KIND):
        raise RuntimeError
    assert names(tmp_path) == []


@pytest.mark.parametrize(
    "setup, words",
    [
        (lambda out: (out / "train.log").write_text("mine"), "did not write (train.log)"),
        (lambda out: (out / "metrics.json").write_text("mine"), "metrics.json"),
        (lambda out: (out / MANIFEST).write_text("{"), "not a readable record"),
        (lambda out: (out / MANIFEST).write_text('{"kind": "comparison", "files": {}}'), "holds a comparison"),
    ],
)
def test_a_folder_that_is_not_a_previous_result_is_refused_before_any_work(tmp_path, setup, words):
    out = tmp_path / "out"
    out.mkdir()
    setup(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(FaceVAEError) as caught:
        check_output_folder(out, KIND)
    assert words in str(caught.value) and "output_dir=" in str(caught.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_result_the_user_edited_is_not_replaced(tmp_path):
    out = tmp_path / "out"
    write_result(out, metrics_json="{1}")
    (out / "metrics.json").write_text("{1, with my notes}")
    with pytest.raises(FaceVAEError, match="changed since evaluate.py wrote it"):
        write_result(out, metrics_json="{2}")
    assert (out / "metrics.json").read_text() == "{1, with my notes}"


def test_a_result_written_before_manifests_is_recognised_by_its_kind(tmp_path):
    kind = OutputKind("evaluation", "evaluate.py", KIND.files, earlier=lambda p: (p / "metrics.json").is_file())
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text("{old}")
    (out / "notes.txt").write_text("mine")
    write_result(out, kind, figure_png="new")
    assert names(out) == [MANIFEST, "figure.png", "notes.txt"]


def test_a_shared_folder_takes_the_files_beside_others_but_never_over_them(tmp_path):
    shared = OutputKind("sweep report", "evaluate.py sweep_dir=", frozenset({"sweep.md"}), shared=True)
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    write_result(sweep, shared, sweep_md="report")
    assert names(sweep) == [MANIFEST, "0", "sweep.md"]
    (sweep / MANIFEST).unlink()  # as if the user had written sweep.md
    with pytest.raises(FaceVAEError, match="would replace"):
        check_output_folder(sweep, shared)


def test_a_staging_folder_left_by_a_killed_run_is_cleared(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = tmp_path / "out"
    (out / f".facevae-staging@{socket.gethostname()}@{dead.stdout.strip()}@1").mkdir(parents=True)
    write_result(out, metrics_json="{}")
    assert names(out) == [MANIFEST, "metrics.json"]


def test_a_run_killed_while_moving_its_files_in_leaves_a_folder_the_next_run_takes(tmp_path):
    """Killed between moves: the manifest lists each name with the old file's hash and the new one's."""
    out = tmp_path / "out"
    write_result(out, metrics_json="{old}", figure_png="old")
    record = json.loads((out / MANIFEST).read_text())
    old = record["files"]["metrics.json"]
    record["files"]["metrics.json"] = [old, "f" * 64]  # not yet replaced: the old file still there
    (out / MANIFEST).write_text(json.dumps(record))
    write_result(out, metrics_json="{new}")
    assert names(out) == [MANIFEST, "metrics.json"] and (out / "metrics.json").read_text() == "{new}"


def test_an_error_reading_some_input_during_the_work_is_not_blamed_on_the_output_folder(tmp_path):
    with pytest.raises(PermissionError), output_folder(tmp_path / "out", KIND):
        raise PermissionError(13, "Permission denied", "/data/me.jpg")
    with (
        pytest.raises(WriteError, match=f"^{tmp_path / 'out'}: cannot write it: no space left"),
        output_folder(tmp_path / "out", KIND),
    ):
        raise OSError(28, "No space left on device")  # a full disk names no file
    assert names(tmp_path) == []
