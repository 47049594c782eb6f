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

The face is moved by smooth local displacement fields on the face region only (Gaussian bumps around hand-placed
landmarks), then one affine warp places it in the frame; the photo's own background, slightly out of focus,
fills the rest. At the default framing one photo pixel is 2.5 frame pixels and the face is about 240 frame
pixels tall.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import logging
import math
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from facevae.core.errors import FaceVAEError, exit_on_error
from facevae.core.files import atomic_file
from facevae.data.h264 import H264Writer, frame_rate

log = logging.getLogger(__name__)

FACTOR_NAMES: tuple[str, ...] = ("smile", "brow", "gaze", "roll", "yaw", "light", "scale", "dx", "dy")
DEFAULT_SECONDS = 180.0
SMILING_SECONDS = 20.0
DEFAULT_SIZE = (1280, 720)
# superfast rather than veryfast: veryfast costs ~15 ms of CPU per 720p frame against ~8.5, which would push
# three minutes past a minute on two cores. The price is a larger file (~42 MB against ~27 MB at crf 20).
PRESET = "superfast"
CRF = 20
VFR_TIME_BASE = Fraction(1, 90000)
DRAW_SCALE = 0.5  # frames are drawn at this share of their size, then scaled up (see FaceRenderer)

# -- factors ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventStyle:
    """Timing of one expression's events in seconds: the rest before each, its ramps up and down, its hold."""

    rest: tuple[float, float]
    ramp: tuple[float, float]
    hold: tuple[float, float]


SMILE_EVENTS = EventStyle(rest=(2.0, 6.5), ramp=(0.3, 0.8), hold=(1.0, 4.0))
BROW_EVENTS = EventStyle(rest=(3.0, 9.0), ramp=(0.2, 0.5), hold=(0.5, 2.0))
GAZE_EVENTS = EventStyle(rest=(1.0, 4.0), ramp=(0.08, 0.2), hold=(0.5, 2.5))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _envelope(t: np.ndarray, up: float, hold: float, down: float) -> np.ndarray:
    """0 before t=0, a smooth rise to 1 over `up`, 1 for `hold`, a smooth fall to 0 over `down`."""
    return _smoothstep(t / up) - _smoothstep((t - up - hold) / down)


def _events(
    rng: np.random.Generator,
    times: np.ndarray,
    style: EventStyle,
    amplitude: Callable[[np.random.Generator], float],
) -> np.ndarray:
    """Non-overlapping events at the given times; a longer clip of the same seed starts with the same events."""
    out = np.zeros(len(times))
    end = times[-1] if len(times) else 0.0
    start = rng.uniform(0.0, style.rest[1])
    while start <= end:
        up, hold, down = rng.uniform(*style.ramp), rng.uniform(*style.hold), rng.uniform(*style.ramp)
        peak = amplitude(rng)
        stop = start + up + hold + down
        i, j = np.searchsorted(times, [start, stop])
        out[i:j] += peak * _envelope(times[i:j] - start, up, hold, down)
        start = stop + rng.uniform(*style.rest)
    return out


def _drift(rng: np.random.Generator, times: np.ndarray, periods: tuple[float, float], waves: int = 3) -> np.ndarray:
    """A slow wander in [-1, 1]: a few sinusoids with log-uniform periods and random phases, softly saturated."""
    period = np.exp(rng.uniform(math.log(periods[0]), math.log(periods[1]), waves))
    phase = rng.uniform(0.0, 2 * math.pi, waves)
    weight = rng.uniform(0.5, 1.0, waves)
    mean = np.sin(2 * math.pi * times[:, None] / period + phase) @ weight / weight.sum()
    # An average of sinusoids seldom nears its bounds; tanh spreads it so the extremes do occur, without overshoot.
    return np.tanh(2.0 * mean) / math.tanh(2.0)


def _smile_peak(rng: np.random.Generator) -> float:
    # One event in six is a frown; smiles lean broad so that about 30% of frames have smile > 0.5.
    if rng.random() < 1 / 6:
        return -rng.uniform(0.3, 1.0)
    return rng.uniform(0.35, 1.0) ** 0.6


def _gaze_peak(rng: np.random.Generator) -> float:
    return rng.choice((-1.0, 1.0)) * rng.uniform(0.3, 1.0)


