"""Where the live view's frames come from: a webcam or a video file, both as one `LiveSource`.

A file is decoded by PyAV (exact presentation times, every frame) and converted to RGB in a thread ahead of the
main loop. A camera is read through OpenCV's `VideoCapture` as it delivers, timed by the wall clock and not read
ahead (a queue would only add lag). Either way the loop sees the same thing: `Frame`s in time order, then the end.
A camera that stops delivering ends the run as a file's last frame does, with a line in the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from facevae.core.errors import FaceVAEError
from facevae.data.extract import prefetch
from facevae.data.video import Frame, iter_video_frames, probe_video

log = logging.getLogger(__name__)

# iter_video_frames keeps the first frame of each 1/fps slot of time; slots of a microsecond keep every frame.
EVERY_FRAME = 1e6
# OpenCV reads an index of 100 or more as a backend (200 + i is V4L2's camera i) and -1 as "any": both would open
# a camera the user did not name, and -1 crashes inside some backends. Indices are 0 to 99.
MAX_CAMERA_INDEX = 99
DEFAULT_FPS = 30.0


class Capture(Protocol):
    """What the camera source uses of `cv2.VideoCapture`; a test passes a scripted stand-in."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's names

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


@dataclass
class LiveSource:
    name: str
    fps: float  # nominal rate: the written video's, and the rate the summary says whether the loop keeps up with
    frames: Iterator[Frame]
    camera: bool

    def close(self) -> None:
        """Stop reading now rather than when the generator is collected: the decoding thread ends, a camera is freed."""
        close = getattr(self.frames, "close", None)
        if close is not None:
            close()


def camera_index(source: int | str) -> int | None:
    """The camera an integer source names (a string of digits that names no file counts), else None for a file."""
    if isinstance(source, bool):
        raise FaceVAEError(f"source={source}: must be a camera index (0, 1, ...) or a video file")
    if isinstance(source, str) and source.strip().lstrip("-").isdigit() and not Path(source).exists():
        source = int(source)
    if not isinstance(source, int):
        return None
    if not 0 <= source <= MAX_CAMERA_INDEX:
        raise FaceVAEError(f"source={source}: a webcam index is 0 to {MAX_CAMERA_INDEX} (0 is the first camera)")
    return source


def open_source(source: int | str, capture: Callable[[int], Capture] | None = None) -> LiveSource:
    """A webcam for a camera index, else a video file; `capture` opens a camera (default: cv2.VideoCapture)."""
    index = camera_index(source)
    if index is not None:
        return open_camera(index, capture or _open_capture)
    path = Path(str(source)).expanduser()
    info = probe_video(path)  # a one-line FaceVAEError for a missing, empty or unreadable file
    # Decoding and the RGB conversion run in a thread ahead of the main loop (both release the GIL).
    frames = prefetch(_with_rgb(iter_video_frames(path, EVERY_FRAME, {}, skip_unneeded=False)), depth=8)
    return LiveSource(str(path), info.fps if info.fps > 0 else DEFAULT_FPS, frames, camera=False)


def _with_rgb(frames: Iterator[Frame]) -> Iterator[Frame]:
    for frame in frames:
        yield Frame(frame.index, frame.time_s, frame.gray, frame.rgb())


def _open_capture(index: int) -> Capture:
    # Every backend OpenCV tries would log its own failure: the one-line error of open_camera says it all.
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(level)


def open_camera(index: int, capture: Callable[[int], Capture]) -> LiveSource:
    device = capture(index)
    if not device.isOpened():
        device.release()
        raise FaceVAEError(f"source={index}: camera {index} cannot be opened (is a webcam connected, and free?)")
    fps = device.get(cv2.CAP_PROP_FPS)
    fps = fps if 1 <= fps <= 240 else DEFAULT_FPS  # many webcams report 0
    return LiveSource(f"camera {index}", fps, _camera_frames(device, index), camera=True)


def _camera_frames(device: Capture, index: int) -> Iterator[Frame]:
    """Frames as the camera delivers them, timed by the wall clock."""
    start = time.perf_counter()
    count = 0
    try:
        while True:
            ok, bgr = device.read()
            if not ok or bgr is None:
                if count == 0:
                    raise FaceVAEError(f"source={index}: camera {index} opened but gave no frame")
                log.warning("camera %d stopped giving frames after %d: finishing", index, count)
                return
            if bgr.ndim == 2:  # a monochrome camera
                bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
            gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            yield Frame(count, time.perf_counter() - start, gray, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            count += 1
    finally:
        device.release()
