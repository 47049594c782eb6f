"""Reading sources of frames: a video (kept at a target rate by presentation timestamp) or a folder of images.

Both yield `Frame`s. A video is decoded with PyAV, which bundles FFmpeg, so no system ffmpeg is needed and every
frame comes with its exact presentation time; variable-frame-rate phone videos then keep the same 8 frames per
second of real time as constant-rate ones. Frames that are not kept are never converted to RGB, which is where
most of the per-frame cost would go, and those that no other frame refers to (H.264 non-reference pictures) are not
even decoded; the rest are, since inter-frame codecs predict the kept frames from them.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from facevae.core.errors import FaceVAEError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
SKIP_UNNEEDED = True  # iter_video_frames' default; `python -m facevae.bench` turns it off to time decoding everything
LOOKAHEAD = 32  # packets seen ahead of the one to decode or skip: more than any H.264 reordering (16 frames at most)


@dataclass
class Frame:
    """One kept frame: `gray` for detection, `rgb()` for cropping (converted only when asked).

    A video's frames share one converter: convert them from one thread at a time.
    """

    index: int  # 0-based index among all the video's frames in presentation order, or the image's sorted place
    time_s: float
    gray: np.ndarray  # H x W uint8, full resolution
    _source: object  # av.VideoFrame or an RGB ndarray
    file: str | None = None
    _reformatter: VideoReformatter | None = None

    def rgb(self) -> np.ndarray:
        if isinstance(self._source, np.ndarray):
            return self._source
        # The same pixels as to_ndarray(format="rgb24"), for less CPU: that sets up a new swscale context and its
        # thread pool for every frame, and the threads would compete with decoding for the cores anyway.
        reformatter = self._reformatter or VideoReformatter()
        return reformatter.reformat(self._source, format="rgb24", threads=1).to_ndarray()


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


def iter_video_frames(
    path: Path, fps: float, counts: dict[str, int], skip_unneeded: bool | None = None
) -> Iterator[Frame]:
    """Yield the frames kept at `fps`: the first frame whose timestamp falls in each 1/fps slot of time.

    `counts["decoded"]` (frames decoded, kept or not) and `counts["skipped"]` (frames never decoded) are kept up to
    date so callers can report them even when the stream ends early. A stream that breaks off midway raises
    FaceVAEError saying where. `skip_unneeded` (None: SKIP_UNNEEDED) leaves out of decoding the H.264 pictures that
    are neither kept nor referenced; the frames yielded are the same either way.
    """
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise FaceVAEError(f"{path}: not a readable video ({_reason(err)})") from None
    counts["decoded"] = counts["skipped"] = 0
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads, as many as _decoder_threads() says
        stream.codec_context.thread_count = _decoder_threads()
        reformatter = VideoReformatter()
        skip = SKIP_UNNEEDED if skip_unneeded is None else skip_unneeded
        # Only H.264 says per packet that no other picture uses it. HEVC's _N picture types do not: a picture of a
        # higher temporal sub-layer may still reference one, so telling needs the sub-layer structure; other
        # codecs (and packed-frame containers, where packets are not frames) are decoded in full.
        if skip and stream.codec_context.name == "h264":
            frames = _decode_kept_and_referenced(container, stream, fps, counts)
        else:
            frames = _decode_all(container, stream, fps, counts)
        try:
            for frame in frames:
                frame._reformatter = reformatter  # one converter for all of the video's frames: see Frame.rgb
                yield frame
        except av.FFmpegError as err:
            read = counts["decoded"] + counts["skipped"]
            raise FaceVAEError(
                f"{path}: the video is corrupt or truncated after {read} frames ({_reason(err)})"
            ) from None


def _decoder_threads() -> int:
    """Leave a core to detection, which extraction runs beside decoding in a thread of its own.

    FFmpeg's own choice (cores + 1 threads) oversubscribes a 2-core machine, and each frame thread costs CPU to keep
    in step; on two cores, one decoding thread beside detection extracts fastest (see `python -m facevae.bench`).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - 1)