def _stream(seed: int, name: str, part: int = 0) -> np.random.Generator:
    """A random stream of its own for each factor and each part of it, so that changing how many numbers one part
    draws (a longer clip has more events) leaves every other part as it was."""
    return np.random.default_rng([seed, FACTOR_NAMES.index(name), part])


def _factors_at(times: np.ndarray, seed: int, smiling: bool) -> pd.DataFrame:
    """The factor table for frames shown at `times` (seconds)."""
    if smiling:
        smile = 0.8 + 0.15 * _drift(_stream(seed, "smile", 2), times, (1.5, 6.0))
    else:
        smile = _events(_stream(seed, "smile"), times, SMILE_EVENTS, _smile_peak)
        smile += 0.04 * _drift(_stream(seed, "smile", 1), times, (1.0, 4.0))
    brow = _events(_stream(seed, "brow"), times, BROW_EVENTS, lambda r: r.uniform(0.4, 1.0))
    gaze = _events(_stream(seed, "gaze"), times, GAZE_EVENTS, _gaze_peak)
    gaze += 0.08 * _drift(_stream(seed, "gaze", 1), times, (2.0, 8.0))
    table = {
        "frame": np.arange(len(times)),
        "smile": np.clip(smile, -1.0, 1.0),
        "brow": np.clip(brow, 0.0, 1.0),
        "gaze": np.clip(gaze, -1.0, 1.0),
        "roll": 12.0 * _drift(_stream(seed, "roll"), times, (5.0, 30.0)),
        "yaw": _drift(_stream(seed, "yaw"), times, (4.0, 25.0)),
        "light": 1.0 + 0.25 * _drift(_stream(seed, "light"), times, (10.0, 60.0)),
        "scale": np.exp(0.17 * _drift(_stream(seed, "scale"), times, (8.0, 45.0))),
        "dx": 110.0 * _drift(_stream(seed, "dx"), times, (6.0, 40.0)),
        "dy": 40.0 * _drift(_stream(seed, "dy"), times, (6.0, 40.0)),
    }
    return pd.DataFrame(table)


def demo_factors(n_frames: int, fps: float, seed: int = 0, smiling: bool = False) -> pd.DataFrame:
    """Factors for n_frames shown at a constant fps: columns `frame` then FACTOR_NAMES (units: module docstring).

    These are exactly the factors write_demo_video puts beside a constant-rate clip of the same fps and seed.
    """
    return _factors_at(np.arange(n_frames) * float(1 / frame_rate(fps)), seed, smiling)


# -- rendering -------------------------------------------------------------------------------------------------

# Landmarks on skimage.data.astronaut() in its own pixels (x, y), placed by eye on zoomed crops.
IRISES = ((203.5, 101.0), (247.0, 102.5))  # image-left eye first
BROWS = ((204.0, 89.0), (248.5, 91.5))
MOUTH_CORNERS = ((203.5, 140.5), (244.5, 141.5))
CHEEKS = ((197.0, 127.0), (250.0, 129.0))
MOUTH_MIDDLE = (224.0, 147.0)
# The smile lines from nose to mouth corners, as a few points along each; they fade as the smile does.
SMILE_LINES = (((203.0, 128.0), (198.8, 133.8), (203.0, 139.0)), ((246.0, 128.8), (249.4, 135.0), (247.0, 140.5)))
NOSE_TIP = (225.0, 126.0)
FACE_CENTRE = (224.5, 116.0)  # middle of the Haar box, nudged down; the point the affine warp places
# The band of teeth between the lips, column by column: its middle line and half its height.
LIP_GAP_X = (201.0, 203.5, 205.0, 209.0, 214.0, 220.0, 226.0, 232.0, 237.0, 241.0, 244.5, 247.0)
LIP_GAP_MID = (140.5, 140.5, 141.0, 143.5, 145.5, 146.0, 146.2, 146.0, 144.0, 142.5, 141.5, 141.5)
LIP_GAP_HALF = (0.0, 0.8, 1.6, 2.0, 2.4, 2.6, 2.6, 2.4, 2.4, 1.8, 0.8, 0.0)
# Regions (x0, y0, x1, y1) the warps redraw. The first two change the photo itself (lips closed, irises moved);
# the face warp then moves features about, so the lips' seam and the irises travel with them.
MOUTH_REGION = (186, 118, 262, 166)
EYES_REGION = (190, 92, 262, 112)
FACE_REGION = (150, 50, 300, 200)
# Outlines of the person (head and hair; collar, suit and arms, without the helmet held in front) that stay sharp
# while the rest of the photo is thrown out of focus, as in a selfie. Blurring the backdrop also keeps the shuttle
# and the helmet's reflections from making Haar false positives beside the face.
HEAD_OUTLINE = (
    (227, 16), (201, 23), (156, 58), (154, 92), (157, 104), (170, 116), (174, 128), (182, 132), (187, 178),
    (194, 184), (241, 189), (250, 186), (255, 178), (266, 137), (275, 134), (294, 111), (300, 81), (296, 58),
    (282, 36), (251, 19),
)  # fmt: skip
BODY_OUTLINE = (
    (112, 190), (130, 158), (170, 146), (250, 146), (295, 162), (308, 200), (340, 262), (352, 287), (366, 349),
    (330, 361), (295, 395), (278, 449), (276, 512), (18, 512), (18, 416), (26, 342), (40, 294), (61, 251),
    (103, 215),
)  # fmt: skip
BACKGROUND_BLUR = 2.5  # photo pixels
TOP_PAD = 80  # photo rows of plain backdrop added above the photo, so a small, low face shows no mirrored hair

