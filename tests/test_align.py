"""Face alignment: the eyes land at the same place in every crop, and a shifted frame gives the same crop."""

from __future__ import annotations

import copy

import av
import cv2
import numpy as np
import pytest

from facevae.data.align import AlignParams, FaceAligner, Square, cut, source_to_crop
from facevae.data.cache import load_cache
from facevae.data.demo_face import eye_centres, render_frame
from facevae.data.demo_factors import demo_factors
from facevae.data.extract import ExtractionParams, prepare_cache
from facevae.data.faces import Box, CropParams, FaceTracker, crop_square
from facevae.data.synthetic import write_demo_video

SIZE = 64
FRAME = (640, 360)  # small frames keep rendering and detection quick; the face is still 120 pixels tall


def _frames(n: int, seed: int, every: int = 4) -> list[tuple[float, np.ndarray, np.ndarray, dict]]:
    """Demo frames at 7.5 fps (every 4th of 30): time, RGB, grey, factors. Pose, scale and place drift."""
    factors = demo_factors(n * every, 30.0, seed=seed).iloc[::every]
    out = []
    for _, row in factors.iterrows():
        rgb = render_frame(row.to_dict(), FRAME)
        out.append((row["frame"] / 30.0, rgb, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), row.to_dict()))
    return out


def _aligned(frames, method: str, smooth_s: float = 0.2) -> list[tuple[int, Square]]:
    tracker, aligner = FaceTracker(), FaceAligner(AlignParams(method, smooth_s), CropParams())
    settled = []
    for i, (t, _, grey, _) in enumerate(frames):
        settled += [(j, square) for j, square, _ in aligner.push(i, t, grey, tracker.update(grey))]
    return settled + [(j, square) for j, square, _ in aligner.flush()]


def _eyes_in_crops(frames, settled) -> np.ndarray:
    """The true eye centres of each frame mapped into its crop: n x 2 eyes x (x, y), crop pixels."""
    out = []
    for i, square in settled:
        affine = source_to_crop(square, SIZE)
        out.append(eye_centres(frames[i][3], FRAME) @ affine[:, :2].T + affine[:, 2])
    return np.array(out)


def test_aligned_crops_put_the_eyes_in_one_place_while_box_crops_let_them_wander():
    frames = _frames(64, seed=5)
    spread = {}
    for method in ("none", "eyes+ecc"):
        eyes = _eyes_in_crops(frames, _aligned(frames, method))
        assert len(eyes) == len(frames)  # alignment never drops a frame
        offset = eyes - eyes.mean(axis=0)
        line = eyes[:, 1] - eyes[:, 0]
        spread[method] = {
            "rms": np.sqrt((offset**2).sum(-1).mean()),
            "jitter": np.sqrt((np.diff(offset, axis=0) ** 2).sum(-1).mean()),
            "roll": np.degrees(np.arctan2(line[:, 1], line[:, 0])).std(),
            "scale": np.log(np.hypot(*line.T)).std(),
        }
    # The demo head turns by up to 12 degrees and the box crop stays upright; its eyes stray by a few pixels.
    assert spread["none"]["rms"] > 2.0 and spread["none"]["roll"] > 4.0
    assert spread["eyes+ecc"]["rms"] < 1.5 and spread["eyes+ecc"]["roll"] < 1.5
    assert spread["eyes+ecc"]["jitter"] < 0.5 and spread["eyes+ecc"]["scale"] < 0.025


