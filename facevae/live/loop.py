"""The live view's loop: frames in, one view per frame out, to a window or (headless) to a video.

Each frame of the source is tracked, cropped and encoded (`face`), drawn (`view`), then shown in the window
process (`window`) or queued for the encoding thread (`writer`). In a window a file plays at its own pace, as a
camera would deliver it; headless, every frame is processed as fast as the machine allows. The closing summary
splits the time per frame by stage, and a per-frame table of coordinates can be written beside the video.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import hydra
import numpy as np
import pandas as pd
import torch

from facevae.core.checkpoint import TrainedRun, load_run
from facevae.core.device import pick_device
from facevae.core.errors import FaceVAEError
from facevae.core.files import atomic_file
from facevae.data.extract import ExtractionParams
from facevae.data.video import Frame
from facevae.live.face import FaceCode, FaceEncoder, Stopwatch
from facevae.live.latent_map import load_latent_map
from facevae.live.settings import LiveSettings
from facevae.live.sources import LiveSource, open_source
from facevae.live.view import VIEW_SIZE, LiveView
from facevae.live.window import Window, WindowError
from facevae.live.writer import ViewWriter

log = logging.getLogger(__name__)

STAGES = ("read", "detect", "crop", "model", "project", "draw", "write", "show", "wait")
LATENCY_STAGES = ("detect", "crop", "model", "project", "draw")  # frame in hand -> its view ready
QUIT_KEYS = (ord("q"), 27)  # q or Esc


@dataclass
class LiveSummary:
    frames: int = 0
    faces: int = 0
    elapsed_s: float = 0.0
    source_fps: float = 30.0
    latency_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, float] = field(default_factory=dict)  # mean per frame
    encode_ms: float | None = None  # mean per frame, in the writer's thread
    output: Path | None = None
    coords_csv: Path | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def lines(self) -> list[str]:
        p50, p95 = np.percentile(self.latency_ms, [50, 95]) if self.latency_ms else (np.nan, np.nan)
        keeps_up = "keeps up with" if self.fps >= self.source_fps else "falls behind"
        stages = ", ".join(f"{k} {v:.1f}" for k, v in self.stage_ms.items())
        if self.encode_ms is not None:
            stages += f"; video encoding {self.encode_ms:.1f} in its own thread"
        lines = [
            f"frames {self.frames}, faces found {self.faces} ({100 * self.faces / max(1, self.frames):.0f}%), "
            f"mean {self.fps:.1f} fps ({keeps_up} the source's {self.source_fps:g} fps)",
            f"latency (face to view) p50 {p50:.1f} ms, p95 {p95:.1f} ms; ms per frame: {stages}",
        ]
        if self.coords_csv is not None:
            lines.append(f"coordinates: {self.coords_csv}")
        if self.output is not None:
            lines.append(str(self.output))
        return lines


def has_display() -> bool:
    """Only Linux needs a display server named in the environment; macOS and Windows can always open a window."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# How long the first view may take to appear before the frames start: Qt's start-up on a busy machine takes seconds.
WINDOW_START_S = 30.0


def live(settings: LiveSettings) -> LiveSummary:
    """Run the live view as `settings` say (see `settings.validate`); returns what the closing lines report."""
    if settings.output is None and not has_display():
        # OpenCV's Qt backend would abort without a display: say so while it can be acted on.
        raise FaceVAEError("no display to show the live view on (DISPLAY is not set): pass output=demo.mp4 to write it")
    source = open_source(settings.source)
    # The window process starts now, so that its start-up overlaps loading the model; it shows nothing until the
    # first view arrives.
    window = Window() if settings.output is None else None
    try:
        run = load_run(settings.ckpt_path, pick_device(settings.device))
        if not run.model.encodes:
            raise FaceVAEError(f"{run.path}: the live view needs a model with an encoder (a beta-VAE checkpoint)")
        return _with_threads(run, settings.threads, lambda: _run(settings, source, run, window))
    finally:
        source.close()
        if window is not None:
            window.close()


