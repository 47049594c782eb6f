"""Fault suite, damaged crop caches: each damage is found when the cache is opened, and `prepare` (or train.py, which
runs the same step) extracts the cache again, replacing only the cache's own three files; where it cannot (a
read-only cache folder, a file of the user's inside), it refuses in one line that says how to rebuild.
"""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from faults import (
    assert_refused,
    assert_succeeded,
    assert_unchanged,
    read_only,
    read_only_unavailable,
    run_commands,
    tree_state,
)

from facevae.data.cache import DamagedCache, load_cache
from facevae.data.datamodule import FaceCropDataModule


def truncate_crops(cache: Path) -> None:
    data = (cache / "crops.npy").read_bytes()
    (cache / "crops.npy").write_bytes(data[: len(data) // 2])


def corrupt_manifest(cache: Path) -> None:
    (cache / "manifest.json").write_text('{"key": "')


def fewer_frames(cache: Path) -> None:
    frames = pd.read_csv(cache / "frames.csv")
    frames.iloc[:-3].to_csv(cache / "frames.csv", index=False)


def delete_crops(cache: Path) -> None:
    (cache / "crops.npy").unlink()


def other_dtype(cache: Path) -> None:
    np.save(cache / "crops.npy", np.load(cache / "crops.npy").astype(np.float32))


def lost_column(cache: Path) -> None:
    pd.read_csv(cache / "frames.csv").drop(columns=["time_s"]).to_csv(cache / "frames.csv", index=False)


def empty_frames(cache: Path) -> None:
    (cache / "frames.csv").write_text("")


def manifest_of_another_cache(cache: Path) -> None:
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["key"] = "0123456789abcdef"
    (cache / "manifest.json").write_text(json.dumps(manifest))


# The damages prepare is run over (the others are found by the same checks: test_opening_a_damaged_cache...).
REBUILT = ["truncated crops.npy", "corrupt manifest.json", "frames.csv with fewer rows", "crops.npy deleted"]
DAMAGES = {
    "truncated crops.npy": (truncate_crops, "crops.npy"),
    "corrupt manifest.json": (corrupt_manifest, "manifest.json"),
    "frames.csv with fewer rows": (fewer_frames, "rows"),
    "crops.npy deleted": (delete_crops, "crops.npy missing"),
    "crops of another dtype": (other_dtype, "float32"),
    "frames.csv without a column": (lost_column, "time_s"),
    "empty frames.csv": (empty_frames, "frames.csv"),
    "manifest of another cache": (manifest_of_another_cache, "manifest.json"),
}


@pytest.fixture(scope="module")
def built(demo_clip, tmp_path_factory) -> Path:
    """The 4-second clip's cache as `prepare` builds it, built once; each test damages a copy."""
    cache_dir = tmp_path_factory.mktemp("pristine")
    # fps=8 and align=eyes+ecc as conf/data/faces.yaml writes them: the key hashes the parameters as given (8 is not
    # 8.0 there), and the class's own align default is the upright crop of checkpoints from before alignment.
    dm = FaceCropDataModule(video=str(demo_clip), cache_dir=str(cache_dir), fps=8, align="eyes+ecc", progress=False)
    return dm.prepare_cache().path


def damaged_copy(built: Path, root: Path, damage) -> Path:
    cache = shutil.copytree(built, root / "cache" / built.name)
    damage(cache)
    return cache


@pytest.mark.parametrize("name", DAMAGES)
def test_opening_a_damaged_cache_names_the_damage(built, tmp_path, name):
    damage, words = DAMAGES[name]
    cache = damaged_copy(built, tmp_path, damage)
    with pytest.raises(DamagedCache) as caught:
        load_cache(cache, mmap=name != "crops of another dtype")
    message = str(caught.value)
    assert words in message and "facevae.prepare" in message and "\n" not in message


@pytest.fixture(scope="module")
def rebuilds(built, demo_clip, tmp_path_factory) -> dict:
    """`python -m facevae.prepare` over each damaged cache, and over ones it must not rebuild, in one batch."""
    tmp = tmp_path_factory.mktemp("rebuilds")
    plan = {}
    for i, name in enumerate(REBUILT):
        plan[name] = damaged_copy(built, tmp / str(i), DAMAGES[name][0])
    foreign = damaged_copy(built, tmp / "foreign", delete_crops)
    (foreign / "my_labels.csv").write_text("frame,label\n0,happy\n")
    plan["a file of the user's inside"] = foreign
    with ExitStack() as stack:
        if read_only_unavailable() is None:
            ro = damaged_copy(built, tmp / "ro", truncate_crops)
            stack.enter_context(read_only(ro.parent))
            plan["read-only cache folder"] = ro
        before = {name: tree_state(cache.parent) for name, cache in plan.items()}
        args = [[f"data.video={demo_clip}", f"data.cache_dir={c.parent}", "data.progress=false"] for c in plan.values()]
        results = run_commands("prepare", args, cwd=tmp, timeout=300)
    return {name: (result, plan[name], before[name]) for name, result in zip(plan, results, strict=True)}


@pytest.mark.parametrize("name", REBUILT)
def test_prepare_extracts_a_damaged_cache_again(rebuilds, built, name):
    result, cache, _ = rebuilds[name]
    assert_succeeded(result)
    assert result.stdout.strip().splitlines()[-1] == str(cache)
    rebuilt, original = load_cache(cache), load_cache(built)
    assert np.array_equal(rebuilt.crops, original.crops)
    assert rebuilt.frames.equals(original.frames)
    assert sorted(p.name for p in cache.parent.iterdir()) == [cache.name]  # no temporary or lock left


def test_a_damaged_cache_holding_a_users_file_is_refused_and_kept(rebuilds):
    result, cache, before = rebuilds["a file of the user's inside"]
    assert_refused(result, str(cache), "my_labels.csv")
    assert_unchanged(before)


def test_a_damaged_cache_in_a_read_only_folder_is_refused_saying_how_to_rebuild(rebuilds):
    if "read-only cache folder" not in rebuilds:
        pytest.skip(read_only_unavailable())
    result, _, before = rebuilds["read-only cache folder"]
    assert_refused(result, "data.cache_dir=", "read-only")
    assert_unchanged(before)


@pytest.mark.slow
def test_training_on_a_damaged_cache_extracts_it_again(built, demo_clip, tmp_path):
    from conftest import tiny_overrides

    cache = damaged_copy(built, tmp_path, fewer_frames)
    overrides = [*tiny_overrides(demo_clip, cache.parent), "logger=none", "test=false", f"hydra.run.dir={tmp_path}/run"]
    (result,) = run_commands("train", [overrides], cwd=tmp_path)
    assert_succeeded(result)
    assert len(load_cache(cache).frames) == len(load_cache(built).frames)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
