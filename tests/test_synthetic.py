"""The demo video: deterministic factors and frames, exact timestamps, one findable face, local expressions."""

from __future__ import annotations

import itertools

import av
import cv2
import numpy as np
import pandas as pd
import pytest

from facevae.data import synthetic
from facevae.data.demo_face import render_frame
from facevae.data.demo_factors import FACTOR_NAMES, demo_factors
from facevae.data.synthetic import main, write_demo_video

NEUTRAL = dict(smile=0.0, brow=0.0, gaze=0.0, roll=0.0, yaw=0.0, light=1.0, scale=1.0, dx=0.0, dy=0.0)
# Frame boxes (x0, y0, x1, y1) of the default 1280x720 framing: the face's centre sits at the frame's centre,
# 2.5 frame pixels to a photo pixel.
MOUTH = (578, 405, 698, 460)
EYES_AND_FOREHEAD = (554, 257, 734, 340)


def _decode(path) -> tuple[list[np.ndarray], np.ndarray]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in frames], np.array([f.time for f in frames])


def _region_change(a: np.ndarray, b: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    return float(np.abs(a[y0:y1, x0:x1].astype(float) - b[y0:y1, x0:x1]).mean())


def test_factors_have_frame_then_the_named_columns_and_stay_in_range():
    factors = demo_factors(900, 30.0, seed=5)
    assert list(factors.columns) == ["frame", *FACTOR_NAMES]
    assert factors["frame"].tolist() == list(range(900))
    assert factors["smile"].between(-1, 1).all() and factors["brow"].between(0, 1).all()
    assert factors["gaze"].between(-1, 1).all() and factors["roll"].abs().max() <= 12
    assert factors["scale"].between(0.8, 1.25).all() and factors["light"].between(0.7, 1.3).all()


def test_same_seed_same_factors_and_frames_and_another_seed_differs():
    pd.testing.assert_frame_equal(demo_factors(300, 30.0, seed=3), demo_factors(300, 30.0, seed=3))
    assert not demo_factors(300, 30.0, seed=3).equals(demo_factors(300, 30.0, seed=4))
    row = demo_factors(300, 30.0, seed=3).iloc[150].to_dict()
    np.testing.assert_array_equal(render_frame(row), render_frame(row))


def test_same_seed_same_video_frames(tmp_path):
    first, _ = _decode(write_demo_video(tmp_path / "a.mp4", seconds=0.3, seed=9, size=(320, 180)))
    second, _ = _decode(write_demo_video(tmp_path / "b.mp4", seconds=0.3, seed=9, size=(320, 180)))
    assert len(first) == len(second) == 9
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_longer_clip_of_the_same_seed_starts_with_the_same_factors():
    short, long = demo_factors(300, 30.0, seed=2), demo_factors(900, 30.0, seed=2)
    pd.testing.assert_frame_equal(short, long.iloc[:300])


def test_smiles_are_common_and_frowns_rarer():
    smile = demo_factors(5400, 30.0, seed=0)["smile"]
    assert 0.2 < (smile > 0.5).mean() < 0.45
    assert 0.0 < (smile < -0.3).mean() < (smile > 0.5).mean() / 2


def test_the_smiling_clip_smiles_throughout():
    assert (demo_factors(600, 30.0, seed=1, smiling=True)["smile"] > 0.5).all()


def test_the_smiling_clip_lasts_20_seconds_by_default(tmp_path):
    path = write_demo_video(tmp_path / "smiles.mp4", smiling=True, size=(160, 90))
    factors = pd.read_csv(tmp_path / "smiles.factors.csv")
    assert len(factors) == 600 and (factors["smile"] > 0.5).all()
    assert path == tmp_path / "smiles.mp4"


@pytest.mark.parametrize("fps, step", [(30.0, 1 / 30), (29.97, 1001 / 30000)])
def test_a_constant_rate_clip_decodes_with_exact_timestamps(tmp_path, fps, step):
    path = write_demo_video(tmp_path / "clip.mp4", seconds=2.0, fps=fps, seed=1)
    frames, times = _decode(path)
    assert len(frames) == 60 and frames[0].shape == (720, 1280, 3)
    np.testing.assert_allclose(times, np.arange(60) * step, atol=1e-4)
    factors = pd.read_csv(tmp_path / "clip.factors.csv")
    assert list(factors.columns) == ["frame", *FACTOR_NAMES] and len(factors) == 60
    pd.testing.assert_frame_equal(factors, demo_factors(60, fps, seed=1), check_exact=False, rtol=1e-9)


def test_a_variable_rate_clip_has_irregular_increasing_timestamps(tmp_path):
    path = write_demo_video(tmp_path / "vfr.mp4", seconds=2.0, vfr=True, seed=1)
    frames, times = _decode(path)
    gaps = np.diff(times)
    assert len(frames) == len(pd.read_csv(tmp_path / "vfr.factors.csv"))
    assert frames[0].shape == (720, 1280, 3)
    assert times[0] == 0 and times[-1] < 2.0
    assert gaps.min() >= 0.5 / 30 - 1e-4 and gaps.max() <= 1.5 / 30 + 1e-4 and gaps.std() > 0.005


def test_the_video_is_what_render_frame_draws(tmp_path):
    path = write_demo_video(tmp_path / "clip.mp4", seconds=0.5, seed=7)
    frames, _ = _decode(path)
    factors = pd.read_csv(tmp_path / "clip.factors.csv")
    drawn = render_frame(factors.iloc[5].to_dict())
    assert np.abs(frames[5].astype(float) - drawn).mean() < 4  # H.264 at crf 20 and 4:2:0 chroma


def test_writing_leaves_exactly_the_two_files(tmp_path):
    write_demo_video(tmp_path / "out" / "clip.mp4", seconds=0.2, size=(320, 180))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.factors.csv", "clip.mp4"]


def test_a_failed_run_leaves_nothing_under_the_final_names(tmp_path, monkeypatch):
    def broken(factors, size):
        yield np.zeros((size[1] * 3 // 2, size[0]), np.uint8)
        raise RuntimeError("killed")

    monkeypatch.setattr(synthetic, "_rendered", broken)
    with pytest.raises(RuntimeError):
        write_demo_video(tmp_path / "clip.mp4", seconds=0.5, size=(320, 180))
    assert list(tmp_path.iterdir()) == []


def test_haar_finds_exactly_one_face_across_extreme_factors():
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    rng = np.random.default_rng(0)
    counts = []
    for roll, yaw, scale in itertools.product((-12.0, 0.0, 12.0), (-1.0, 0.0, 1.0), (0.84, 1.19)):
        factors = dict(
            smile=rng.uniform(-1, 1),
            brow=rng.uniform(0, 1),
            gaze=rng.uniform(-1, 1),
            roll=roll,
            yaw=yaw,
            light=rng.choice([0.75, 1.25]),
            scale=scale,
            dx=rng.choice([-110.0, 110.0]),
            dy=rng.choice([-40.0, 40.0]),
        )
        small = cv2.resize(render_frame(factors), (480, 270), interpolation=cv2.INTER_AREA)
        counts.append(len(cascade.detectMultiScale(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), 1.1, 5)))
    assert sum(c == 1 for c in counts) >= len(counts) - 1, counts


def test_a_smile_changes_the_mouth_and_not_the_eyes_and_a_brow_raise_the_reverse():
    neutral = render_frame(NEUTRAL)
    smile = render_frame({**NEUTRAL, "smile": 1.0})
    frown = render_frame({**NEUTRAL, "smile": -1.0})
    brow = render_frame({**NEUTRAL, "brow": 1.0})
    for expression in (smile, frown):
        assert _region_change(expression, neutral, MOUTH) > 5
        assert _region_change(expression, neutral, EYES_AND_FOREHEAD) < 0.5
    assert _region_change(brow, neutral, EYES_AND_FOREHEAD) > 5
    assert _region_change(brow, neutral, MOUTH) < 0.5


def test_gaze_moves_the_irises_both_ways():
    left, right = render_frame({**NEUTRAL, "gaze": -1.0}), render_frame({**NEUTRAL, "gaze": 1.0})
    assert _region_change(left, right, EYES_AND_FOREHEAD) > 2


def test_other_sizes_keep_the_face_in_frame():
    frame = render_frame(NEUTRAL, size=(640, 360))
    assert frame.shape == (360, 640, 3) and frame.dtype == np.uint8


def test_cli_prints_the_video_path_last(tmp_path, capsys):
    out = tmp_path / "cli.mp4"
    main(["--out", str(out), "--seconds", "0.2", "--width", "320", "--height", "180", "--seed", "2"])
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    assert out.exists() and (tmp_path / "cli.factors.csv").exists()


def test_cli_refuses_a_bad_rate_with_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "x.mp4"), "--fps", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: fps 0")
    assert list(tmp_path.iterdir()) == []
