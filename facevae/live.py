"""`python -m facevae.live ckpt_path=PATH source=0|clip.mp4 [output=demo.mp4]`: the seed's live demo.

"A live demo of captured facial expressions mapping directly to a visualized point in the latent space." Every
frame of a webcam or a video goes through the face tracking and cropping that made the training crops (with the
checkpoint's own detection and crop settings), then the encoder. One 1280x720 view shows:

    +-----------------------------+------------------------------------+
    | the frame and its crop      | the training crops' mu on a plane, |
    | square                      | coloured by smile when known; the  |
    +--------------+--------------+ current point and a fading trail   |
    | the crop     | its recon-   +------------------------------------+
    |              | struction    | the current mu as bars, over the   |
    | FPS, latency, frame, time   | training mean +- 1 sd of each      |
    +-----------------------------+------------------------------------+

in a window (q quits, s saves a PNG, r clears the trail) or, headless, in a video (`output=`). The plane is a linear
projection of mu (PCA by default) fitted once per checkpoint on the training split's crops and cached beside it.

Speed: a file is decoded and converted to RGB in a thread ahead of the main loop, and the view is encoded in a
thread behind it, so the main thread only tracks, encodes and draws. The static parts of the view (panels, the
training points, the bars' bands) are drawn once. The closing summary splits the time per frame by stage.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import sys
import threading
import time
import zipfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from facevae.analysis.checkpoint import TrainedRun, datamodule_for, load_run
from facevae.analysis.encoding import encode_images
from facevae.config import CONF_DIR
from facevae.data.align import AlignParams, FaceAligner, cut
from facevae.data.cache import atomic_file, file_identity
from facevae.data.extract import ExtractionParams, prefetch
from facevae.data.faces import CropParams, DetectorParams, FaceTracker
from facevae.data.video import Frame, iter_video_frames, probe_video
from facevae.errors import FaceVAEError, exit_on_error
from facevae.images import to_uint8_hwc
from facevae.models.lit_beta_vae import to_float_images

log = logging.getLogger(__name__)

VIEW_SIZE = (1280, 720)  # fixed, so a written video has one size whatever the source's
WINDOW = "facevae live"

# -- the latent map: a plane through the training crops' mu ---------------------------------------------------------

PROJECTIONS = ("auto", "pca", "active", "smile")
MAP_FORMAT = 1  # part of the cache key: bump it when what the cached file holds changes


@dataclass
class LatentMap:
    """A linear map from latents to the view's plane, and the training crops on that plane."""

    method: str
    mean: np.ndarray  # (D,) subtracted before projecting
    axes: np.ndarray  # (2, D): the plane's x and y directions in latent space
    axis_names: tuple[str, str]
    train_xy: np.ndarray  # (N, 2) the training crops' mu on the plane
    smile: np.ndarray | None  # (N,) their smile factor, when the training data has one
    mu_mean: np.ndarray  # (D,) each latent's mean and sd over the training crops, drawn behind the bars
    mu_std: np.ndarray

    def project(self, mu: np.ndarray) -> np.ndarray:
        return (mu - self.mean) @ self.axes.T


def latent_map_path(ckpt_path: Path) -> Path:
    return ckpt_path.with_name(f"{ckpt_path.stem}.live-projection.npz")


def load_latent_map(run: TrainedRun, method: str, data_overrides: dict | None = None) -> tuple[LatentMap, bool]:
    """The checkpoint's latent map and whether it came from the cache beside the checkpoint.

    The cache is keyed on the checkpoint file's content and the method: a checkpoint written over (a resumed run's
    last.ckpt) or another projection refits it.
    """
    if method not in PROJECTIONS:
        raise FaceVAEError(f"projection={method}: must be one of {', '.join(PROJECTIONS)}")
    path = latent_map_path(run.path)
    key = f"{file_identity(run.path)}:{method}:{MAP_FORMAT}"
    cached = _read_map(path, key)
    if cached is not None:
        log.info("reusing the latent map cached at %s", path)
        return cached, True
    latent_map = fit_latent_map(run, method, data_overrides)
    _write_map(path, key, latent_map)
    return latent_map, False


