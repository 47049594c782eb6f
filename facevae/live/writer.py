"""The headless live view: each view encoded to H.264 in a thread behind the main loop.

The encoder (libx264 through `facevae.data.h264`, the writer the demo video uses too) releases the GIL, so
encoding overlaps tracking and drawing on a second core. The queue between them is short: a slow encoder slows
the loop rather than filling memory. The file takes its name only when complete.
"""

from __future__ import annotations

import queue
import threading
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from facevae.core.errors import FaceVAEError
from facevae.data.h264 import H264Writer

PRESET = "superfast"  # the encoder runs beside the main loop on the same cores: the cheaper preset keeps up
CRF = 23
TIME_BASE = Fraction(1, 90000)  # each frame keeps its own time, so a camera's uneven pace plays back as it was


class ViewWriter:
    """BGR views in, an H.264 video out; `close()` finishes it and moves it into place, `abort()` discards it."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = path
        try:
            self._video = H264Writer(path, fps, size, TIME_BASE, PRESET, CRF)
        except (OSError, ValueError) as err:  # PyAV's errors are OSErrors: a folder it cannot write in, a full disk
            raise FaceVAEError(f"output={path}: cannot be written ({err})") from None
        self.frames = 0
        self.encode_ms: list[float] = []
        self._pts = -1
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, daemon=True, name="facevae-live-encode")
        self._thread.start()

    def write(self, bgr: np.ndarray, time_s: float) -> None:
        self._raise()
        pts = max(self._pts + 1, int(round(time_s / TIME_BASE)))  # strictly increasing, as the muxer requires
        self._pts = pts
        self._queue.put((bgr, pts))
        self.frames += 1

    def close(self) -> Path:
        """Encode what is queued, finish the file and move it into place."""
        self._stop()
        self._raise()
        try:
            return self._video.close()
        except OSError as err:
            raise FaceVAEError(f"output={self.path}: writing the video failed ({err})") from None

    def abort(self) -> None:
        self._stop()
        self._video.abort()

    def _stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain: the main thread raises the error on its next write
            try:
                start = time.perf_counter()
                bgr, pts = item
                self._video.write(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), pts)
                self.encode_ms.append(1e3 * (time.perf_counter() - start))
            except BaseException as err:  # noqa: BLE001 - handed to the main thread
                self._error = err

    def _raise(self) -> None:
        if self._error is not None:
            raise FaceVAEError(f"output={self.path}: writing the video failed ({self._error})") from None
