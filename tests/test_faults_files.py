"""Fault suite, bad files and folders given as input: damaged checkpoints to evaluate.py and train.py, bad photo
folders and paths to `prepare`. Each is refused in one line naming the file, with no traceback and nothing changed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
import torch
from faults import (
    assert_refused,
    assert_unchanged,
    read_only,
    read_only_unavailable,
    run_command,
    run_commands,
    tree_state,
    unreachable_by_others,
)

CHECKPOINTS = {  # name -> words the refusal names
    "truncated": ["not a readable checkpoint"],
    "empty": ["not a readable checkpoint"],
    "a picture": ["not a readable checkpoint"],
    "a folder": ["is a folder", "last.ckpt"],
    "another program's": ["not a facevae checkpoint"],
    "text": ["not a readable checkpoint"],
    "bytes damaged inside": ["fails its checksum"],
    "NaN weights": ["NaN", "earlier"],
    "missing": ["no such checkpoint"],
}


def damaged_checkpoints(good: Path, folder: Path) -> dict[str, Path]:
    folder.mkdir()
    data = good.read_bytes()
    paths = {name: folder / f"{i}.ckpt" for i, name in enumerate(CHECKPOINTS)}
    paths["truncated"].write_bytes(data[: len(data) // 2])
    paths["empty"].write_bytes(b"")
    paths["a picture"].write_bytes(next((good.parent.parent / "images").glob("*.png")).read_bytes())
    shutil.copytree(good.parent.parent, paths["a folder"])  # a run folder given where its checkpoint goes
    torch.save({"state_dict": {"w": torch.zeros(2)}}, paths["another program's"])
    paths["text"].write_text("epoch: 3\n")
    paths["bytes damaged inside"].write_bytes(damage_largest_tensor(good))
    ckpt = torch.load(good, weights_only=False)
    ckpt["state_dict"] = {
        k: v.float().fill_(float("nan")) if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()
    }
    torch.save(ckpt, paths["NaN weights"])
    return paths


def damage_largest_tensor(path: Path) -> bytes:
    """The checkpoint's bytes with 64 of its largest tensor's zeroed: a flipped block on disk, not a cut."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entry = max(archive.infolist(), key=lambda info: info.file_size)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[entry.header_offset + 26 : entry.header_offset + 30])
    start = entry.header_offset + 30 + name_length + extra_length + entry.file_size // 2
    data[start : start + 64] = bytes(64) if any(data[start : start + 64]) else b"\xff" * 64
    return bytes(data)


@pytest.fixture(scope="module")
def checkpoint_cases(tiny_run, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("ckpts")
    paths = damaged_checkpoints(tiny_run / "checkpoints" / "last.ckpt", tmp / "bad")
    before = tree_state(tmp)
    cases = [[f"ckpt_path={p}", f"output_dir={tmp / 'out' / p.name}", "wandb=false"] for p in paths.values()]
    results = run_commands("evaluate", cases, cwd=tmp, timeout=300)
    # Resuming training from a damaged checkpoint: refused before any training. And a run folder that is read-only.
    resumes = [
        ["logger=none", f"ckpt_path={paths[n]}", f"hydra.run.dir={tmp / 'run'}"] for n in ("truncated", "a folder")
    ]
    (tmp / "ro").mkdir()
    with ExitStack() as stack:
        if read_only_unavailable() is None:
            stack.enter_context(read_only(tmp / "ro"))
            resumes.append(["logger=none", f"hydra.run.dir={tmp / 'ro' / 'run'}"])
        resumed = run_commands("train", resumes, cwd=tmp, timeout=300)
    return {"evaluate": dict(zip(paths, results, strict=True)), "train": resumed, "before": before, "tmp": tmp}


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_evaluate_refuses_a_damaged_checkpoint_in_one_line(checkpoint_cases, name):
    line = assert_refused(checkpoint_cases["evaluate"][name], *CHECKPOINTS[name])
    assert f"/{list(CHECKPOINTS).index(name)}.ckpt" in line  # names the file
    assert not (checkpoint_cases["tmp"] / "out").exists()


def test_training_refuses_to_resume_from_a_damaged_checkpoint(checkpoint_cases):
    truncated, folder, *_ = checkpoint_cases["train"]
    assert_refused(truncated, "not a readable checkpoint")
    assert_refused(folder, "is a folder")
    assert_unchanged(checkpoint_cases["before"])


def test_training_into_a_read_only_run_folder_is_refused_in_one_line(checkpoint_cases):
    if len(checkpoint_cases["train"]) < 3:
        pytest.skip(read_only_unavailable())
    assert_refused(checkpoint_cases["train"][2], "hydra.run.dir=", "read-only")
    assert not (checkpoint_cases["tmp"] / "ro" / "run").exists()


def write_photos(folder: Path, n: int) -> None:
    import cv2
    from skimage import data

    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    folder.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:02d}.jpg"), np.roll(face, 4 * i, axis=1))