def fit_latent_map(run: TrainedRun, method: str, data_overrides: dict | None = None) -> LatentMap:
    """Encode the training split's crops and fit the plane on their mu."""
    try:
        dm = datamodule_for(run, data_overrides)
    except FaceVAEError as err:
        raise FaceVAEError(
            f"{err} (the live view's latent map is fitted once on the training crops: point data.video= and "
            "data.cache_dir= at them)"
        ) from None
    log.info("fitting the latent map (%s) on %d training crops", method, len(dm.rows("train")))
    mu, _ = encode_images(run.model, dm.images("train"))
    smile = dm.factors("train")[:, dm.factor_names.index("smile")] if "smile" in dm.factor_names else None
    if method == "auto":
        # PCA's plane is mostly pose and light: where smiles are known, put them on x so a smile moves the point.
        method = "smile" if smile is not None and _has_both_groups(smile) else "pca"
    return latent_map_from(mu, method, smile)


def _has_both_groups(smile: np.ndarray) -> bool:
    from facevae.analysis.smile_analysis import smile_labels_from_factor

    labels = smile_labels_from_factor(smile)
    return min((labels == 1).sum(), (labels == 0).sum()) >= 2


def latent_map_from(mu: np.ndarray, method: str, smile: np.ndarray | None = None) -> LatentMap:
    """The plane through the training crops' mu (N x D) that `method` names.

    pca: their two principal axes. active: the two latents whose mu varies most (a beta-VAE's most used ones).
    smile: x along the direction from other faces to smiles (needs the smile factor), y the first principal axis
    of what is left; the point then moves sideways with a smile, whatever else varies more.
    """
    mu = np.asarray(mu, np.float64)
    dim = mu.shape[1]
    if method == "pca":
        axes, names = _principal_axes(mu, 2)
    elif method == "active":
        top = np.argsort(mu.var(axis=0))[::-1][:2]
        axes, names = np.eye(dim)[top], [f"z{i}" for i in top]
    elif method == "smile":
        normal = _smile_axis(mu, smile)
        rest = mu - np.outer(mu @ normal, normal)
        second, second_name = _principal_axes(rest, 1)
        axes, names = np.vstack([normal, second]), ["towards smiles", *second_name]
    else:
        raise FaceVAEError(f"projection={method}: must be one of {', '.join(PROJECTIONS)}")
    # One latent (or one crop) gives a line: the plane's y stays at zero.
    axes = np.vstack([axes, np.zeros((2 - len(axes), dim))])
    names = (names + ["-"])[:2]
    mean = mu.mean(axis=0)
    return LatentMap(
        method=method,
        mean=mean,
        axes=axes,
        axis_names=(names[0], names[1]),
        train_xy=(mu - mean) @ axes.T,
        smile=None if smile is None else np.asarray(smile, np.float64),
        mu_mean=mean,
        mu_std=mu.std(axis=0),
    )


def _principal_axes(mu: np.ndarray, n: int) -> tuple[np.ndarray, list[str]]:
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(n, *mu.shape), random_state=0).fit(mu)
    names = [f"PC{i + 1} ({100 * r:.0f}% of variance)" for i, r in enumerate(pca.explained_variance_ratio_)]
    return pca.components_, names


def _smile_axis(mu: np.ndarray, smile: np.ndarray | None) -> np.ndarray:
    """evaluate.py's smile direction: the normal of a logistic regression between smiles (> 0.5) and others (< 0.2)."""
    from facevae.analysis.smile_analysis import smile_labels_from_factor
    from facevae.analysis.smiles import smile_direction

    if smile is None:
        raise FaceVAEError("projection=smile: the training data has no smile factor (a <video>.factors.csv with one)")
    labels = smile_labels_from_factor(smile)
    if min((labels == 1).sum(), (labels == 0).sum()) < 2:
        raise FaceVAEError("projection=smile: the training crops need at least two smiles and two other faces")
    normal, _, _ = smile_direction(mu[labels >= 0], labels[labels >= 0])
    return normal


