"""Extraction: a video or image folder becomes a cache of 64x64 face crops, kept at 8 fps by timestamp."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest

from facevae.core.errors import FaceVAEError
from facevae.data import cache
from facevae.data import extract as extract_module
from facevae.data.cache import load_cache
from facevae.data.extract import ExtractionParams, prepare_cache
from facevae.data.synthetic import write_demo_video
from facevae.data.video import iter_video_frames

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(demo_clip, tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("cache")
    return cache_dir, prepare_cache(demo_clip, cache_dir, ExtractionParams(), progress=False)


def test_a_face_is_found_in_nearly_every_kept_frame(built):
    _, result = built
    assert result.summary["accepted"] >= 0.95 * result.summary["kept"]


def test_kept_count_is_duration_times_fps(built):
    _, result = built
    assert abs(result.summary["kept"] - 4 * 8) <= 1


def test_crops_are_64x64_rgb_uint8(built):
    _, result = built
    data = load_cache(result.path)
    assert data.crops.dtype == np.uint8
    assert data.crops.shape[1:] == (64, 64, 3)
    assert len(data.crops) == len(data.frames) == result.summary["accepted"]
    assert list(data.frames.columns[:6]) == ["frame", "time_s", "x", "y", "w", "h"]


def test_manifest_records_source_parameters_counts_and_versions(built, demo_clip):
    _, result = built
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["source"] == str(demo_clip.resolve())
    assert manifest["params"]["fps"] == 8.0 and manifest["params"]["size"] == 64
    assert manifest["counts"]["kept"] == result.summary["kept"]
    assert {"opencv", "av", "numpy"} <= set(manifest["versions"])
    assert result.path.name.endswith(manifest["key"])


def test_factor_columns_equal_the_sidecar_at_those_frames(built, demo_clip):
    _, result = built
    frames = load_cache(result.path).frames
    sidecar = pd.read_csv(demo_clip.with_name("clip.factors.csv")).set_index("frame")
    names = ["smile", "brow", "gaze", "roll", "yaw", "light", "scale", "dx", "dy"]
    assert set(names) <= set(frames.columns)
    expected = sidecar.loc[frames["frame"], names].to_numpy()
    np.testing.assert_allclose(frames[names].to_numpy(), expected, rtol=1e-5, atol=1e-5)


def test_same_inputs_reuse_the_cache_and_a_changed_parameter_rebuilds(built, demo_clip):
    cache_dir, first = built
    again = prepare_cache(demo_clip, cache_dir, ExtractionParams(), progress=False)
    assert again.reused and again.path == first.path
    changed = ExtractionParams()
    changed.crop.scale = 0.9
    other = prepare_cache(demo_clip, cache_dir, changed, progress=False)
    assert not other.reused and other.path != first.path


def test_a_copied_video_reuses_the_cache_and_an_edited_one_does_not(built, demo_clip, tmp_path):
    cache_dir, first = built
    copy = tmp_path / "clip.mp4"
    data = bytearray(demo_clip.read_bytes())
    copy.write_bytes(bytes(data))
    copy.with_name("clip.factors.csv").write_bytes(demo_clip.with_name("clip.factors.csv").read_bytes())
    assert prepare_cache(copy, cache_dir, ExtractionParams(), progress=False).path == first.path
    data[-100] ^= 0xFF  # one byte near the end: the identity hashes the head and the tail
    copy.write_bytes(bytes(data))
    assert cache.source_identity(copy) != cache.source_identity(demo_clip)


@pytest.mark.parametrize("fps", ["25", "30000/1001", "60"])
def test_frames_are_kept_at_8_per_second_whatever_the_source_rate(tmp_path, fps):
    from fractions import Fraction

    clip = write_demo_video(tmp_path / "rate.mp4", seconds=3.0, fps=float(Fraction(fps)), seed=3)
    counts = {"decoded": 0}
    kept = list(iter_video_frames(clip, 8.0, counts))
    assert abs(len(kept) - 3 * 8) <= 1
    gaps = np.diff([f.time_s for f in kept])
    assert gaps.max() < 1 / 8 + 1 / float(Fraction(fps)) + 1e-6


def test_variable_frame_rate_keeps_8_per_second_of_video(tmp_path):
    clip = write_demo_video(tmp_path / "vfr.mp4", seconds=3.0, vfr=True, seed=4)
    counts = {"decoded": 0}
    kept = list(iter_video_frames(clip, 8.0, counts))
    slots = [int(f.time_s * 8 + 1e-6) for f in kept]
    assert slots == sorted(set(slots))  # never two frames in one slot
    assert abs(len(kept) - 3 * 8) <= 1


def test_a_folder_of_photos_without_a_face_names_each_files_reason(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(folder / "b.png"), np.full((120, 120, 3), 90, np.uint8))  # readable, but no face in it
    with pytest.raises(FaceVAEError) as err:
        prepare_cache(folder, tmp_path / "cache", ExtractionParams(), progress=False)
    message = str(err.value)
    assert "no face found in 1 images (2 read)" in message, message
    assert "a.jpg: not a readable image" in message and "b.png: " in message


def test_an_image_folder_gives_one_crop_per_face_and_a_file_column(demo_clip, tmp_path):
    folder = tmp_path / "smiles"
    folder.mkdir()
    with av.open(str(demo_clip)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 30 == 0:
                cv2.imwrite(str(folder / f"img{i:03d}.png"), frame.to_ndarray(format="bgr24"))
    (folder / "notes.txt").write_text("not an image")
    result = prepare_cache(folder, tmp_path / "cache", ExtractionParams(), progress=False)
    frames = load_cache(result.path).frames
    assert len(frames) >= 3
    assert list(frames["file"]) == sorted(frames["file"])
    assert frames["frame"].tolist() == sorted(frames["frame"].tolist())


# -- bad input: a one-line error naming the file, and no cache directory left behind --------------------------------


def _assert_nothing_left(cache_dir: Path) -> None:
    assert not cache_dir.exists() or not any(cache_dir.iterdir())


def _write_blank_video(path: Path, seconds: float = 2.0) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for _ in range(int(30 * seconds)):
            frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), 90, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _bad(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "nope.mp4"
    if kind == "not a video":
        path = tmp_path / "notes.mp4"
        path.write_text("this is not a video\n" * 100)
        return path
    if kind == "empty":
        path = tmp_path / "empty.mp4"
        path.touch()
        return path
    if kind == "no face":
        return _write_blank_video(tmp_path / "blank.mp4")
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("missing", "no such file"),
        ("not a video", "not a readable video"),
        ("empty", "empty"),
        ("no face", "no face found in 16 kept frames"),
    ],
)
def test_bad_input_gives_a_clear_error_and_leaves_nothing(tmp_path, kind, reason):
    source = _bad(tmp_path, kind)
    cache_dir = tmp_path / "cache"
    with pytest.raises(FaceVAEError) as err:
        prepare_cache(source, cache_dir, ExtractionParams(), progress=False)
    message = str(err.value)
    assert str(source) in message and reason in message and "\n" not in message
    _assert_nothing_left(cache_dir)


def test_a_truncated_video_is_refused(demo_clip, tmp_path):
    data = demo_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FaceVAEError) as err:
        prepare_cache(cut, tmp_path / "cache", ExtractionParams(), progress=False)
    assert str(cut) in str(err.value)
    _assert_nothing_left(tmp_path / "cache")


@pytest.mark.parametrize("fps, size", [(0, 64), (120, 64), (8, 8), (8, 1024)])
def test_fps_or_size_out_of_range_is_refused(fps, size):
    with pytest.raises(FaceVAEError, match="data.extraction.fps|data.size"):
        ExtractionParams(fps=fps, size=size)


def test_a_killed_extraction_leaves_nothing_taken_for_a_cache(demo_clip, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = extract_module.cut

    def crop_then_die(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt  # what Ctrl-C looks like midway
        return real(*args, **kwargs)

    monkeypatch.setattr(extract_module, "cut", crop_then_die)
    cache_dir = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        prepare_cache(demo_clip, cache_dir, ExtractionParams(), progress=False)
    _assert_nothing_left(cache_dir)
    monkeypatch.setattr(extract_module, "cut", real)
    # A temporary directory a killed process left behind is never taken for a cache.
    (cache_dir / ".tmp-clip-x").mkdir(parents=True)
    assert not prepare_cache(demo_clip, cache_dir, ExtractionParams(), progress=False).reused


def test_the_command_line_prints_the_cache_path_last_and_fails_cleanly(demo_clip, tmp_path):
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "facevae.prepare", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    ok = run(f"data.video={demo_clip}", f"data.cache_dir={tmp_path / 'cache'}", "data.progress=false")
    assert ok.returncode == 0, ok.stderr
    last = Path(ok.stdout.strip().splitlines()[-1])
    assert last.is_dir() and (last / "crops.npy").is_file()
    bad = run(f"data.video={tmp_path / 'missing.mp4'}", f"data.cache_dir={tmp_path / 'cache2'}")
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'missing.mp4'}: no such file or folder"
    _assert_nothing_left(tmp_path / "cache2")


def test_parallel_jobs_extracting_one_video_build_its_cache_once(demo_clip, tmp_path):
    """Sweep jobs launched side by side on a new video: one extracts, the others wait and reuse its cache."""
    from concurrent.futures import ThreadPoolExecutor

    params = ExtractionParams()
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: prepare_cache(demo_clip, tmp_path, params, progress=False), range(3)))
    assert len({r.path for r in results}) == 1
    assert sorted(r.reused for r in results) == [False, True, True]
    assert [p.name for p in tmp_path.iterdir()] == [results[0].path.name]  # no lock or temporary left