def _with_threads(run: TrainedRun, threads: int, work: Callable[[], LiveSummary]) -> LiveSummary:
    """torch's CPU threads as configured while `work` runs (on the CPU), then the caller's setting again."""
    before = torch.get_num_threads()
    try:
        if run.model.device.type == "cpu":
            torch.set_num_threads(threads)
        return work()
    finally:
        torch.set_num_threads(before)


def _run(settings: LiveSettings, source: LiveSource, run: TrainedRun, window: Window | None) -> LiveSummary:
    latent_map, _ = load_latent_map(run, settings.projection, settings.data)
    params = _extraction_params(run)
    encoder = FaceEncoder(run.model, latent_map, params.detector, params.crop, params.align)
    view = LiveView(latent_map, source.name if source.camera else Path(source.name).name)
    writer = ViewWriter(settings.output, source.fps, VIEW_SIZE) if settings.output is not None else None
    if window is not None and not window.wait_shown(
        np.zeros((VIEW_SIZE[1], VIEW_SIZE[0], 3), np.uint8), WINDOW_START_S
    ):
        log.warning("the window has not answered after %g s: starting anyway", WINDOW_START_S)
    try:
        summary, rows = _loop(source, encoder, view, Screen(window, settings) if window else writer, settings)
        if writer is not None:
            summary.output = writer.close()
            summary.encode_ms = float(np.mean(writer.encode_ms)) if writer.encode_ms else None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if settings.coords_csv is not None:
        summary.coords_csv = _write_coords(settings.coords_csv, rows)
    return summary


def _extraction_params(run: TrainedRun) -> ExtractionParams:
    """The detector, crop and alignment settings training used, from the datamodule the checkpoint's config builds."""
    try:
        return hydra.utils.instantiate(run.config["data"], progress=False).params
    except (TypeError, hydra.errors.InstantiationException) as err:
        raise FaceVAEError(f"{run.path}: its data config does not fit this version of facevae ({err})") from None


def _loop(
    source: LiveSource, encoder: FaceEncoder, view: LiveView, sink: Screen | ViewWriter, settings: LiveSettings
) -> tuple[LiveSummary, list[dict]]:
    summary = LiveSummary(source_fps=source.fps)
    trail: deque = deque(maxlen=settings.trail)
    recent: deque = deque(maxlen=30)  # end times of the latest frames, for the FPS shown
    totals: dict[str, float] = {}
    last: FaceCode | None = None
    rows: list[dict] = []
    start = time.perf_counter()
    clock = Stopwatch()
    try:
        for frame in itertools.islice(source.frames, settings.max_frames):
            clock.lap("read")
            code = encoder(frame, clock)
            if code is not None:
                trail.append(code.xy)
                last = code
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
            keys = isinstance(sink, Screen)
            image = view.draw(frame, code, last, trail, _status(frame, fps, rows, keys))
            clock.lap("draw")
            stop = _send(sink, image, frame, trail, clock)
            recent.append(time.perf_counter())
            rows.append(_row(frame, code, clock.ms))
            summary.frames += 1
            summary.faces += code is not None
            for stage, ms in clock.ms.items():
                totals[stage] = totals.get(stage, 0.0) + ms
            if stop:
                break
            clock = Stopwatch()
    except KeyboardInterrupt:
        log.info("interrupted after %d frames: finishing", summary.frames)
    summary.elapsed_s = time.perf_counter() - start
    summary.latency_ms = [r["latency_ms"] for r in rows]
    summary.stage_ms = {k: totals[k] / max(1, summary.frames) for k in STAGES if k in totals}
    return summary, rows


def _send(sink: Screen | ViewWriter, image: np.ndarray, frame: Frame, trail: deque, clock: Stopwatch) -> bool:
    """The view to the video or the screen; True when the user asked to stop."""
    if isinstance(sink, ViewWriter):
        sink.write(image, frame.time_s)
        clock.lap("write")
        return False
    stop = sink.show(image, frame, trail)
    clock.lap("show")
    sink.pace(frame)
    clock.lap("wait")
    return stop


