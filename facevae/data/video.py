"""Reading sources of frames: a video (kept at a target rate by presentation timestamp) or a folder of images.

Both yield `Frame`s. A video is decoded with PyAV, which bundles FFmpeg, so no system ffmpeg is needed and every
frame comes with its exact presentation time; variable-frame-rate phone videos then keep the same 8 frames per
second of real time as constant-rate ones. Frames that are not kept are decoded (inter-frame codecs need them) but
never converted to RGB, which is where most of the per-frame cost would go.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from facevae.errors import FaceVAEError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class Frame:
    """One kept frame: `gray` for detection, `rgb()` for cropping (converted only when asked)."""

    index: int  # 0-based index of the frame in the source (decode order), or the image's sorted position
    time_s: float
    gray: np.ndarray  # H x W uint8, full resolution
    _source: object  # av.VideoFrame or an RGB ndarray
    file: str | None = None

    def rgb(self) -> np.ndarray:
        if isinstance(self._source, np.ndarray):
            return self._source
        return self._source.to_ndarray(format="rgb24")


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float  # nominal (average) rate from the container
    duration_s: float  # estimated from the container; NaN when it does not say
    codec: str


def is_image_folder(path: Path) -> bool:
    return path.is_dir()


def probe_video(path: Path) -> VideoInfo:
    """Open the file and read its first video stream's header; a clear error for anything that is not a video."""
    if not path.exists():
        raise FaceVAEError(f"{path}: no such file or folder")
    if path.is_file() and path.stat().st_size == 0:
        raise FaceVAEError(f"{path}: the file is empty")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FaceVAEError(f"{path}: the file has no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = float("nan")
            return VideoInfo(stream.width, stream.height, rate, duration, stream.codec_context.name)
    except FaceVAEError:
        raise
    except (av.FFmpegError, UnicodeDecodeError, OSError) as err:
        raise FaceVAEError(f"{path}: not a readable video ({_reason(err)})") from None


def _reason(err: Exception) -> str:
    text = str(err).split(":")[-1].strip() if str(err) else type(err).__name__
    return text or type(err).__name__


def iter_video_frames(path: Path, fps: float, counts: dict[str, int]) -> Iterator[Frame]:
    """Yield the frames kept at `fps`: the first frame whose timestamp falls in each 1/fps slot of time.

    `counts["decoded"]` is kept up to date (frames decoded, kept or not) so callers can report it even when the
    stream ends early. A stream that breaks off midway raises FaceVAEError saying where.
    """
    slot = -1
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise FaceVAEError(f"{path}: not a readable video ({_reason(err)})") from None
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads: decoding is the floor of extraction's cost
        t0 = None
        index = -1
        try:
            for frame in container.decode(stream):
                index += 1
                counts["decoded"] = index + 1
                if frame.pts is None:
                    continue
                t = float(frame.pts * frame.time_base)
                if t0 is None:
                    t0 = t  # containers may start at a non-zero pts; time is measured from the first frame
                t -= t0
                # A tiny epsilon keeps 29.97 fps timestamps like 0.12499 in their intended slot.
                s = int(np.floor(t * fps + 1e-6))
                if s <= slot:
                    continue
                slot = s
                yield Frame(index, t, _gray_plane(frame), frame)
        except av.FFmpegError as err:
            raise FaceVAEError(
                f"{path}: the video is corrupt or truncated after {index + 1} frames ({_reason(err)})"
            ) from None


def _gray_plane(frame: av.VideoFrame) -> np.ndarray:
    """The luma plane is the grayscale image for 8-bit YUV formats: take it without any colour conversion."""
    if frame.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12"):
        plane = frame.planes[0]
        buf = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        return buf[:, : frame.width]
    return frame.to_ndarray(format="gray")


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def iter_image_frames(folder: Path, fps: float, counts: dict[str, int]) -> Iterator[Frame]:
    """Each image of the folder in sorted order, as if they were consecutive frames at `fps` (for the split)."""
    for i, file in enumerate(list_images(folder)):
        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        counts["decoded"] = i + 1
        if bgr is None:
            log.warning("%s: not a readable image, skipped", file)
            counts["unreadable_images"] = counts.get("unreadable_images", 0) + 1
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        yield Frame(i, i / fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), rgb, file=file.name)
