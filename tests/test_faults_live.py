"""Faults of `python -m facevae.live`, run as a user would: bad settings refused in one line before any work, with
every file that was there left as it was; Ctrl-C before and during a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from faults import ROOT, assert_refused, assert_unchanged, run_command, tree_state


@pytest.fixture
def user_files(tmp_path: Path) -> Path:
    """A folder of the user's own files, some under names the live view would write."""
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "holiday.mp4").write_bytes(b"the user's holiday")
    (tmp_path / "taken.mp4").write_bytes(b"the user's video")
    (tmp_path / "taken.coords.csv").write_text("the user's table\n")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["source=-1", "output=v.mp4"], ["source=-1", "0 to 99"]),  # crashed inside OpenCV's camera open
        (["output=videos"], ["output=videos", "is a folder"]),
        (["output=taken.mp4"], ["output=taken.mp4", "exists", "overwrite=true"]),
    ],
)
def test_bad_settings_are_one_line_and_touch_nothing(live_checkpoint, demo_clip, user_files, args, words):
    before = tree_state(user_files)
    result = run_command("live", f"ckpt_path={live_checkpoint}", f"source={demo_clip}", *args, cwd=user_files)
    assert_refused(result, *words)
    assert_unchanged(before)
    assert sorted(p.name for p in user_files.iterdir()) == ["taken.coords.csv", "taken.mp4", "videos"]


def test_output_over_the_source_video_is_refused_even_with_overwrite(live_checkpoint, demo_clip, tmp_path):
    source = tmp_path / "me.mp4"
    source.write_bytes(Path(demo_clip).read_bytes())
    before = tree_state(tmp_path)
    args = [f"ckpt_path={live_checkpoint}", "source=me.mp4", "output=./me.mp4", "overwrite=true", "max_frames=5"]
    result = run_command("live", *args, cwd=tmp_path)
    assert_refused(result, "output=me.mp4", "source video")
    assert_unchanged(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["me.mp4"]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "facevae.live", *args]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_ctrl_c_during_a_run_finishes_it_with_the_frames_seen(live_checkpoint, long_clip, tmp_path):
    process = _start([f"ckpt_path={live_checkpoint}", f"source={long_clip}", "output=view.mp4"], tmp_path)
    for line in process.stdout:  # the loop starts once the latent map is ready
        if "latent map" in line:
            break
    time.sleep(2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    assert "Traceback" not in out + err and "interrupted after" in out
    frames = int(out.splitlines()[-4].split()[1].rstrip(","))
    assert 0 < frames < 12 * 30 and len(pd.read_csv(tmp_path / "view.coords.csv")) == frames
    assert sorted(p.name for p in tmp_path.iterdir()) == ["view.coords.csv", "view.mp4"]  # no temporary left


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="watches the process's libraries in /proc")
def test_ctrl_c_before_the_first_frame_is_one_line_and_writes_nothing(live_checkpoint, long_clip, tmp_path):
    process = _start([f"ckpt_path={live_checkpoint}", f"source={long_clip}", "output=view.mp4"], tmp_path)
    # Once torch's library is mapped, Python is past its start-up and Lightning's import (seconds) is still ahead.
    maps = Path(f"/proc/{process.pid}/maps")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and "libtorch_cpu" not in maps.read_text():
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130 and err.strip() == "interrupted", f"{process.returncode}\n{out}\n{err[-3000:]}"
    assert list(tmp_path.iterdir()) == []