def _decode_all(
    container: av.container.InputContainer, stream: av.VideoStream, fps: float, counts: dict[str, int]
) -> Iterator[Frame]:
    """Decode every frame; the decoder hands them over in presentation order, so the index is a count."""
    slot = -1
    t0 = None
    for index, frame in enumerate(container.decode(stream)):
        counts["decoded"] = index + 1
        if frame.pts is None:
            continue
        t = float(frame.pts * frame.time_base)
        if t0 is None:
            t0 = t  # containers may start at a non-zero pts; time is measured from the first frame
        t -= t0
        s = _slot(t, fps)
        if s <= slot:
            continue
        slot = s
        yield Frame(index, t, _gray_plane(frame), frame)


def _slot(t: float, fps: float) -> int:
    # A tiny epsilon keeps 29.97 fps timestamps like 0.12499 in their intended slot.
    return int(np.floor(t * fps + 1e-6))


# -- skipping what is neither kept nor referenced ----------------------------------------------------------------
#
# At 8 of 30 frames per second most decoded frames are thrown away, and x264 (like phone encoders) makes about half
# of all frames non-reference B-frames. Such a frame, when it is not the kept one of its slot, need not be decoded
# at all: no other picture is predicted from it, so every other frame decodes to the same pixels without it.
# Deciding that before decoding needs the presentation timestamps of the packets around it: with B-frames a packet
# later in decode order can show earlier and so be its slot's first frame. Reordering is bounded by the decoder's
# picture buffer (at most 16 frames in H.264), so a window of LOOKAHEAD packets sees every packet that can precede
# the one leaving it. Two more assumptions, true of MP4/MOV (what phones write) and of MPEG-TS: one packet holds one
# frame, and the decoder gives back a frame for every packet it is sent; in a broken stream where it does not, a
# slot whose kept frame is lost stays empty instead of falling back to the slot's next frame.


def _decode_kept_and_referenced(
    container: av.container.InputContainer, stream: av.VideoStream, fps: float, counts: dict[str, int]
) -> Iterator[Frame]:
    """Send the decoder only the packets it needs: the kept frames and every picture that may be referenced."""
    length_size = _nal_length_size(stream.codec_context.extradata)
    wanted: dict[int, tuple[int, float]] = {}  # pts of a kept frame -> (index, time_s)
    packets = (p for p in container.demux(stream) if p.size)  # demux ends with an empty packet: we flush below
    for packet, kept in _plan_packets(packets, fps, stream.time_base):
        if kept is None and _is_droppable(packet, length_size):
            counts["skipped"] += 1
            continue
        if kept is not None:
            wanted[packet.pts] = kept
        yield from _kept_frames(stream.decode(packet), wanted, counts)
    # Frame threads and B-frame reordering hold the last frames back until the decoder is flushed.
    yield from _kept_frames(stream.decode(None), wanted, counts)


def _kept_frames(
    frames: list[av.VideoFrame], wanted: dict[int, tuple[int, float]], counts: dict[str, int]
) -> Iterator[Frame]:
    for frame in frames:
        counts["decoded"] += 1
        kept = wanted.pop(frame.pts, None) if frame.pts is not None else None
        if kept is not None:
            yield Frame(kept[0], kept[1], _gray_plane(frame), frame)


def _plan_packets(
    packets: Iterator[av.Packet], fps: float, time_base: Fraction
) -> Iterator[tuple[av.Packet, tuple[int, float] | None]]:
    """Each packet in decode order, with (index, time_s) when it holds its slot's kept frame, else None."""
    window: deque[av.Packet] = deque()
    timeline = _Timeline(fps, time_base)
    for packet in packets:
        window.append(packet)
        if len(window) == LOOKAHEAD and not timeline.started:
            timeline.start(window)  # time counts from the first frame shown: the lowest pts of the first window
        elif timeline.started:
            timeline.add(packet)
        if len(window) > LOOKAHEAD:
            first = window.popleft()
            yield first, timeline.kept(first, window)
    if not timeline.started:  # a video shorter than the window
        timeline.start(window)
    while window:
        first = window.popleft()
        yield first, timeline.kept(first, window)


