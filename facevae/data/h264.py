"""Writing H.264 video with PyAV's bundled libx264: the one writer the demo video and the live view's output share.

Frames go in as I420 arrays (`cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)`), which are BT.601 limited range; the
stream is tagged so, and players convert them back to the same colours. Each frame carries its own presentation
time, so variable frame rates (a phone's video, a camera's uneven pace) play back as they were. The file is written
under a hidden temporary name in the target's folder and renamed into place only when complete: a reader never
sees half a video, and a failed write leaves whatever was there before.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

SUFFIXES = (".mp4", ".mkv", ".mov")  # containers that hold H.264 and that PyAV picks from the suffix


def frame_rate(fps: float) -> Fraction:
    """fps as an exact fraction: 29.97 and friends become the NTSC 30000/1001 family."""
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
    if abs(float(ntsc) - fps) < 5e-3:
        return ntsc
    return Fraction(fps).limit_denominator(1001)


class H264Writer:
    """An H.264 video at `path`, written frame by frame; the file takes its name on `close()`.

    As a context manager it closes on success and aborts (removes the temporary) on an exception.
    """

    def __init__(
        self,
        path: Path,
        fps: float,
        size: tuple[int, int],
        time_base: Fraction,
        preset: str = "superfast",
        crf: int = 23,
    ) -> None:
        self.path = Path(path)
        # The temporary keeps the suffix: PyAV picks the container format from it.
        self.tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.partial{self.path.suffix}")
        self.time_base = time_base
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.tmp), mode="w")
        try:
            self.stream = self._add_stream(fps, size, preset, crf)
        except BaseException:
            self.abort()
            raise

    def _add_stream(self, fps: float, size: tuple[int, int], preset: str, crf: int) -> av.VideoStream:
        stream = self.container.add_stream("libx264", rate=frame_rate(fps))
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = self.time_base
        stream.codec_context.colorspace = av.video.reformatter.Colorspace.ITU601  # what cv2's I420 conversion makes
        stream.codec_context.color_range = av.video.reformatter.ColorRange.MPEG
        stream.options = {"preset": preset, "crf": str(crf)}
        return stream

    def write(self, i420: np.ndarray, pts: int) -> None:
        """One frame (I420, 3/2 height x width) shown from `pts` (in `time_base` units, increasing)."""
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts, frame.time_base = int(pts), self.time_base
        self.container.mux(self.stream.encode(frame))

    def close(self) -> Path:
        """Flush the encoder, finish the container, and move the file into place."""
        try:
            self.container.mux(self.stream.encode())
            self.container.close()
            with open(self.tmp, "rb") as f:  # on the disk before it takes the name: never half a video under it
                os.fsync(f.fileno())
            os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        """Stop without a file: the temporary is removed and `path` keeps whatever it held."""
        try:
            self.container.close()
        except (av.FFmpegError, OSError):
            pass  # an encoder that already failed may fail again on close; the file is discarded anyway
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