@pytest.fixture(scope="module")
def folder_cases(tmp_path_factory) -> dict:
    """prepare over bad photo folders and paths. Run as another user when root (whom permissions do not stop), in a
    folder that user can reach."""
    if os.geteuid() == 0 and (why := unreachable_by_others()):
        pytest.skip(f"the folder cases run as another user, who cannot run this checkout: {why}")
    root = Path(tempfile.mkdtemp(prefix="facevae-faults-", dir="/tmp"))
    try:
        root.chmod(0o777)
        write_photos(root / "unreadable", 3)
        (root / "unreadable" / "01.jpg").chmod(0)
        (root / "not_images").mkdir()
        (root / "not_images" / "notes.txt").write_text("no photos here\n")
        (root / "empty.mp4").write_bytes(b"")
        (root / "a_file").write_text("the user's\n")
        write_photos(root / "photos", 1)
        os.mkfifo(root / "pipe.mp4")
        (root / "loop.mp4").symlink_to("loop.mp4")
        cases = {
            "unreadable image": [f"data.video={root / 'unreadable'}", f"data.cache_dir={root / 'c1'}"],
            "folder without images": [f"data.video={root / 'not_images'}", f"data.cache_dir={root / 'c2'}"],
            "empty video file": [f"data.video={root / 'empty.mp4'}", f"data.cache_dir={root / 'c3'}"],
            "cache_dir is a file": [f"data.video={root / 'photos'}", f"data.cache_dir={root / 'a_file'}"],
            "cache_dir under a file": [f"data.video={root / 'photos'}", f"data.cache_dir={root / 'a_file' / 'c'}"],
            "a named pipe": [f"data.video={root / 'pipe.mp4'}", f"data.cache_dir={root / 'c4'}"],
            "a symbolic link loop": [f"data.video={root / 'loop.mp4'}", f"data.cache_dir={root / 'c5'}"],
        }
        for folder in root.rglob("*"):
            if folder.is_dir():
                folder.chmod(0o777)
        before = tree_state(root)
        user = 65534 if os.geteuid() == 0 else None
        args = [[*a, "data.progress=false"] for a in cases.values()]
        results = run_commands("prepare", args, cwd=root, timeout=300, user=user)
        after_files = sorted(p.relative_to(root) for p in root.rglob("*"))
        unchanged_error = None
        try:
            assert_unchanged(before)
        except AssertionError as err:
            unchanged_error = err
        return {"results": dict(zip(cases, results, strict=True)), "files": after_files, "unchanged": unchanged_error}
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(
    "name, words",
    [
        ("unreadable image", ["01.jpg", "cannot read it", "Permission denied"]),
        ("folder without images", ["holds no images"]),
        ("empty video file", ["empty.mp4", "empty"]),
        ("cache_dir is a file", ["a_file"]),
        ("cache_dir under a file", ["a_file"]),
        ("a named pipe", ["pipe.mp4", "not a regular file"]),
        ("a symbolic link loop", ["loop.mp4", "symbolic link"]),
    ],
)
def test_prepare_refuses_a_bad_folder_or_path_in_one_line(folder_cases, name, words):
    assert_refused(folder_cases["results"][name], *words)


def test_bad_folders_leave_every_file_as_it_was_and_no_cache(folder_cases):
    assert folder_cases["unchanged"] is None, folder_cases["unchanged"]
    assert not [p for p in folder_cases["files"] if p.parts[0].startswith("c")]  # no cache folder made


def test_a_checkpoint_that_holds_code_is_refused_without_running_it(tmp_path):
    import torch

    marker = tmp_path / "ran"
    torch.save({"state_dict": RunsCode(str(marker))}, tmp_path / "crafted.ckpt")
    before = tree_state(tmp_path)
    for command in ("evaluate", "train"):
        result = run_command(command, "ckpt_path=crafted.ckpt", cwd=tmp_path)
        assert_refused(result, "crafted.ckpt", "could run code")
        assert not marker.exists()
    assert_unchanged(before)


class RunsCode:
    """What a crafted pickle holds: an object whose unpickling calls a function of the attacker's choice."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))