class _Timeline:
    """Presentation order of the packets seen so far: each slot's lowest pts and each pts's rank.

    A packet counts when it has a pts and the demuxer does not mark it discarded (frames before an MP4 edit list's
    start, which the decoder decodes but never outputs). Packets without a pts are decoded but never kept, as
    when decoding every frame.
    """

    def __init__(self, fps: float, time_base: Fraction) -> None:
        self.fps, self.time_base = fps, time_base
        self.started = False
        self.t0: float | None = None
        self.lowest: dict[int, float] = {}  # slot -> lowest pts seen in it; -inf once its kept frame is given out
        self.recent: list[int] = []  # sorted pts of counted packets still in reach of a rank query
        self.below = 0  # counted packets with a pts lower than every one in `recent`

    def start(self, window: deque[av.Packet]) -> None:
        self.started = True
        shown = [p.pts for p in window if _counts(p)]
        if shown:
            self.t0 = float(min(shown) * self.time_base)
        for packet in window:
            self.add(packet)

    def add(self, packet: av.Packet) -> None:
        if not _counts(packet):
            return
        if self.t0 is None:
            self.t0 = float(packet.pts * self.time_base)
        s = self._slot(packet.pts)
        self.lowest[s] = min(self.lowest.get(s, math.inf), packet.pts)
        bisect.insort(self.recent, packet.pts)

    def kept(self, packet: av.Packet, window: deque[av.Packet]) -> tuple[int, float] | None:
        """(index, time_s) when `packet`, leaving the window, is its slot's first frame shown, else None."""
        result = None
        if _counts(packet):
            s = self._slot(packet.pts)
            if self.lowest[s] == packet.pts:
                self.lowest[s] = -math.inf  # a duplicate pts keeps one frame, as decoding every frame does
                index = self.below + bisect.bisect_left(self.recent, packet.pts)
                result = index, self._time(packet.pts)
        # Ranks are asked only for packets still in the window or to come, which show no earlier than the window's
        # earliest: the pts below it need only be counted, not kept sorted.
        floor = min((p.pts for p in window if _counts(p)), default=None)
        if floor is not None:
            n = bisect.bisect_left(self.recent, floor)
            self.below += n
            del self.recent[:n]
        return result

    def _time(self, pts: int) -> float:
        return float(pts * self.time_base) - self.t0  # the same float arithmetic as _decode_all

    def _slot(self, pts: int) -> int:
        return _slot(self._time(pts), self.fps)


def _counts(packet: av.Packet) -> bool:
    return packet.pts is not None and not packet.is_discard


# -- H.264 bitstream: is a packet a non-reference picture? -------------------------------------------------------

H264_SLICE_TYPES = (1, 5)  # coded slice of a non-IDR and of an IDR picture
# NAL units that may share a packet with a droppable picture: SEI, access unit delimiter, filler. Anything else
# (parameter sets, data partitions, extensions) may matter to later pictures, so its packet is always decoded.
H264_HARMLESS_TYPES = (6, 9, 12)


def _nal_length_size(extradata: bytes | None) -> int | None:
    """Bytes of the length before each NAL unit for MP4's avcC packets; None for Annex-B start codes."""
    if extradata and len(extradata) >= 7 and extradata[0] == 1:  # avcC: configurationVersion 1
        return (extradata[4] & 0x03) + 1
    return None


def _is_droppable(packet: av.Packet, length_size: int | None) -> bool:
    """True when no other picture can be predicted from this packet's: every slice has nal_ref_idc 0 (H.264 7.4.1)."""
    headers = _nal_headers(bytes(packet), length_size) or []
    slices = [h for h in headers if h & 0x1F in H264_SLICE_TYPES]
    others = [h for h in headers if h & 0x1F not in H264_SLICE_TYPES]
    return (
        bool(slices)
        and all(h >> 5 & 0x03 == 0 for h in slices)
        and all(h & 0x1F in H264_HARMLESS_TYPES for h in others)
    )


def _nal_headers(data: bytes, length_size: int | None) -> list[int] | None:
    """The first byte of each NAL unit in the packet, or None when the lengths do not add up (then decode it)."""
    if length_size is None:
        return _annex_b_headers(data)
    headers, i = [], 0
    while i < len(data):
        size = int.from_bytes(data[i : i + length_size], "big")
        i += length_size
        if size == 0 or i + size > len(data):
            return None
        headers.append(data[i])
        i += size
    return headers


def _annex_b_headers(data: bytes) -> list[int] | None:
    # Emulation prevention keeps 00 00 01 out of NAL payloads, so every occurrence starts a NAL unit.
    headers, i = [], data.find(b"\x00\x00\x01")
    while 0 <= i < len(data) - 3:
        headers.append(data[i + 3])
        i = data.find(b"\x00\x00\x01", i + 3)
    return headers or None


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
