"""The built-in demo video: one real person's face whose expression, pose, light and framing vary, with the truth.

`python -m facevae.data.synthetic` writes an H.264 mp4 of the astronaut in `skimage.data.astronaut()` and, beside
it, `<stem>.factors.csv`: one row per frame with `frame` (0-based index in decoding order) and these factors.

    smile  [-1, 1]   0 neutral closed mouth; +1 broad open smile (the photo's own, corners a little further up
                     and out: teeth shown, cheeks lifted, smile lines deep); -1 frown (lips closed, corners
                     pulled down); teeth start to show above 0.25
    brow   [0, 1]    brow raise, 1 = brows about 4.5 photo pixels up (the eye-to-brow gap is about 12)
    gaze   [-1, 1]   irises shift, -1 = towards the image's left, +1 towards its right (about 2.8 photo pixels)
    roll   degrees   in-plane head tilt, positive = counter-clockwise on screen (about +-12)
    yaw    [-1, 1]   head turn, positive = nose and features move towards the image's right
    light  gain      overall brightness multiplier (about 0.75 to 1.25); brighter also means a stronger
                     light from the image's left (a gentle left-right gradient)
    scale  factor    face size relative to the default framing (about 0.84 to 1.19)
    dx, dy pixels    face offset from its default place, in pixels of a 720-line frame (so output pixels at
                     the default 1280x720; scaled with the height for other sizes)

Expressions (smile, brow, gaze) come as events: a ramp, a hold, a release, then a rest. Pose, light and framing
drift slowly as sums of a few sinusoids with random periods and phases. Each factor draws from its own random
stream of the seed, so the same seed always gives the same factors and the same frames.

The factors are drawn in `facevae.data.demo_factors`, the frames in `facevae.data.demo_face`; this module encodes
them as H.264 beside the factor table.
"""

from __future__ import annotations

import argparse
import logging
import math
import queue
import sys
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from facevae.core.errors import FaceVAEError, exit_on_error
from facevae.core.files import atomic_file
from facevae.data.demo_face import DEFAULT_SIZE, render_frame
from facevae.data.demo_factors import factors_at
from facevae.data.h264 import H264Writer, frame_rate

log = logging.getLogger(__name__)

DEFAULT_SECONDS = 180.0
SMILING_SECONDS = 20.0
# superfast rather than veryfast: veryfast costs ~15 ms of CPU per 720p frame against ~8.5, which would push
# three minutes past a minute on two cores. The price is a larger file (~42 MB against ~27 MB at crf 20).
PRESET = "superfast"
CRF = 20
VFR_TIME_BASE = Fraction(1, 90000)


# -- writing ---------------------------------------------------------------------------------------------------


def _timeline(seconds: float, fps: float, seed: int, vfr: bool) -> tuple[np.ndarray, Fraction]:
    """Each frame's pts and the time base they count in.

    With vfr, each frame lasts between 0.5 and 1.5 nominal frames, drawn from its own stream of the seed.
    """
    if not vfr:
        rate = frame_rate(fps)
        return np.arange(max(1, round(seconds * rate))), 1 / rate
    rng = np.random.default_rng([seed, 0x7F])
    durations = rng.uniform(0.5, 1.5, int(seconds * fps * 2) + 2) / fps
    starts = np.concatenate([[0.0], np.cumsum(durations)])
    starts = starts[starts < seconds]
    return np.round(starts / float(VFR_TIME_BASE)).astype(np.int64), VFR_TIME_BASE