# The photo is the +1 smile. Mouth corners (outwards, upwards), cheeks (upwards) and the middle of the mouth
# (upwards: a frown pushes the lower lip up) in photo pixels relative to the photo, at smile -1, 0, +1; in
# between they follow the line through these knots.
SMILE_KNOTS = (-1.0, 0.0, 1.0)
CORNER_OUT = (-3.0, -2.5, 0.8)
CORNER_UP = (-7.0, -4.5, 0.8)
CHEEK_UP = (-2.0, -1.5, 0.5)
MIDDLE_UP = (1.5, 0.0, 0.0)
BROW_UP = 4.5
SEAM_SHADE = np.array([0.25, 0.4, 0.4], np.float32)  # how much closed lips' seam darkens R, G, B
GAZE_SHIFT = 2.8
YAW_SHIFT = (8.0, 3.5)  # whole face, extra for the nose tip: nearer the camera, it moves more


def _gauss(x: np.ndarray, y: np.ndarray, centre: tuple[float, float], sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * (((x - centre[0]) / sx) ** 2 + ((y - centre[1]) / sy) ** 2))


def _lip_gap(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's height above the gap's middle line (negative) or below it, and the gap's half height there."""
    return y - np.interp(x, LIP_GAP_X, LIP_GAP_MID), np.interp(x, LIP_GAP_X, LIP_GAP_HALF)


def _lip_closing(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Vertical motion that closes the lips: the upper lip comes down and the lower up, meeting at the gap's middle.

    At the middle the motion flips sign between two pixel rows, so the teeth vanish into a seam rather than being
    squashed into a grey line; half a pixel more than the gap swallows the lip edges' blend with the teeth. A
    Gaussian fall-off above and below keeps the backward map monotonic (its slope stays under 1).
    """
    offset, half = _lip_gap(x, y)
    reach = np.where(half > 0, half + 0.5, 0.0)
    return -np.where(offset < 0, -1.0, 1.0) * reach * np.exp(-0.5 * (offset / 3.5) ** 2)


def _lip_seam(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Where closed lips meet, a thin shadow: 1 on the seam, fading within a pixel."""
    offset, half = _lip_gap(x, y)
    return np.clip(half / 1.5, 0.0, 1.0) * np.exp(-0.5 * (offset / 0.6) ** 2)


def _smile_lines(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 on the smile lines, fading over a couple of pixels either side."""
    distance = np.full(x.shape, np.inf)
    for line in SMILE_LINES:
        for (ax, ay), (bx, by) in itertools.pairwise(line):
            for t in np.linspace(0.0, 1.0, 12):
                distance = np.minimum(distance, np.hypot(x - (ax + t * (bx - ax)), y - (ay + t * (by - ay))))
    return np.exp(-0.5 * (distance / 1.8) ** 2)


def _taper(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 inside the face region, falling smoothly to 0 at its edges, so no warp leaves a seam."""
    x0, y0, x1, y1 = FACE_REGION
    tx = _smoothstep(np.minimum(x - x0, x1 - x) / 20.0)
    ty = _smoothstep(np.minimum(y - y0, y1 - y) / 20.0)
    return tx * ty


def _face_fields(x: np.ndarray, y: np.ndarray) -> dict[str, tuple[int, np.ndarray]]:
    """Per unit of each coefficient: (axis 0 = x or 1 = y, forward displacement in photo pixels)."""
    left, right = (_gauss(x, y, c, 6.0, 8.0) for c in MOUTH_CORNERS)
    yaw = YAW_SHIFT[0] * _gauss(x, y, FACE_CENTRE, 24.0, 30.0) + YAW_SHIFT[1] * _gauss(x, y, NOSE_TIP, 5.0, 7.0)
    return {
        "corner_out": (0, right - left),
        "corner_up": (1, -(left + right)),
        "middle_up": (1, -_gauss(x, y, MOUTH_MIDDLE, 7.0, 4.0)),
        "cheek_up": (1, -sum(_gauss(x, y, c, 9.0, 8.0) for c in CHEEKS)),
        "brow_up": (1, -sum(_gauss(x, y, b, 10.0, 5.0) for b in BROWS)),
        "yaw": (0, yaw * _taper(x, y)),
    }


def _coefficients(factors: Mapping[str, float]) -> dict[str, float]:
    smile = float(factors["smile"])
    return {
        "corner_out": float(np.interp(smile, SMILE_KNOTS, CORNER_OUT)),
        "corner_up": float(np.interp(smile, SMILE_KNOTS, CORNER_UP)),
        "middle_up": float(np.interp(smile, SMILE_KNOTS, MIDDLE_UP)),
        "cheek_up": float(np.interp(smile, SMILE_KNOTS, CHEEK_UP)),
        # Teeth show from smile 0.25 and fully at 1: a smile opens as it grows.
        "lip_close": 1.0 - float(_smoothstep(np.float64((smile - 0.25) / 0.75))),
        "lines_fade": 1.0 - float(_smoothstep(np.float64(smile))),
        "brow_up": BROW_UP * float(factors["brow"]),
        "gaze": GAZE_SHIFT * float(factors["gaze"]),
        "yaw": float(factors["yaw"]),
    }


@dataclass
class _Field:
    axis: int
    rows: slice
    cols: slice
    values: np.ndarray  # canvas pixels per unit coefficient, float32, only where it is not negligible


def _crop_field(axis: int, values: np.ndarray) -> _Field:
    """Keep only the rows and columns where the field moves a pixel by more than a thousandth."""
    rows = np.flatnonzero(np.abs(values).max(axis=1) > 1e-3)
    cols = np.flatnonzero(np.abs(values).max(axis=0) > 1e-3)
    rs, cs = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    return _Field(axis, rs, cs, np.ascontiguousarray(values[rs, cs], dtype=np.float32))


# Makes a warp's fields from photo coordinates: name -> (axis 0 = x or 1 = y, displacement in photo pixels).
FieldMaker = Callable[[np.ndarray, np.ndarray], dict[str, tuple[int, np.ndarray]]]


class _Warp:
    """Redraws one region of the canvas through a backward map built from fixed fields scaled per frame."""

    def __init__(self, region: tuple[int, int, int, int], magnify: float, fields: FieldMaker) -> None:
        x0, x1 = (round(_to_canvas(v, magnify, 0)) for v in region[::2])
        y0, y1 = (round(_to_canvas(v, magnify, TOP_PAD)) for v in region[1::2])
        self.rows, self.cols = slice(y0, y1), slice(x0, x1)
        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        self.grid = gx, gy
        self.photo = _to_photo(gx, magnify, 0), _to_photo(gy, magnify, TOP_PAD)
        self.fields = {name: _crop_field(axis, f * magnify) for name, (axis, f) in fields(*self.photo).items()}

    def apply(self, src: np.ndarray, dst: np.ndarray, coefficients: Mapping[str, float]) -> None:
        maps = [self.grid[0].copy(), self.grid[1].copy()]
        for name, field in self.fields.items():
            if coefficients[name]:
                # A backward map: each output pixel samples where its content came from.
                maps[field.axis][field.rows, field.cols] -= np.float32(coefficients[name]) * field.values
        dst[self.rows, self.cols] = cv2.remap(src, maps[0], maps[1], cv2.INTER_LINEAR)


def _to_canvas(v: float, magnify: float, pad: float) -> float:
    return (v + pad + 0.5) * magnify - 0.5  # cv2.resize aligns pixel centres, not corners


def _to_photo(v: np.ndarray, magnify: float, pad: float) -> np.ndarray:
    return (v + 0.5) / magnify - 0.5 - pad


def _defocus_background(photo: np.ndarray) -> np.ndarray:
    """The photo with everything but the person blurred, through a feathered mask so no outline shows."""
    sharp = np.zeros(photo.shape[:2], np.float32)
    cv2.fillPoly(sharp, [np.array(HEAD_OUTLINE, np.int32), np.array(BODY_OUTLINE, np.int32)], 1.0)
    sharp = cv2.GaussianBlur(sharp, (0, 0), 3.0)[..., None]
    blurred = cv2.GaussianBlur(photo, (0, 0), BACKGROUND_BLUR)
    return (photo * sharp + blurred * (1 - sharp)).round().astype(np.uint8)


def _with_backdrop_above(photo: np.ndarray, rows: int) -> np.ndarray:
    """The photo with `rows` of its top edge's colours stretched upwards, softened sideways so nothing streaks."""
    edge = photo[:6].mean(axis=0, keepdims=True).astype(np.float32)
    edge = cv2.GaussianBlur(edge, (0, 0), sigmaX=6.0, sigmaY=0.1, borderType=cv2.BORDER_REFLECT)
    above = np.repeat(edge, rows, axis=0)
    blend = np.linspace(0.0, 1.0, 6)[:, None, None]  # fade into the photo's first rows: no visible edge
    top = photo[:6] * blend + above[:6] * (1 - blend)
    return np.concatenate([above, top, photo[6:]]).round().astype(np.uint8)


class FaceRenderer:
    """Draws frames from factors. The upscaled photo and the warp fields are built once; render() takes ~3 ms.

    A frame is drawn at half its size and then scaled up: the photo's face has no finer detail than that (it is
    95 pixels wide), and drawing a quarter of the pixels halves the cost of a frame.
    """

    def __init__(self, magnify: float = 2.5 * DRAW_SCALE) -> None:
        from skimage.data import astronaut  # imported here: skimage is slow to import and only needed once

        photo = _with_backdrop_above(_defocus_background(astronaut()), TOP_PAD)
        self.magnify = magnify
        size = (round(photo.shape[1] * magnify), round(photo.shape[0] * magnify))
        self._canvas = cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC)
        self._expression = self._canvas.copy()  # lips closed and irises moved, in the photo's own geometry
        self._work = self._canvas.copy()  # ... then features moved; only the warps' regions ever change
        self._mouth = _Warp(MOUTH_REGION, magnify, lambda x, y: {"lip_close": (1, _lip_closing(x, y))})
        self._seam = _lip_seam(*self._mouth.photo)[..., None].astype(np.float32)
        self._lines = 0.85 * _smile_lines(*self._mouth.photo)[..., None].astype(np.float32)
        # Smile lines fade by blending towards a blurred copy of the photo around the mouth.
        self._smoothed = cv2.GaussianBlur(self._canvas, (0, 0), 2.5 * magnify)[self._mouth.rows, self._mouth.cols]
        self._eyes = _Warp(
            EYES_REGION, magnify, lambda x, y: {"gaze": (0, sum(_gauss(x, y, i, 4.5, 2.6) for i in IRISES))}
        )
        self._face = _Warp(FACE_REGION, magnify, _face_fields)
        self._centre = (_to_canvas(FACE_CENTRE[0], magnify, 0), _to_canvas(FACE_CENTRE[1], magnify, TOP_PAD))
        self._lock = threading.Lock()

    def render(self, factors: Mapping[str, float], size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
        """One RGB uint8 frame of size (width, height)."""
        coefficients = _coefficients(factors)
        small = (max(1, round(size[0] * DRAW_SCALE)), max(1, round(size[1] * DRAW_SCALE)))
        with self._lock:  # the warped regions of the canvases are shared scratch space
            self._mouth.apply(self._canvas, self._expression, coefficients)
            self._shade_mouth(coefficients["lip_close"], coefficients["lines_fade"])
            self._eyes.apply(self._canvas, self._expression, coefficients)
            self._face.apply(self._expression, self._work, coefficients)
            frame = cv2.warpAffine(
                self._work,
                self._placement(factors, size, small),
                small,
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT,
            )
        frame = _light(frame, float(factors["light"]))
        return cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC)

    def eye_centres(self, factors: Mapping[str, float], size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
        """Where the centres of the eyes (the irises at gaze 0, moved by the head's turn) land in a frame of this
        size: a 2 x 2 array of (x, y) in frame pixels, the image-left eye first. The truth face alignment is
        measured against."""
        width, height = size
        small = (max(1, round(width * DRAW_SCALE)), max(1, round(height * DRAW_SCALE)))
        x, y = np.array(IRISES, np.float64).T
        _, turn = _face_fields(x, y)["yaw"]
        canvas = np.stack(
            [_to_canvas(x + float(factors["yaw"]) * turn, self.magnify, 0), _to_canvas(y, self.magnify, TOP_PAD)]
        )
        placed = self._placement(factors, size, small) @ np.vstack([canvas, np.ones(2)])
        scale = np.array([width / small[0], height / small[1]])[:, None]
        return ((placed + 0.5) * scale - 0.5).T

    def _shade_mouth(self, closing: float, fading: float) -> None:
        mouth = self._expression[self._mouth.rows, self._mouth.cols]
        fade = fading * self._lines
        # The seam's shadow is reddish brown: green and blue darken more than red, as lips in shade look.
        mouth[:] = (mouth * (1.0 - fade) + self._smoothed * fade) * (1.0 - closing * self._seam * SEAM_SHADE)

    def _placement(self, factors: Mapping[str, float], size: tuple[int, int], small: tuple[int, int]) -> np.ndarray:
        """Canvas to the small frame: rotate and scale about the face centre, put it at the middle of the frame."""
        width, height = size
        unit = height / 720  # dx, dy and the default framing are defined for a 720-line frame
        zoom = float(factors["scale"]) * unit * 2.5 / self.magnify
        matrix = cv2.getRotationMatrix2D(self._centre, float(factors["roll"]), zoom)
        matrix[0, 2] += width / 2 + float(factors["dx"]) * unit - self._centre[0]
        matrix[1, 2] += height / 2 + float(factors["dy"]) * unit - self._centre[1]
        # Full-size pixels to small ones, pixel centres aligned as cv2.resize aligns them.
        for axis, (full, part) in enumerate(zip(size, small, strict=True)):
            matrix[axis] *= part / full
            matrix[axis, 2] += 0.5 * part / full - 0.5
        return matrix


def _light(frame: np.ndarray, gain: float) -> np.ndarray:
    """Multiply by the gain, with a window to the image's left that grows stronger as the light brightens."""
    height, width = frame.shape[:2]
    slope = 0.12 * np.clip((gain - 0.75) / 0.5, 0.0, 1.0)
    row = gain * (1.0 + slope * np.linspace(1.0, -1.0, width))
    # uint8 factors in 128ths, repeated row by row: several times faster than float arithmetic on the frame.
    row = np.repeat(np.clip(np.round(row * 128), 0, 255).astype(np.uint8), 3)[None, :]
    factor = cv2.repeat(row, height, 1).reshape(height, width, 3)
    return cv2.multiply(frame, factor, scale=1 / 128)


@functools.cache
def _renderer() -> FaceRenderer:
    return FaceRenderer()


def render_frame(factors: Mapping[str, float], size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
    """The demo person at these factors (units: module docstring), as an H x W x 3 uint8 RGB frame."""
    return _renderer().render(factors, size)


def eye_centres(factors: Mapping[str, float], size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
    """The demo person's eye centres in a frame rendered at these factors: 2 x 2, (x, y) per eye, image-left first."""
    return _renderer().eye_centres(factors, size)


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
    factors = _factors_at(pts * float(time_base), seed, smiling)
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