class Screen:
    """The window and what its keys do: q (or Esc, or the close button) quits, s saves a PNG, r clears the trail."""

    def __init__(self, window: Window, settings: LiveSettings) -> None:
        self.window = window
        self.snapshot_dir = settings.snapshot_dir
        self.camera = settings.camera
        self._origin: float | None = None  # the clock time at which the file's time 0 is shown

    def pace(self, frame: Frame) -> None:
        """A file plays at its own pace, as a camera would deliver it; a camera's frames are shown as they come."""
        if self.camera:
            return
        if self._origin is None:
            self._origin = time.perf_counter() - frame.time_s
        time.sleep(max(0.0, self._origin + frame.time_s - time.perf_counter()))

    def show(self, image: np.ndarray, frame: Frame, trail: deque) -> bool:
        """Show the view and act on the keys pressed since the last; True when the user asked to quit."""
        self.window.show(image)
        try:
            keys = self.window.keys()
        except WindowError as err:
            raise FaceVAEError(
                f"the live view's window could not be shown ({err}); pass output=demo.mp4 to write it to a video"
            ) from None
        for key in keys:
            if key == ord("s"):
                self._snapshot(image, frame.index)
            elif key == ord("r"):
                trail.clear()
        if self.window.closed:
            log.info("the window was closed: finishing")
        return self.window.closed or any(key in QUIT_KEYS for key in keys)

    def _snapshot(self, image: np.ndarray, index: int) -> None:
        try:
            print(save_snapshot(image, self.snapshot_dir, index), flush=True)
        except (OSError, FaceVAEError) as err:  # a full disk costs the snapshot, not the session
            log.warning("snapshot not saved: %s", err)


def save_snapshot(image: np.ndarray, folder: Path, index: int) -> Path:
    """The view as `live-<date>-<time>-<frame>.png` in folder, under a name no other file has."""
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise FaceVAEError(f"{folder}: the snapshot could not be encoded")
    stem = f"live-{time.strftime('%Y%m%d-%H%M%S')}-{index:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    path = next(p for n in itertools.count(1) if not (p := folder / f"{stem}{'' if n == 1 else f'-{n}'}.png").exists())
    with atomic_file(path) as tmp:
        tmp.write_bytes(png.tobytes())
    return path


def _status(frame: Frame, fps: float, rows: list[dict], keys: bool) -> list[str]:
    """The lines under the crops: speed of the latest frames, which frame this is; the keys in a window."""
    latency = np.mean([r["latency_ms"] for r in rows[-30:]]) if rows else 0.0
    minutes, seconds = divmod(frame.time_s, 60)
    lines = [f"{fps:5.1f} fps   latency {latency:5.1f} ms   frame {frame.index}   {int(minutes)}:{seconds:04.1f}"]
    if keys:
        lines.append("q quit   s snapshot   r clear trail")
    return lines


def _row(frame: Frame, code: FaceCode | None, ms: dict[str, float]) -> dict:
    """One line of the coordinates log: NaN where there was no face."""
    nan = float("nan")
    row = {
        "frame": frame.index,
        "time_s": round(frame.time_s, 6),
        "face": int(code is not None),
        "x": nan if code is None else float(code.xy[0]),
        "y": nan if code is None else float(code.xy[1]),
        "latency_ms": round(sum(ms.get(s, 0.0) for s in LATENCY_STAGES), 3),
    }
    for name, value in zip(("crop_x", "crop_y", "crop_side"), code.square[:3] if code else (nan,) * 3, strict=True):
        row[name] = value
    if code is not None:
        row.update({f"mu_{j:02d}": float(v) for j, v in enumerate(code.mu)})
    return row


def _write_coords(path: Path, rows: list[dict]) -> Path:
    try:
        with atomic_file(path) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
    except OSError as err:
        raise FaceVAEError(f"coords_csv={path}: cannot be written ({err.strerror or err})") from None
    return path
