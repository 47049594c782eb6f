"""Video (or image folder) -> kept frames -> tracked face -> tightened 64x64 crops -> the crop cache."""

from __future__ import annotations

import dataclasses
import logging
import math
import platform
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import av
import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from facevae.core import rules
from facevae.core.errors import FaceVAEError
from facevae.core.files import atomic_directory, build_lock, require_folder, writing
from facevae.core.version import VERSION
from facevae.data import cache
from facevae.data.align import ALIGN_METHODS, AlignParams, FaceAligner, Square, cut
from facevae.data.faces import Box, CropParams, DetectorParams, FaceTracker
from facevae.data.video import (
    Frame,
    VideoInfo,
    is_image_folder,
    iter_image_frames,
    iter_video_frames,
    list_images,
    probe_video,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_FPS = 60.0
# frames.csv's own columns; any other column is a factor from the sidecar.
FRAME_COLUMNS = ("frame", "time_s", "x", "y", "w", "h", "crop_angle", "file")
SIZE_RANGE = (16, 512)


@dataclass
class ExtractionParams:
    """Every parameter that changes the crops; all of them go into the cache key."""

    fps: float = 8.0
    size: int = 64
    crop: CropParams = field(default_factory=CropParams)
    detector: DetectorParams = field(default_factory=DetectorParams)
    align: AlignParams = field(default_factory=AlignParams)

    def __post_init__(self) -> None:
        values = {"fps": self.fps, "crop_scale": self.crop.scale, "crop_shift_y": self.crop.shift_y}
        values |= {"detect_width": self.detector.detect_width, "min_face": self.detector.min_face}
        values |= {"align": self.align.method, "align_smooth_s": self.align.smooth_s}
        rules.whole("data.size", self.size, *SIZE_RANGE, why=" pixels")
        self.check_settings(values)
        self.crop = dataclasses.replace(self.crop, size=self.size)

    @staticmethod
    def check_settings(values: dict, prefix: str = "data.extraction") -> None:
        """The extraction settings as the data config's extraction group names them (fps, crop_scale, ...); the
        crops' size is the data config's own `size`."""
        rules.number(f"{prefix}.fps", values["fps"], above=0, hi=MAX_FPS, why=" frames per second")
        rules.number(f"{prefix}.crop_scale", values["crop_scale"], 0.3, 2.0, why=" (a share of the face box)")
        rules.number(f"{prefix}.crop_shift_y", values["crop_shift_y"], -0.5, 0.5, why=" (a share of the face box)")
        # The cascade's frame: narrower than 32 pixels finds no face, wider than 4096 only costs time and memory.
        rules.whole(f"{prefix}.detect_width", values["detect_width"], 32, 4096, why=" pixels")
        rules.number(f"{prefix}.min_face", values["min_face"], above=0, below=1, why=" (a share of the frame height)")
        rules.choice(f"{prefix}.align", values["align"], ALIGN_METHODS)
        rules.number(f"{prefix}.align_smooth_s", values["align_smooth_s"], 0, 2.0, why=" seconds")

    def as_dict(self) -> dict:
        params = dataclasses.asdict(self)
        if self.align.method == "none":  # upright box crops keep the cache key they had before alignment existed
            del params["align"]
        return params


@dataclass
class ExtractionResult:
    path: Path
    reused: bool
    summary: dict


def sidecar_for(source: Path) -> Path | None:
    """Ground-truth factors travel as `<stem>.factors.csv` beside the video (the demo video writes one)."""
    candidate = source.with_name(source.stem + ".factors.csv") if source.is_file() else None
    if source.is_dir():
        candidate = source.parent / (source.name + ".factors.csv")
    return candidate if candidate is not None and candidate.is_file() else None


def prepare_cache(
    source: Path | str, cache_dir: Path | str, params: ExtractionParams, progress: bool = True
) -> ExtractionResult:
    """Return the cache for this source and these parameters, extracting it first when there is none."""
    source = Path(source).expanduser()
    images = check_source(source)
    sidecar = sidecar_for(source)
    key = cache_key_for(source, params, images)
    require_folder(Path(cache_dir), "data.cache_dir")
    final = cache.cache_path(Path(cache_dir), source, key)
    reused = _reusable(final)
    if reused is not None:
        return reused
    setting = "data.cache_dir"
    with build_lock(final, setting):
        reused = _reusable(final)  # built by another process while this one waited
        if reused is not None:
            return reused
        _discard_damaged(final)
        with atomic_directory(final, setting) as tmp:
            crops, frames, summary = extract_crops(source, params, progress=progress, images=images is not None)
            if sidecar is not None:
                frames = _join_factors(frames, sidecar)
            manifest = _manifest(source, key, params, summary, frames, sidecar)
            cache.write_cache(tmp, crops, frames, manifest)
    return ExtractionResult(final, False, summary)


def _reusable(final: Path) -> ExtractionResult | None:
    """The cache at `final` when it is whole; None when there is none or it is damaged (it is extracted again)."""
    if not final.exists():
        return None
    try:
        return ExtractionResult(final, True, cache.load_cache(final).manifest["counts"])
    except cache.DamagedCache as err:
        log.warning("%s: the crop cache is damaged (%s): extracting it again", final, err.reason)
        return None


def _discard_damaged(final: Path) -> None:
    """Remove a damaged cache's own files (the name holds its key: nobody else's folder) before it is rebuilt;
    anything else found in the folder is left, and the rebuild refused."""
    if not final.exists():
        return
    if not final.is_dir():
        raise FaceVAEError(f"{final}: a file stands where the crop cache goes; move it away")
    ours = [final / name for name in cache.CACHE_FILES if (final / name).is_file() or (final / name).is_symlink()]
    others = sorted(p.name for p in final.iterdir() if p not in ours)
    if others:
        raise FaceVAEError(
            f"{final}: a damaged crop cache holding files facevae did not write ({', '.join(others[:4])}); "
            "move them away and run again to extract it anew"
        )
    with writing(final, "data.cache_dir"):
        for path in ours:
            path.unlink()
        final.rmdir()


def cache_key_for(source: Path, params: ExtractionParams, images: list[Path] | None = None) -> str:
    """The key of the cache these crops would be in, read from the source's identity without extracting anything."""
    if images is None:
        images = check_source(source)
    return cache.cache_key(cache.source_identity(source, images), sidecar_for(source), params.as_dict())


def check_source(source: Path) -> list[Path] | None:
    """Fail early, before any directory is made, on a source that cannot be read."""
    if not source.exists():
        if source.is_symlink():  # exists() follows the link: a dangling target or a loop of links
            raise FaceVAEError(f"{source}: a symbolic link to nothing (its target is missing or loops)")
        raise FaceVAEError(f"{source}: no such file or folder")
    if not source.is_file() and not source.is_dir():  # opening a pipe would wait for a writer, forever
        raise FaceVAEError(f"{source}: not a regular file or folder (a pipe, socket or device)")
    if is_image_folder(source):
        images = list_images(source)
        if not images:
            raise FaceVAEError(f"{source}: the folder holds no images (.jpg, .png, ...)")
        return images
    probe_video(source)
    return None


def extract_crops(
    source: Path, params: ExtractionParams, progress: bool = True, images: bool = False
) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Run detection and cropping over the kept frames; returns crops, their frame table and a summary."""
    counts: dict[str, int] = {"decoded": 0, "skipped": 0}
    tracker = FaceTracker(params.detector)
    aligner = FaceAligner(params.align, params.crop, independent=images)
    # Decoding runs in a thread ahead of detection: both release the GIL, so on two cores they overlap.
    frames_iter = prefetch((iter_image_frames if images else iter_video_frames)(source, params.fps, counts))
    info = None if images else probe_video(source)  # read once: the bar's total and the truncation check use it
    total = None if info is None else _estimated_frames(info)
    crops, rows, kept, last_t, notes = [], [], 0, 0.0, _PhotoNotes()
    start = time.perf_counter()
    bar = tqdm(
        total=total,
        unit="frame",
        desc=f"extracting {source.name}",
        disable=None if progress else True,  # None: drawn on a terminal only, so stderr keeps to errors elsewhere
        dynamic_ncols=True,
        smoothing=0.1,
    )
    with bar:
        for frame in frames_iter:
            kept += 1
            last_t = frame.time_s
            bar.update(_frames_read(counts) - bar.n)
            if images:
                tracker = FaceTracker(params.detector, tracker.rejected)  # photos are independent: no track
            box = tracker.update(frame.gray)
            if images:
                notes.record(frame.file, tracker, box)
            for settled in aligner.push(frame, frame.time_s, frame.gray, box):
                _add_crop(crops, rows, *settled, params)
        for settled in aligner.flush():
            _add_crop(crops, rows, *settled, params)
        bar.update(_frames_read(counts) - bar.n)
    elapsed = time.perf_counter() - start
    summary = _summary(counts, kept, len(crops), tracker.rejected, elapsed, last_t, params.fps, images)
    if params.align.method != "none":
        summary["eyes_found"] = int(sum(row.pop("eyes_found") for row in rows))
    if images:
        summary.update(notes.summary(source))
    _check_complete(source, summary, info)
    if not crops:
        what = "images" if images else "kept frames"
        raise FaceVAEError(f"{source}: no face found in {kept} {what} ({_frames_read(counts)} read){_why(summary)}")
    return np.stack(crops), pd.DataFrame(rows), summary


def _why(summary: dict) -> str:
    """For a photo folder: the first rejected files and their reasons (unreadable, no face...)."""
    rejected = summary.get("rejected_files") or {}
    if not rejected:
        return ""
    shown = "; ".join(f"{name}: {reason}" for name, reason in sorted(rejected.items())[:3])
    return f": {shown}{'; ...' if len(rejected) > 3 else ''}"


def _add_crop(
    crops: list, rows: list, frame: Frame, square: Square, eyes_found: bool, params: ExtractionParams
) -> None:
    crops.append(cut(frame.rgb(), square, params.size))
    x, y, w, h = square.rect()
    row = {"frame": frame.index, "time_s": round(frame.time_s, 6), "x": x, "y": y, "w": w, "h": h}
    if params.align.method != "none":
        row["crop_angle"] = round(square.angle, 3)
        row["eyes_found"] = eyes_found  # counted into the summary, then dropped
    if frame.file is not None:
        row["file"] = frame.file
    rows.append(row)


@dataclass
class _PhotoNotes:
    """Per photo of a folder: why it gave no crop, or which of several faces it gave."""

    rejected: dict[str, str] = field(default_factory=dict)
    several_faces: dict[str, str] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def record(self, file: str, tracker: FaceTracker, box: Box | None) -> None:
        self.seen.add(file)
        if box is None:
            self.rejected[file] = tracker.last_rejection or "no face"
        elif tracker.last_candidates > 1:
            where = f"{box.w:.0f} px wide at x={box.x:.0f}, y={box.y:.0f}"
            self.several_faces[file] = f"{tracker.last_candidates} faces, took the largest ({where})"

    def summary(self, folder: Path) -> dict:
        unreadable = {f.name: "not a readable image" for f in list_images(folder) if f.name not in self.seen}
        return {"rejected_files": {**self.rejected, **unreadable}, "several_faces": self.several_faces}


def prefetch(items: Iterator[T], depth: int = 32) -> Iterator[T]:
    """Yield what `items` yields, produced by a background thread up to `depth` items ahead.

    An exception in the producer is raised here, in the consumer; a consumer that stops early stops the producer.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put((item, None))
            buffer.put((done, None))
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, which re-raises it
            buffer.put((done, err))

    worker = threading.Thread(target=produce, daemon=True, name="facevae-decode")
    worker.start()
    try:
        while True:
            item, err = buffer.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                buffer.get_nowait()
            except queue.Empty:
                worker.join(0.05)


def _frames_read(counts: dict[str, int]) -> int:
    """Every frame of the source passed over: decoded, or skipped as neither kept nor needed by another frame."""
    return counts["decoded"] + counts.get("skipped", 0)


def _estimated_frames(info: VideoInfo) -> int | None:
    if math.isnan(info.duration_s) or not info.fps:
        return None
    return int(round(info.duration_s * info.fps))


def _summary(
    counts: dict, kept: int, accepted: int, rejected: Counter, elapsed: float, last_t: float, fps: float, images: bool
) -> dict:
    duration = 0.0 if images else last_t + 1 / fps
    return {
        "frames": _frames_read(counts),
        "decoded": counts["decoded"],
        "skipped": counts.get("skipped", 0),
        "kept": kept,
        "accepted": accepted,
        "rejected": dict(sorted(rejected.items())),
        "elapsed_s": round(elapsed, 3),
        "duration_s": round(duration, 3),
        "x_realtime": round(duration / elapsed, 2) if elapsed > 0 and duration else None,
    }


def _check_complete(source: Path, summary: dict, info: VideoInfo | None) -> None:
    """A video (info is None for image folders) must yield frames up to about its container's stated duration."""
    if info is None:
        return
    if summary["frames"] == 0:
        raise FaceVAEError(f"{source}: the video holds no frames (empty or truncated)")
    stated = info.duration_s
    # A stream that ends well before its container's stated duration lost its tail.
    if not math.isnan(stated) and summary["duration_s"] < 0.9 * stated - 1.0:
        raise FaceVAEError(
            f"{source}: the video is truncated: frames end at {summary['duration_s']:.1f} s "
            f"of the stated {stated:.1f} s"
        )


def _join_factors(frames: pd.DataFrame, sidecar: Path) -> pd.DataFrame:
    try:
        factors = pd.read_csv(sidecar)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise FaceVAEError(f"{sidecar}: not a readable factor table ({err})") from None
    if "frame" not in factors.columns:
        raise FaceVAEError(f"{sidecar}: the factor table needs a `frame` column")
    factor_cols = [c for c in factors.columns if c != "frame" and c not in frames.columns]
    merged = frames.merge(factors[["frame", *factor_cols]], on="frame", how="left", validate="one_to_one")
    missing = merged[factor_cols].isna().any(axis=1)
    if missing.any():
        first = int(merged.loc[missing, "frame"].iloc[0])
        raise FaceVAEError(f"{sidecar}: no factor values for {int(missing.sum())} kept frames (first: {first})")
    return merged


def _manifest(
    source: Path, key: str, params: ExtractionParams, summary: dict, frames: pd.DataFrame, sidecar: Path | None
) -> dict:
    factor_names = [c for c in frames.columns if c not in FRAME_COLUMNS]
    return {
        "source": str(source.resolve()),
        "kind": "images" if source.is_dir() else "video",
        "key": key,
        "sidecar": str(sidecar.resolve()) if sidecar else None,
        "factor_names": factor_names,
        "params": params.as_dict(),
        "counts": summary,
        "versions": {
            "facevae": VERSION,
            "opencv": cv2.__version__,
            "av": av.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def format_summary(summary: dict) -> str:
    rejected = ", ".join(f"{k} {v}" for k, v in summary["rejected"].items()) or "none"
    speed = f", {summary['x_realtime']}x realtime" if summary.get("x_realtime") else ""
    eyes = ""
    if "eyes_found" in summary:
        found = f"found in {summary['eyes_found']} of {summary['accepted']}"
        if summary["eyes_found"] < summary["accepted"]:
            found += ", the rest placed by the face box"
        eyes = f", aligned to the eyes ({found})"
    text = (
        f"frames read {summary['frames']} ({summary['skipped']} not decoded: neither kept nor referenced), "
        f"kept {summary['kept']}, faces accepted {summary['accepted']}{eyes}, "
        f"rejected: {rejected}; {summary['elapsed_s']:.1f} s{speed}"
    )
    for file, reason in summary.get("rejected_files", {}).items():
        text += f"\n  rejected {file}: {reason}"
    for file, choice in summary.get("several_faces", {}).items():
        text += f"\n  {file}: {choice}"
    return text
