"""The live view's sources and settings: camera indices, a camera that is missing, silent or stops, and every
setting of the live group checked before any work (each bad value one line naming it)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import ScriptedCamera
from hydra import compose, initialize_config_dir

from facevae.core.errors import FaceVAEError
from facevae.live.settings import validate
from facevae.live.sources import camera_index, open_source

ROOT = Path(__file__).resolve().parents[1]
FRAME = np.full((48, 64, 3), 90, np.uint8)


def settings(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return validate(compose("live", overrides=["ckpt_path=model.ckpt", *overrides]))


@pytest.mark.parametrize("source", [-1, 100, True, "-3"])
def test_camera_indices_outside_0_to_99_are_refused_before_opencv_sees_them(source):
    # -1 crashed inside OpenCV's camera open; 100 and more name a backend (200 + i is V4L2's camera i).
    with pytest.raises(FaceVAEError, match=f"source={source}: "):
        camera_index(source)


def test_a_string_of_digits_is_a_camera_unless_a_file_has_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert camera_index(0) == 0 and camera_index("3") == 3 and camera_index("clip.mp4") is None
    (tmp_path / "3").write_bytes(b"")
    assert camera_index("3") is None


def test_a_missing_camera_is_one_line_and_freed():
    camera = ScriptedCamera([], opened=False)
    with pytest.raises(FaceVAEError, match=r"^source=2: camera 2 cannot be opened \(is a webcam connected"):
        open_source(2, capture=lambda index: camera)
    assert camera.released


def test_a_camera_that_gives_no_frame_is_one_line_and_freed():
    camera = ScriptedCamera([])
    source = open_source(0, capture=lambda index: camera)
    with pytest.raises(FaceVAEError, match="^source=0: camera 0 opened but gave no frame$"):
        next(source.frames)
    assert camera.released


def test_a_camera_that_stops_ends_the_frames_with_one_line(caplog):
    camera = ScriptedCamera([FRAME] * 3 + [FRAME[..., 0]])  # the last one from a monochrome camera
    source = open_source(0, capture=lambda index: camera)
    assert source.camera and source.name == "camera 0" and source.fps == 30.0  # a reported 0 fps means unknown
    with caplog.at_level(logging.WARNING):
        frames = list(source.frames)
    assert [f.index for f in frames] == [0, 1, 2, 3] and camera.released
    assert all(f.rgb().shape == (48, 64, 3) and f.gray.shape == (48, 64) for f in frames)
    assert [r.getMessage() for r in caplog.records] == ["camera 0 stopped giving frames after 4: finishing"]


def test_closing_a_camera_source_frees_the_camera():
    camera = ScriptedCamera([FRAME] * 10)
    source = open_source(0, capture=lambda index: camera)
    next(source.frames)
    source.close()
    assert camera.released


def test_valid_settings_are_typed(tmp_path):
    s = settings("source=clip.mp4", f"output={tmp_path / 'v.mp4'}", "max_frames=5")
    assert s.source == Path("clip.mp4") and not s.camera and s.max_frames == 5
    assert s.coords_csv == tmp_path / "v.coords.csv"  # beside the video by default
    assert settings("source=1").source == 1 and settings("source=1").camera


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("source=-1", "source=-1: a webcam index is 0 to 99"),
        ("source=", "source: missing"),
        ("threads=0", "threads=0: must be from 1 to "),  # to the machine's CPU cores
        ("threads=abc", "threads=abc: must be a whole number"),
        ("trail=0", "trail=0: must be from 1 to 10000 points"),
        ("max_frames=0", "max_frames=0: must be >= 1"),
        ("max_frames=1.5", "max_frames=1.5: must be a whole number"),
        ("projection=tsne", "projection=tsne: must be one of auto, pca, active, smile"),
        ("device=bogus", "device=bogus: must be auto, cpu, cuda, cuda:N or mps"),
        ("device=cuda:7", "device=cuda:7: this machine has "),  # fewer CUDA GPUs
        ("overwrite=maybe", "overwrite=maybe: must be true or false"),
        ("output=v.gif", "output=v.gif: must end in .mp4, .mkv, .mov"),
        ("output=v.mp4 coords_csv=c.txt", "coords_csv=c.txt: must end in .csv"),
        ("data.video=123", "data.video=123: must be a path"),
    ],
)
def test_each_bad_setting_is_one_line_naming_it(override, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FaceVAEError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        settings(*override.split())


def test_paths_that_exist_or_cannot_be_written_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("folder").mkdir()
    Path("taken.mp4").write_bytes(b"the user's video")
    Path("afile").write_text("not a folder")
    cases = {
        "output=folder.mp4": None,  # fine: a new file
        "output=folder": "output=folder: is a folder; name a file in it, e.g. folder/live.mp4",
        "output=taken.mp4": "output=taken.mp4: exists (pass overwrite=true to replace it",
        "output=afile/v.mp4": "output=afile/v.mp4: afile is a file, not a folder",
        "output=v.mp4 coords_csv=folder": "coords_csv=folder: is a folder; name a file in it, e.g. folder/live.csv",
        "snapshot_dir=afile": "snapshot_dir=afile: afile is a file, not a folder",
    }
    Path("dir.mp4").mkdir()
    cases["output=dir.mp4"] = "output=dir.mp4: is a folder; name a file in it"
    cases["source=folder"] = "source=folder: is a folder; the live view plays a video file or a camera"
    for override, message in cases.items():
        if message is None:
            settings(override)
            continue
        with pytest.raises(FaceVAEError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
            settings(*override.split())
    assert settings("output=taken.mp4", "overwrite=true").overwrite
    assert Path("taken.mp4").read_bytes() == b"the user's video"