def _read_map(path: Path, key: str) -> LatentMap | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key"]) != key:
                log.info("%s was fitted for another checkpoint or projection: fitting it again", path)
                return None
            return LatentMap(
                method=str(f["method"]),
                mean=f["mean"],
                axes=f["axes"],
                axis_names=tuple(str(n) for n in f["axis_names"]),
                train_xy=f["train_xy"],
                smile=f["smile"] if "smile" in f.files else None,
                mu_mean=f["mu_mean"],
                mu_std=f["mu_std"],
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        log.warning("%s is unreadable (%s): fitting the latent map again", path, err)
        return None


def _write_map(path: Path, key: str, m: LatentMap) -> None:
    """Write to a temporary name and rename: a reader never sees half a file. A read-only folder only warns."""
    arrays = {
        "key": np.array(key),
        "method": np.array(m.method),
        "mean": m.mean,
        "axes": m.axes,
        "axis_names": np.array(m.axis_names),
        "train_xy": m.train_xy,
        "mu_mean": m.mu_mean,
        "mu_std": m.mu_std,
    }
    if m.smile is not None:
        arrays["smile"] = m.smile
    try:
        with atomic_file(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(f, **arrays)
        log.info("cached the latent map at %s", path)
    except OSError as err:
        log.warning("could not cache the latent map at %s (%s): it is fitted again next time", path, err)


# -- sources: a webcam or a video file ----------------------------------------------------------------------------

# iter_video_frames keeps the first frame of each 1/fps slot of time; slots of a microsecond keep every frame.
EVERY_FRAME = 1e6


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


def open_source(source: int | str) -> LiveSource:
    """A webcam for an integer (or a string of digits that names no file), else a video file."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit() and not Path(source).exists()):
        return _open_camera(int(source))
    path = Path(str(source)).expanduser()
    info = probe_video(path)  # a one-line FaceVAEError for a missing, empty or unreadable file
    # Decoding and the RGB conversion run in a thread ahead of the main loop (both release the GIL).
    frames = prefetch(_with_rgb(iter_video_frames(path, EVERY_FRAME, {}, skip_unneeded=False)), depth=8)
    return LiveSource(str(path), info.fps if info.fps > 0 else 30.0, frames, camera=False)


def _with_rgb(frames: Iterator[Frame]) -> Iterator[Frame]:
    for frame in frames:
        yield Frame(frame.index, frame.time_s, frame.gray, frame.rgb())


def _open_camera(index: int) -> LiveSource:
    # Every backend OpenCV tries would log its own failure: the one-line error below says it all.
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        capture = cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not capture.isOpened():
        raise FaceVAEError(f"source={index}: camera {index} cannot be opened (is a webcam connected, and free?)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    return LiveSource(f"camera {index}", fps if 1 <= fps <= 240 else 30.0, _camera_frames(capture, index), True)


def _camera_frames(capture: cv2.VideoCapture, index: int) -> Iterator[Frame]:
    """Frames as the camera delivers them, timed by the wall clock. Not read ahead: a queue would only add lag."""
    start = time.perf_counter()
    count = 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                if count == 0:
                    raise FaceVAEError(f"source={index}: camera {index} opened but gave no frame")
                log.warning("camera %d stopped giving frames after %d", index, count)
                return
            gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            yield Frame(count, time.perf_counter() - start, gray, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            count += 1
    finally:
        capture.release()


# -- one frame: face, crop, mu, reconstruction, point -------------------------------------------------------------


class Stopwatch:
    """Splits one frame's time into named stages (milliseconds)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = self.ms.get(stage, 0.0) + 1e3 * (now - self._last)
        self._last = now


@dataclass
class FaceCode:
    square: tuple[int, int, int, int]  # the crop's square in source pixels: x, y, side, side
    crop: np.ndarray  # RGB, what the encoder sees
    recon: np.ndarray  # RGB decoder mean at mu
    mu: np.ndarray  # (D,)
    xy: np.ndarray  # (2,) mu on the latent map


class FaceEncoder:
    """Frames in time order -> the tracked face's crop, its mu and reconstruction, and its point on the map.

    The tracker keeps the checkpoint's detector settings, counted in frames; at 30 fps rather than the 8 kept in
    training, the running average of the box follows faster but is as steady (its spread depends on the weight
    alone), and a lost face is searched for over the whole frame again after 8 frames instead of a second.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        latent_map: LatentMap,
        detector: DetectorParams,
        crop: CropParams,
        align: AlignParams | None = None,
    ) -> None:
        self.model = model
        self.latent_map = latent_map
        self.crop_params = crop
        self.tracker = FaceTracker(detector)
        # Aligned as training's crops were (the checkpoint's data.align), each frame at once from the ones before it.
        self.aligner = FaceAligner(align or AlignParams(), crop, causal=True)
        self.device = next(model.parameters()).device

    def __call__(self, frame: Frame, clock: Stopwatch) -> FaceCode | None:
        box = self.tracker.update(frame.gray)
        settled = list(self.aligner.push(None, frame.time_s, frame.gray, box))
        clock.lap("detect")
        if not settled:
            return None
        square = settled[0][1]
        crop = cut(frame.rgb(), square, self.crop_params.size)
        square = square.rect()
        clock.lap("crop")
        with torch.inference_mode():
            x = to_float_images(torch.from_numpy(crop[None]).to(self.device))
            mu, _ = self.model.encode(x)
            recon = to_uint8_hwc(self.model.decode(mu))[0]
        mu = mu[0].float().cpu().numpy()
        clock.lap("model")
        xy = self.latent_map.project(mu)
        clock.lap("project")
        return FaceCode(square, crop, recon, mu, xy)


# -- the view -----------------------------------------------------------------------------------------------------

# Panels as (x, y, width, height) in view pixels.
CAMERA = (0, 0, 640, 360)
INPUT = (60, 400, 240, 240)
RECON = (340, 400, 240, 240)
MAP = (700, 40, 550, 390)
BARS = (700, 500, 550, 170)
BAR_RANGE = 3.0  # mu drawn from -3 to +3 (the prior's 99.7%), or wider when the training crops' mu spread further
# Colours are BGR, as OpenCV draws.
BACKGROUND, PANEL = (24, 24, 24), (38, 38, 38)
TEXT, DIM, GRID = (235, 235, 235), (140, 140, 140), (70, 70, 70)
FOUND, MISSING = (90, 220, 90), (70, 70, 235)
TRAIL, POINT = (0, 200, 255), (255, 255, 255)
NEUTRAL, SMILE, FROWN = np.array((150, 150, 150)), np.array((0, 140, 255)), np.array((255, 130, 40))
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(image: np.ndarray, text: str, at: tuple[int, int], colour=TEXT, scale: float = 0.5) -> None:
    cv2.putText(image, text, at, FONT, scale, colour, 1, cv2.LINE_AA)


def _lerp(a, b, t: float) -> tuple[int, int, int]:
    return tuple(int(round((1 - t) * u + t * v)) for u, v in zip(a, b, strict=True))


def smile_colours(smile: np.ndarray) -> np.ndarray:
    """Grey at 0, orange towards +1 (a smile), blue towards -1 (a frown): one BGR row per value."""
    s = np.clip(np.asarray(smile, np.float64), -1, 1)[:, None]
    return np.where(s >= 0, NEUTRAL + s * (SMILE - NEUTRAL), NEUTRAL - s * (FROWN - NEUTRAL)).astype(np.uint8)


class LiveView:
    """Draws the view: a background with everything that never changes, and each frame's parts on a copy of it."""

    def __init__(self, latent_map: LatentMap, source_name: str) -> None:
        self.latent_map = latent_map
        self.source_name = source_name
        lo, hi = np.percentile(latent_map.train_xy, [0.5, 99.5], axis=0)
        pad = 0.08 * (hi - lo) + 1e-6  # a flat axis (one latent) still gets a width
        self.lo, self.hi = lo - pad, hi + pad
        reach = np.abs(latent_map.mu_mean) + 2 * latent_map.mu_std
        self.bar_range = float(max(BAR_RANGE, np.ceil(reach.max()))) if len(reach) else BAR_RANGE
        self.background = self._background()

    # -- once ---------------------------------------------------------------------------------------------------
    def _background(self) -> np.ndarray:
        image = np.full((VIEW_SIZE[1], VIEW_SIZE[0], 3), BACKGROUND, np.uint8)
        for x, y, w, h in (CAMERA, INPUT, RECON, MAP, BARS):
            cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), PANEL, -1)
        _text(image, "input crop", (INPUT[0], INPUT[1] - 10))
        _text(image, "reconstruction", (RECON[0], RECON[1] - 10))
        self._draw_map_background(image)
        self._draw_bars_background(image)
        return image

    def _draw_map_background(self, image: np.ndarray) -> None:
        m, (x, y, w, h) = self.latent_map, MAP
        _text(image, f"latent map ({m.method}): the training crops' mu, and this frame's", (x, y - 14))
        _text(image, f"x: {m.axis_names[0]}   y: {m.axis_names[1]}", (x, y + h + 18), DIM, 0.45)
        zero = self.to_pixels(np.zeros(2))
        cv2.line(image, (x, zero[1]), (x + w - 1, zero[1]), GRID, 1)
        cv2.line(image, (zero[0], y), (zero[0], y + h - 1), GRID, 1)
        points = self.to_pixels(m.train_xy)
        if m.smile is None:
            colours = np.tile(NEUTRAL.astype(np.uint8), (len(points), 1))
        else:
            colours = smile_colours(m.smile)
            self._draw_smile_legend(image)
        # Smiles (and frowns) last, on top of the neutral crowd they would otherwise hide in.
        order = np.argsort(np.abs(m.smile)) if m.smile is not None else np.arange(len(points))
        for i in order:
            cv2.circle(image, tuple(int(v) for v in points[i]), 2, tuple(int(c) for c in colours[i]), -1)

    def _draw_smile_legend(self, image: np.ndarray) -> None:
        x, y = MAP[0] + MAP[2] - 150, MAP[1] + 12
        for i, s in enumerate(np.linspace(-1, 1, 100)):
            colour = tuple(int(c) for c in smile_colours(np.array([s]))[0])
            cv2.line(image, (x + i, y), (x + i, y + 8), colour, 1)
        _text(image, "frown", (x - 46, y + 9), DIM, 0.4)
        _text(image, "smile", (x + 104, y + 9), DIM, 0.4)

    def _draw_bars_background(self, image: np.ndarray) -> None:
        m, (x, y, w, h) = self.latent_map, BARS
        _text(image, "mu per latent (grey: training mean +- 1 sd)", (x, y - 14))
        zero = y + h // 2
        step = w / len(m.mu_mean)
        for j, (mean, sd) in enumerate(zip(m.mu_mean, m.mu_std, strict=True)):
            x0 = int(x + j * step + 1)
            top, bottom = self._bar_y(mean + sd), self._bar_y(mean - sd)
            cv2.rectangle(image, (x0, top), (int(x + (j + 1) * step - 1), bottom), GRID, -1)
            if len(m.mu_mean) <= 16 or j % 4 == 0:
                _text(image, str(j), (x0, y + h + 16), DIM, 0.4)
        cv2.line(image, (x, zero), (x + w - 1, zero), DIM, 1)
        _text(image, f"+{self.bar_range:g}", (x - 30, y + 10), DIM, 0.4)
        _text(image, f"-{self.bar_range:g}", (x - 30, y + h), DIM, 0.4)

    # -- coordinates ----------------------------------------------------------------------------------------------
    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """Plane coordinates -> map pixels (y up), clipped to the map so a far point sits on its edge."""
        x, y, w, h = MAP
        t = (np.asarray(xy, np.float64) - self.lo) / (self.hi - self.lo)
        px = np.clip(x + t[..., 0] * (w - 1), x, x + w - 1)
        py = np.clip(y + (1 - t[..., 1]) * (h - 1), y, y + h - 1)
        return np.stack([px, py], axis=-1).round().astype(np.int32)

    def _bar_y(self, value: float) -> int:
        y, h = BARS[1], BARS[3]
        return int(round(y + h / 2 - np.clip(value / self.bar_range, -1, 1) * (h / 2 - 1)))

    # -- every frame ----------------------------------------------------------------------------------------------
    def draw(
        self, frame: Frame, code: FaceCode | None, last: FaceCode | None, trail: deque, status: list[str]
    ) -> np.ndarray:
        """The view of one frame (BGR); `last` is the latest face seen, drawn grey while `code` is None."""
        image = self.background.copy()
        self._draw_camera(image, frame, code)
        shown = code or last
        if shown is not None:
            self._paste(image, INPUT, shown.crop, grey=code is None)
            self._paste(image, RECON, shown.recon, grey=code is None)
            self._draw_bars(image, shown.mu, grey=code is None)
        if code is None:
            _text(image, "no face", (INPUT[0] + 80, INPUT[1] + INPUT[3] // 2), MISSING, 0.7)
        self._draw_trail(image, trail, current=code is not None)
        for i, line in enumerate(status):
            _text(image, line, (INPUT[0], 672 + 22 * i), TEXT if i == 0 else DIM)
        return image

    def _draw_camera(self, image: np.ndarray, frame: Frame, code: FaceCode | None) -> None:
        rgb = frame.rgb()
        x, y, w, h = CAMERA
        scale = min(w / rgb.shape[1], h / rgb.shape[0])
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        left, top = x + (w - size[0]) // 2, y + (h - size[1]) // 2
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        image[top : top + size[1], left : left + size[0]] = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        if code is not None:
            sx, sy, side, _ = code.square
            p0 = (int(left + sx * scale), int(top + sy * scale))
            p1 = (int(left + (sx + side) * scale), int(top + (sy + side) * scale))
            cv2.rectangle(image, p0, p1, FOUND, 2)
        _text(image, self.source_name, (x + 8, y + h - 10), TEXT, 0.45)

    @staticmethod
    def _paste(image: np.ndarray, panel: tuple[int, int, int, int], rgb: np.ndarray, grey: bool) -> None:
        x, y, w, h = panel
        big = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_NEAREST)  # the model's pixels, as they are
        if grey:
            big = cv2.cvtColor(cv2.cvtColor(big, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) // 2
        image[y : y + h, x : x + w] = big[..., ::-1]

    def _draw_bars(self, image: np.ndarray, mu: np.ndarray, grey: bool) -> None:
        x, y, w, h = BARS
        zero = y + h // 2
        step = w / len(mu)
        for j, value in enumerate(mu):
            colour = DIM if grey else (SMILE if value >= 0 else FROWN)
            x0, x1 = int(x + j * step + 3), int(x + (j + 1) * step - 3)
            cv2.rectangle(image, (x0, zero), (max(x0, x1), self._bar_y(value)), tuple(int(c) for c in colour), -1)

    def _draw_trail(self, image: np.ndarray, trail: deque, current: bool) -> None:
        if not trail:
            return
        points = self.to_pixels(np.array(trail))
        n = len(points)
        for i in range(1, n):  # older segments fade into the panel
            cv2.line(image, tuple(points[i - 1]), tuple(points[i]), _lerp(PANEL, TRAIL, i / n), 2, cv2.LINE_AA)
        head = tuple(int(v) for v in points[-1])
        cv2.circle(image, head, 8, POINT if current else DIM, -1, cv2.LINE_AA)
        cv2.circle(image, head, 8, BACKGROUND, 1, cv2.LINE_AA)
        if not current:
            _text(image, "no face", (head[0] + 12, head[1] + 5), MISSING)


# -- writing the view to a video ----------------------------------------------------------------------------------

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov")
PRESET = "superfast"  # the encoder runs beside the main loop on the same cores: the cheaper preset keeps up
CRF = 23
TIME_BASE = Fraction(1, 90000)  # each frame keeps its own time, so a camera's uneven pace plays back as it was


class ViewWriter:
    """The view as H.264, encoded in a thread of its own; the file appears under its name only when complete."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int] = VIEW_SIZE) -> None:
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise FaceVAEError(f"output={path}: must end in {', '.join(VIDEO_SUFFIXES)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")  # PyAV reads the suffix
        self.container = av.open(str(self.tmp), mode="w")
        stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = TIME_BASE
        stream.codec_context.colorspace = av.video.reformatter.Colorspace.ITU601  # what cv2's I420 conversion makes
        stream.codec_context.color_range = av.video.reformatter.ColorRange.MPEG
        stream.options = {"preset": PRESET, "crf": str(CRF)}
        self.stream = stream
        self.frames = 0
        self.encode_ms: list[float] = []
        self._pts = -1
        self._queue: queue.Queue = queue.Queue(maxsize=4)  # a bound: a slow encoder slows the loop, not memory
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, daemon=True, name="facevae-live-encode")
        self._thread.start()

    def write(self, bgr: np.ndarray, time_s: float) -> None:
        self._raise()
        pts = max(self._pts + 1, int(round(time_s / TIME_BASE)))
        self._pts = pts
        self._queue.put((bgr, pts))
        self.frames += 1

    def close(self) -> Path:
        """Flush, close, and move the file into place."""
        self._queue.put(None)
        self._thread.join()
        self._raise()
        self.container.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._queue.put(None)
        self._thread.join()
        try:
            self.container.close()
        except av.FFmpegError:
            pass
        self.tmp.unlink(missing_ok=True)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain: the main thread raises the error on its next write
            try:
                start = time.perf_counter()
                bgr, pts = item
                frame = av.VideoFrame.from_ndarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
                frame.pts, frame.time_base = pts, TIME_BASE
                self.container.mux(self.stream.encode(frame))
                self.encode_ms.append(1e3 * (time.perf_counter() - start))
            except BaseException as err:  # noqa: BLE001 - handed to the main thread
                self._error = err
        if self._error is None:
            try:
                self.container.mux(self.stream.encode())
            except BaseException as err:  # noqa: BLE001
                self._error = err

    def _raise(self) -> None:
        if self._error is not None:
            raise FaceVAEError(f"output={self.path}: writing the video failed ({self._error})") from self._error


# -- the loop -----------------------------------------------------------------------------------------------------

STAGES = ("read", "detect", "crop", "model", "project", "draw", "write", "show")
LATENCY_STAGES = ("detect", "crop", "model", "project", "draw")  # frame in hand -> its view ready


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


def live(cfg: DictConfig) -> LiveSummary:
    """Run the demo as configured; returns what the closing lines report."""
    output = Path(cfg.output).expanduser() if cfg.get("output") else None
    if output is None and not has_display():
        # OpenCV's Qt backend would abort the process without a display: say so while it can be acted on.
        raise FaceVAEError("no display to show the live view on (DISPLAY is not set): pass output=demo.mp4 to write it")
    source = open_source(cfg.source)
    run = load_run(cfg.ckpt_path, _device(cfg.device))
    if not hasattr(run.model, "encode"):
        raise FaceVAEError(f"{run.path}: the live demo needs a model with an encoder (a beta-VAE checkpoint)")
    threads = torch.get_num_threads()
    try:
        if run.model.device.type == "cpu":
            torch.set_num_threads(int(cfg.threads))
        return _run(cfg, source, run, output)
    finally:
        torch.set_num_threads(threads)  # the caller's setting, when live() is called from Python


def _run(cfg: DictConfig, source: LiveSource, run: TrainedRun, output: Path | None) -> LiveSummary:
    data_overrides = OmegaConf.to_container(cfg.data, resolve=True) if cfg.get("data") else {}
    latent_map, _ = load_latent_map(run, cfg.projection, data_overrides)
    params = _extraction_params(run)
    encoder = FaceEncoder(run.model, latent_map, params.detector, params.crop, params.align)
    view = LiveView(latent_map, source.name if source.camera else Path(source.name).name)
    coords = _coords_path(cfg, output)
    writer = ViewWriter(output, source.fps) if output is not None else None
    try:
        summary, rows = _loop(source, encoder, view, writer, cfg)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        summary.output = writer.close()
        summary.encode_ms = float(np.mean(writer.encode_ms)) if writer.encode_ms else None
    if coords is not None:
        summary.coords_csv = _write_coords(coords, rows)
    return summary


def _device(name: str) -> torch.device:
    # As evaluation.pick_device, without importing every analysis (seconds) for it.
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _extraction_params(run: TrainedRun) -> ExtractionParams:
    """The detector and crop settings training used, from the datamodule the checkpoint's config builds."""
    try:
        return hydra.utils.instantiate(run.config["data"], progress=False).params
    except (TypeError, hydra.errors.InstantiationException) as err:
        raise FaceVAEError(f"{run.path}: its data config does not fit this version of facevae ({err})") from None


def _coords_path(cfg: DictConfig, output: Path | None) -> Path | None:
    if cfg.get("coords_csv"):
        return Path(cfg.coords_csv).expanduser()
    return output.with_name(f"{output.stem}.coords.csv") if output is not None else None


def _loop(
    source: LiveSource, encoder: FaceEncoder, view: LiveView, writer: ViewWriter | None, cfg: DictConfig
) -> tuple[LiveSummary, list[dict]]:
    summary = LiveSummary(source_fps=source.fps)
    trail: deque = deque(maxlen=max(1, int(cfg.trail)))
    recent: deque = deque(maxlen=30)  # end times of the latest frames, for the FPS shown
    totals: dict[str, float] = {}
    window = Window(source.camera) if writer is None else None
    last: FaceCode | None = None
    rows: list[dict] = []
    start = time.perf_counter()
    clock = Stopwatch()
    try:
        for frame in itertools.islice(source.frames, cfg.max_frames):
            clock.lap("read")
            code = encoder(frame, clock)
            if code is not None:
                trail.append(code.xy)
                last = code
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
            image = view.draw(frame, code, last, trail, _status(frame, fps, rows, window is not None))
            clock.lap("draw")
            stop = False
            if writer is not None:
                writer.write(image, frame.time_s)
                clock.lap("write")
            else:
                stop = window.interact(image, frame, start, trail, cfg.snapshot_dir)
                clock.lap("show")
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
    finally:
        source.close()
        if window is not None:
            window.close()
    summary.elapsed_s = time.perf_counter() - start
    summary.latency_ms = [r["latency_ms"] for r in rows]
    summary.stage_ms = {k: totals[k] / max(1, summary.frames) for k in STAGES if k in totals}
    return summary, rows


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
    with atomic_file(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return path


class Window:
    """The view on screen, and the keys: q (or Esc, or closing the window) quits, s saves a PNG, r clears the trail."""

    def __init__(self, camera: bool) -> None:
        self.camera = camera
        cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)

    def interact(self, image: np.ndarray, frame: Frame, start: float, trail: deque, snapshot_dir: str) -> bool:
        """Show the view and act on a key; True when the user asked to quit."""
        cv2.imshow(WINDOW, image)
        # A file plays at its own pace, as a camera would deliver it; a camera's frames are shown as they come.
        wait = 1 if self.camera else max(1, int(1e3 * (start + frame.time_s - time.perf_counter())))
        key = cv2.waitKey(wait) & 0xFF
        if key == ord("s"):
            print(save_snapshot(image, Path(snapshot_dir), frame.index), flush=True)
        elif key == ord("r"):
            trail.clear()
        return key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1

    @staticmethod
    def close() -> None:
        cv2.destroyAllWindows()


def save_snapshot(image: np.ndarray, folder: Path, index: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"live-{time.strftime('%Y%m%d-%H%M%S')}-{index:06d}.png"
    if not cv2.imwrite(str(path), image):
        raise FaceVAEError(f"{path}: the snapshot could not be written")
    return path


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="live")
@exit_on_error
def main(cfg: DictConfig) -> None:
    print("\n".join(live(cfg).lines()))


if __name__ == "__main__":
    main()
