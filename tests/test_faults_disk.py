"""Fault suite, a full disk: extraction, the demo video, training's checkpoints and evaluation each stop with one
line saying the disk is full, and leave nothing half-written under a final name (the previous file, or nothing).

The full disk is a small tmpfs mounted for the test; where mount does not work (no root), the tests skip saying so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faults import assert_refused, run_commands, small_disk

from facevae.core.checkpoint import read_checkpoint

FULL = "no space left"


def leftovers(root: Path) -> list[str]:
    """Every file and folder under `root`, relative: what a failed command left on the full disk."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_extraction_on_a_full_disk_stops_in_one_line_and_leaves_no_cache(demo_clip, tmp_path):
    with small_disk(tmp_path / "disk", "128k") as disk:
        args = [f"data.video={demo_clip}", f"data.cache_dir={disk / 'cache'}", "data.progress=false"]
        (result,) = run_commands("prepare", [args], cwd=tmp_path)
        assert_refused(result, FULL, "data.cache_dir=")
        assert leftovers(disk) == []


def test_the_demo_video_on_a_full_disk_stops_in_one_line_and_leaves_nothing(tmp_path):
    with small_disk(tmp_path / "disk", "16k") as disk:
        (result,) = run_commands("synthetic", [["--out", str(disk / "clip.mp4"), "--seconds", "2"]], cwd=tmp_path)
        assert_refused(result, FULL)
        assert leftovers(disk) == []


@pytest.mark.slow
def test_a_full_disk_while_checkpointing_leaves_no_truncated_checkpoint(long_clip, tmp_path):
    """Room for the run's first checkpoint (9.4 MB) and not its second: the second is refused, the first intact."""
    from conftest import tiny_overrides

    with small_disk(tmp_path / "disk", "14m") as disk:
        run = disk / "run"
        overrides = [
            *tiny_overrides(long_clip, tmp_path / "cache"),
            "logger=none",
            "test=false",
            f"hydra.run.dir={run}",
        ]
        (result,) = run_commands("train", [overrides], cwd=tmp_path)
        assert_refused(result, FULL, "hydra.run.dir=")
        assert result.stderr.rstrip().endswith("run again, or give hydra.run.dir= a folder on another disk")
        names = [p.name for p in (run / "checkpoints").iterdir()]
        assert names == ["best-epoch000.ckpt"], names  # no last.ckpt, whole or partial
        read_checkpoint(run / "checkpoints" / "best-epoch000.ckpt")


@pytest.mark.slow
def test_evaluation_on_a_full_disk_stops_in_one_line_and_leaves_nothing(tiny_run, tmp_path):
    with small_disk(tmp_path / "disk", "160k") as disk:
        args = [f"ckpt_path={tiny_run / 'checkpoints' / 'last.ckpt'}", f"output_dir={disk / 'eval'}", "wandb=false"]
        (result,) = run_commands("evaluate", [[*args, "n_samples=50", "shift_frames=8"]], cwd=tmp_path)
        assert_refused(result, FULL, "output_dir=")
        assert leftovers(disk) == []