def _shifted(rgb: np.ndarray, dx: float, dy: float) -> np.ndarray:
    move = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(rgb, move, (rgb.shape[1], rgb.shape[0]), borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.parametrize("seed", [3, 8])
def test_the_same_frame_shifted_4_pixels_gives_a_crop_closer_than_a_smile_of_that_moment(seed):
    """After a few seconds of video, a neutral frame, the same frame moved 4 pixels, and the same moment smiling:
    the shifted frame's crop must be much nearer the original's than the smile's is (the crop follows the face)."""
    history = _frames(32, seed=seed)
    tracker, aligner = FaceTracker(), FaceAligner(AlignParams("eyes+ecc"), CropParams(), causal=True)
    for i, (t, _, grey, _) in enumerate(history):
        list(aligner.push(i, t, grey, tracker.update(grey)))
    moment = {**history[-1][3], "smile": 0.0}
    neutral = render_frame(moment, FRAME)
    frames = [neutral, render_frame({**moment, "smile": 0.9}, FRAME), _shifted(neutral, 4, 0), _shifted(neutral, 0, 4)]
    crops = []
    for rgb in frames:  # each from the same state, as if it were the next frame of the video
        track, align = copy.copy(tracker), copy.copy(aligner)
        align._window = copy.copy(aligner._window)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        ((_, square, _),) = align.push(None, history[-1][0] + 0.125, grey, track.update(grey))
        crops.append(cut(rgb, square, SIZE).astype(np.float64))
    distance = [np.sqrt(((c - crops[0]) ** 2).mean()) for c in crops[1:]]
    smile, shifts = distance[0], distance[1:]
    assert max(shifts) < 0.5 * smile, (smile, shifts)


def test_every_face_comes_out_once_in_time_order_and_frames_without_one_break_nothing():
    frames = _frames(20, seed=2)
    tracker, aligner = FaceTracker(), FaceAligner(AlignParams("eyes+ecc"), CropParams())
    out = []
    for i, (t, _, grey, _) in enumerate(frames):
        box = None if i in (5, 6, 12) else tracker.update(grey)  # the face is lost for a moment, twice
        out += [j for j, _, _ in aligner.push(i, t, grey, box)]
    out += [j for j, _, _ in aligner.flush()]
    assert out == [i for i in range(20) if i not in (5, 6, 12)]


def test_an_upright_square_is_cut_as_the_box_crop_always_was():
    rgb = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    box, params = Box(40.3, 30.7, 120.0, 120.0), CropParams()
    expected, rect = crop_square(rgb, box, params)
    from facevae.data.align import square_from_box

    square = square_from_box(box, params)
    assert square.rect() == rect
    np.testing.assert_array_equal(cut(rgb, square, SIZE), expected)
    assert ExtractionParams().as_dict() == ExtractionParams(align=AlignParams("none")).as_dict()
    assert "align" not in ExtractionParams().as_dict()  # upright crops keep the cache key they always had


def test_aligned_extraction_keeps_8_frames_a_second_of_a_variable_frame_rate_clip(tmp_path):
    clip = write_demo_video(tmp_path / "vfr.mp4", seconds=4.0, vfr=True, seed=4, size=FRAME)
    result = prepare_cache(clip, tmp_path / "cache", ExtractionParams(align=AlignParams("eyes+ecc")), progress=False)
    data = load_cache(result.path)
    assert abs(result.summary["kept"] - 4 * 8) <= 1
    assert result.summary["accepted"] == result.summary["kept"] == len(data.crops)
    assert result.summary["eyes_found"] >= 0.9 * result.summary["accepted"]
    assert data.frames["time_s"].is_monotonic_increasing and "crop_angle" in data.frames
    assert "crop_angle" not in data.factor_names


def test_a_face_that_leaves_the_frame_leaves_a_gap_and_the_rest_aligned(tmp_path):
    """2 s of face, 1 s of an empty room, 2 s of face again, at 30 fps: 40 kept frames, about 32 with a face."""
    path = tmp_path / "away.mp4"
    factors = demo_factors(150, 30.0, seed=6)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = *FRAME, "yuv420p"
        for i, row in factors.iterrows():
            rgb = np.full((FRAME[1], FRAME[0], 3), 90, np.uint8) if 60 <= i < 90 else render_frame(row.to_dict(), FRAME)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    result = prepare_cache(path, tmp_path / "cache", ExtractionParams(align=AlignParams("eyes+ecc")), progress=False)
    times = load_cache(result.path).frames["time_s"].to_numpy()
    assert result.summary["kept"] == 40 and 30 <= result.summary["accepted"] <= 33
    assert not ((times > 2.1) & (times < 2.9)).any()  # no crop from the empty second
    assert (times > 3.0).sum() >= 14  # the face is found again when it comes back