def _rendered(factors: pd.DataFrame, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """I420 frames in order, drawn in a worker thread so drawing overlaps encoding (OpenCV releases the GIL)."""
    ahead: queue.Queue = queue.Queue(maxsize=8)
    stop = threading.Event()

    def hand_over(item: np.ndarray | Exception) -> None:
        while not stop.is_set():  # a consumer that has given up takes nothing more
            try:
                ahead.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def work() -> None:
        try:
            for row in factors.itertuples(index=False):
                if stop.is_set():
                    return
                rgb = render_frame(row._asdict(), size)
                hand_over(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420))  # BT.601, limited range, as swscale reads it
        except Exception as err:  # raised again by the consumer
            hand_over(err)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        for _ in range(len(factors)):
            item = ahead.get()
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _encode(writer: H264Writer, factors: pd.DataFrame, pts: np.ndarray, size: tuple[int, int], progress: bool) -> None:
    frames = _rendered(factors, size)
    bar = tqdm(zip(pts, frames, strict=True), total=len(pts), disable=None if progress else True, unit="frame")
    for frame_pts, yuv in bar:  # the bar on a terminal only (disable=None): stderr keeps to errors elsewhere
        writer.write(yuv, int(frame_pts))


def _check(seconds: float, fps: float, seed: int, size: tuple[int, int]) -> None:
    if not (math.isfinite(seconds) and seconds > 0):
        raise FaceVAEError(f"seconds {seconds}: must be a positive number")
    if not (math.isfinite(fps) and 1 <= fps <= 240):
        raise FaceVAEError(f"fps {fps}: must be between 1 and 240")
    width, height = size
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise FaceVAEError(f"size {width}x{height}: width and height must be even and at least 64 (yuv420p)")
    if seed < 0:
        raise FaceVAEError(f"seed {seed}: must be 0 or more")


def write_demo_video(
    path: str | Path,
    seconds: float | None = None,
    fps: float = 30.0,
    seed: int = 0,
    smiling: bool = False,
    vfr: bool = False,
    size: tuple[int, int] = DEFAULT_SIZE,
    *,
    progress: bool = False,
) -> Path:
    """Write the demo video to path and its factors to `<stem>.factors.csv` beside it; return the video's path.

    seconds None means 180, or 20 for a smiling clip. Both files appear under their final names only when
    complete: each is written to a temporary name in the same folder and then renamed.
    """
    path = Path(path)
    if seconds is None:
        seconds = SMILING_SECONDS if smiling else DEFAULT_SECONDS
    size = (int(size[0]), int(size[1]))
    _check(seconds, fps, seed, size)
    pts, time_base = _timeline(seconds, fps, seed, vfr)
    factors = factors_at(pts * float(time_base), seed, smiling)
    csv_path = path.with_name(f"{path.stem}.factors.csv")
    log.info("writing %d frames (%.1f s, %s) to %s", len(pts), seconds, "vfr" if vfr else f"{fps:g} fps", path)
    with H264Writer(path, fps, size, time_base, PRESET, CRF) as writer:
        _encode(writer, factors, pts, size, progress)
        # The table takes its name first and the video last, when both are complete.
        with atomic_file(csv_path) as tmp_csv:
            factors.to_csv(tmp_csv, index=False)
    return path


@exit_on_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m facevae.data.synthetic",
        description="Write the demo video (one real face, varying expression and pose) and its factor table.",
    )
    parser.add_argument("--out", type=Path, default=Path("data/demo/clip.mp4"), help="video path (.mp4)")
    parser.add_argument("--seconds", type=float, default=None, help="duration; default 180, or 20 with --smiling")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate, e.g. 30 or 29.97 (mean rate with --vfr)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smiling", action="store_true", help="a short clip in which the person smiles throughout")
    parser.add_argument("--vfr", action="store_true", help="variable frame rate: each frame 0.5 to 1.5 frames long")
    parser.add_argument("--width", type=int, default=DEFAULT_SIZE[0])
    parser.add_argument("--height", type=int, default=DEFAULT_SIZE[1])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)  # stderr: errors alone
    path = write_demo_video(
        args.out, args.seconds, args.fps, args.seed, args.smiling, args.vfr, (args.width, args.height), progress=True
    )
    print(path)


if __name__ == "__main__":
    main()
