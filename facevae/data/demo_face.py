"""The demo video's frames: the astronaut of `skimage.data.astronaut()` with the expression, pose, light and framing
a row of factors asks for (see `facevae.data.synthetic` for their units).

The face is moved by smooth local displacement fields on the face region only (Gaussian bumps around hand-placed
landmarks), then one affine warp places it in the frame; the photo's own background, slightly out of focus,
fills the rest. At the default framing one photo pixel is 2.5 frame pixels and the face is about 240 frame
pixels tall.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from facevae.data.demo_factors import smoothstep

DEFAULT_SIZE = (1280, 720)
DRAW_SCALE = 0.5  # frames are drawn at this share of their size, then scaled up (see FaceRenderer)


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
    tx = smoothstep(np.minimum(x - x0, x1 - x) / 20.0)
    ty = smoothstep(np.minimum(y - y0, y1 - y) / 20.0)
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
        "lip_close": 1.0 - float(smoothstep(np.float64((smile - 0.25) / 0.75))),
        "lines_fade": 1.0 - float(smoothstep(np.float64(smile))),
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
