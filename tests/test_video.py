"""Reading a video: frames kept at 8 fps by timestamp, the same whether unneeded frames are decoded or skipped."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from facevae.data.synthetic import write_demo_video
from facevae.data.video import _is_droppable, _nal_length_size, iter_video_frames

SIZE = (640, 360)  # small frames keep the clips quick to write; x264 still makes B-frames, some unreferenced
RATES = {"30": 30.0, "29.97": 30000 / 1001, "25": 25.0, "60": 60.0, "vfr": 30.0}


def reference_frames(path: Path, fps: float) -> list[tuple[int, float, np.ndarray]]:
    """Decode every frame in order and keep the first of each 1/fps slot: what skipping must reproduce."""
    kept, slot, t0 = [], -1, None
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            t = float(frame.pts * frame.time_base)
            t0 = t if t0 is None else t0
            s = int(np.floor((t - t0) * fps + 1e-6))
            if s > slot:
                slot = s
                luma = frame.planes[0]
                gray = np.frombuffer(luma, np.uint8).reshape(luma.height, luma.line_size)[:, : frame.width]
                kept.append((index, t - t0, gray.copy()))
    return kept


def read(path: Path, **kwargs) -> tuple[list[tuple[int, float, np.ndarray]], dict[str, int]]:
    counts = {"decoded": 0}
    frames = [(f.index, f.time_s, f.gray.copy()) for f in iter_video_frames(path, 8.0, counts, **kwargs)]
    return frames, counts


def assert_same_frames(got: list, expected: list) -> None:
    assert [(i, t) for i, t, _ in got] == [(i, t) for i, t, _ in expected]
    for (index, _, a), (_, _, b) in zip(got, expected, strict=True):
        assert np.array_equal(a, b), f"frame {index} differs"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rates")
    return {
        name: write_demo_video(folder / f"{name}.mp4", seconds=3.0, fps=fps, seed=5, vfr=name == "vfr", size=SIZE)
        for name, fps in RATES.items()
    }


@pytest.mark.parametrize("rate", list(RATES))
def test_skipping_keeps_the_same_frames_as_decoding_every_one(clips, rate):
    got, _ = read(clips[rate])
    assert_same_frames(got, reference_frames(clips[rate], 8.0))
    assert abs(len(got) - 3 * 8) <= 1


def test_unreferenced_frames_are_skipped_and_counted(clips):
    got, counts = read(clips["30"])
    everything, full = read(clips["30"], skip_unneeded=False)
    assert_same_frames(got, everything)
    assert counts["skipped"] > 0 and full["skipped"] == 0
    assert counts["decoded"] + counts["skipped"] == full["decoded"] == 90


def test_rgb_has_the_pixels_of_a_plain_conversion(clips):
    with av.open(str(clips["30"])) as container:
        expected = {i: f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(video=0))}
    for frame in iter_video_frames(clips["30"], 8.0, {}):
        assert np.array_equal(frame.rgb(), expected[frame.index])


def test_an_mpeg_ts_with_start_codes_and_a_late_start(tmp_path):
    # MPEG-TS carries Annex-B H.264 (start codes, no avcC) and does not start its clock at 0.
    clip = write_demo_video(tmp_path / "clip.ts", seconds=3.0, seed=6, size=SIZE)
    got, counts = read(clip)
    assert counts["skipped"] > 0
    assert_same_frames(got, reference_frames(clip, 8.0))


def write_moving_bar(path: Path, codec: str, options: dict[str, str]) -> Path:
    """Two seconds of a bar moving across a 320x240 frame at 30 fps."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30, options=options)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(60):
            rgb = np.full((240, 320, 3), 40, np.uint8)
            rgb[:, (4 * i) % 320 :][:, :40] = 200
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_a_video_without_b_frames_is_read_in_full(tmp_path):
    # "bf" is FFmpeg's name for x264's bframes; an option named "bframes" would be silently ignored.
    clip = write_moving_bar(tmp_path / "no-b.mp4", "libx264", {"bf": "0", "preset": "superfast"})
    with av.open(str(clip)) as container:
        assert all(p.pts == p.dts for p in container.demux(video=0) if p.size)  # no reordering: no B-frames
    got, counts = read(clip)
    assert_same_frames(got, reference_frames(clip, 8.0))
    assert len(got) == 16 and counts["decoded"] == 60 and counts["skipped"] == 0


def test_hevc_is_never_skipped(tmp_path):
    clip = write_moving_bar(tmp_path / "hevc.mp4", "libx265", {"preset": "ultrafast", "x265-params": "log-level=0"})
    got, counts = read(clip)
    assert_same_frames(got, reference_frames(clip, 8.0))
    assert counts["decoded"] == 60 and counts["skipped"] == 0


def _avcc(*nal_units: bytes) -> av.Packet:
    return av.Packet(b"".join(len(n).to_bytes(4, "big") + n for n in nal_units))


@pytest.mark.parametrize(
    "packet, droppable",
    [
        (_avcc(b"\x01\x9a"), True),  # non-IDR slice, nal_ref_idc 0
        (_avcc(b"\x06\x05", b"\x01\x9a", b"\x01\x9b"), True),  # SEI, then two unreferenced slices
        (_avcc(b"\x41\x9a"), False),  # nal_ref_idc 2: other pictures may refer to it
        (_avcc(b"\x01\x9a", b"\x41\x9b"), False),  # one referenced slice is enough
        (_avcc(b"\x67\x64", b"\x01\x9a"), False),  # an in-band SPS applies to later pictures
        (_avcc(b"\x06\x05"), False),  # no picture at all
        (av.Packet(b"\x00\x00\x00\x09\x01\x9a"), False),  # lengths that overrun the packet
    ],
)
def test_only_packets_of_unreferenced_slices_are_droppable(packet, droppable):
    assert _is_droppable(packet, 4) is droppable


def test_start_codes_are_read_when_there_is_no_avcc():
    assert _nal_length_size(None) is None and _nal_length_size(b"\x00\x00\x00\x01\x67") is None
    assert _nal_length_size(bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0])) == 4
    assert _is_droppable(av.Packet(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x01\x01\x9a"), None)
    assert not _is_droppable(av.Packet(b"\x00\x00\x01\x65\x88"), None)
