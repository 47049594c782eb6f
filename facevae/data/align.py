"""Face alignment: every crop puts the eyes at the same place, so what changes between crops is the face.

The Haar face box jitters by a few pixels from frame to frame and stays upright when the head tilts; a crop cut
from it moves, grows and turns with the head, and a VAE spends latents on that. Aligned crops are cut from a
square fixed to the eyes instead: a similarity transform (scale, rotation, translation) per frame. OpenCV's eye
cascade (`haarcascade_eye.xml`, shipped with opencv-python: nothing to download) finds the two eyes inside the
tracked face box, first over the upper face and then in small windows around the last eyes, which is several
times cheaper; the eye centres are then smoothed over time. A frame whose eyes are not found keeps the face box's
own estimate of them (the eyes' usual place in a Haar box), so alignment never drops a frame.

The square's framing is the box crop's (facevae.data.faces.CropParams): side `scale` times the width of the face box the
eyes imply, centre `shift_y` of that width below the box's centre, turned with the line through the eyes. So
`data.extraction.align=eyes` and `data.extraction.align=none` frame the average face alike, and `crop_scale` keeps its
meaning.

On 240 frames of the demo person rendered with the truth (`python -m facevae.bench alignment`), the true eye
centres stray from their mean place in the 64-pixel crop by 2.95 pixels RMS with the box crop, its roll by 7.9
degrees and its size by 3.2%; with the eyes, smoothed over +-2 kept frames, by 0.55 pixels, 1.0 degree and 1.3%.
Registering each crop to the person's own mean face (`cv2.findTransformECC`) from the box crop reached 1.25
pixels, and as a second stage after the eyes 0.63 pixels with 0.14 degrees of roll, at the price of a second pass
over the video for the mean face: the eyes alone are the default.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import cv2
import numpy as np

from facevae.data.faces import Box, CropParams, cut_upright

EYE_CASCADE = "haarcascade_eye.xml"
ALIGN_METHODS = ("none", "eyes", "eyes+ecc")
# Where the eye centres sit in OpenCV's frontal-face Haar box, as shares of its width: their distance apart, and
# their height below the box's top edge. Measured on the demo video (the mean over its frames): with these, an
# aligned crop frames the average face as the box crop does.
EYE_GAP_IN_BOX = 0.4256
EYE_HEIGHT_IN_BOX = 0.375
SEARCH_WIDTH = 100  # the upper face is searched at this width in pixels: eyes about 20-35 pixels, the cascade's scale
TRACK_EYE_SIDE = 22  # a tracked eye is searched for at about this size in pixels, in a window 1.8 times as wide

ECC_SIZE, ECC_MARGIN = 64, 8  # registration compares 64 x 64 grey crops, searched within 8 pixels more each side
ECC_TEMPLATE_FRAMES = 24  # frames aligned by their eyes whose mean face becomes the template
ECC_CHECK_EVERY = 8  # every this many frames the eye cascade runs anyway, to start registration afresh
ECC_MIN_CORRELATION = 0.8  # a registration that matches the template worse than this is not trusted

T = TypeVar("T")


@dataclass
class AlignParams:
    method: str = "none"  # "eyes": crops turned and scaled to the eyes; "none": the face box's upright square
    smooth_s: float = 0.2  # sd in seconds of the Gaussian over time that steadies the eyes (0: no smoothing)


@dataclass(frozen=True)
class Eyes:
    """The centres of both eyes in source pixels, the image-left one first, and the size of an eye's Haar box."""

    left: tuple[float, float]
    right: tuple[float, float]
    size: float

    @property
    def array(self) -> np.ndarray:
        return np.array([self.left, self.right], np.float64)

    @classmethod
    def from_array(cls, points: np.ndarray, size: float) -> Eyes:
        return cls(tuple(map(float, points[0])), tuple(map(float, points[1])), float(size))


@dataclass(frozen=True)
class Square:
    """A crop square in source pixels: its centre, side, and turn in degrees (counter-clockwise on screen).

    Coordinates count pixel corners (pixel i spans [i, i + 1]), as a detector's box (x, y, w, h) does.
    """

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    def rect(self) -> tuple[int, int, int, int]:
        """(x, y, side, side) of the square before its turn, in whole source pixels, as frames.csv stores it."""
        side = max(2, int(round(self.side)))
        return int(round(self.cx - side / 2)), int(round(self.cy - side / 2)), side, side


def eyes_in_box(box: Box) -> Eyes:
    """Where the eyes usually are in a face box: the estimate used while the cascade has not found them."""
    half_gap, y = EYE_GAP_IN_BOX * box.w / 2, box.y + EYE_HEIGHT_IN_BOX * box.h
    return Eyes((box.cx - half_gap, y), (box.cx + half_gap, y), 0.25 * box.w)


def square_from_eyes(eyes: Eyes, crop: CropParams) -> Square:
    """The crop square the box crop would give for a face box fixed to these eyes, turned with them."""
    dx, dy = eyes.right[0] - eyes.left[0], eyes.right[1] - eyes.left[1]
    width = math.hypot(dx, dy) / EYE_GAP_IN_BOX  # the face box these eyes imply
    cos, sin = dx / (width * EYE_GAP_IN_BOX), dy / (width * EYE_GAP_IN_BOX)
    down = (0.5 - EYE_HEIGHT_IN_BOX + crop.shift_y) * width  # eye line to the crop's centre, along the face's own axis
    mid_x, mid_y = (eyes.left[0] + eyes.right[0]) / 2, (eyes.left[1] + eyes.right[1]) / 2
    # The eye line's angle in image coordinates (y down) is -angle on screen.
    return Square(mid_x - sin * down, mid_y + cos * down, crop.scale * width, -math.degrees(math.atan2(dy, dx)))


def square_from_box(box: Box, crop: CropParams) -> Square:
    """The upright square of the box crop (facevae.data.faces.crop_square), at the same whole pixels."""
    side = max(2, int(round(crop.scale * box.w)))
    x0, y0 = int(round(box.cx - side / 2)), int(round(box.cy + crop.shift_y * box.h - side / 2))
    return Square(x0 + side / 2, y0 + side / 2, side, 0.0)


def source_to_crop(square: Square, size: int) -> np.ndarray:
    """The 2 x 3 affine map from source pixel centres to the pixel centres of a size x size crop of this square
    (cv2.warpAffine's convention)."""
    scale, turn = size / square.side, math.radians(square.angle)
    cos, sin = scale * math.cos(turn), scale * math.sin(turn)
    # Turning the crop by -angle on screen undoes a head tilted by +angle: in image coordinates (y down) that is
    # the rotation by +angle.
    linear = np.array([[cos, -sin], [sin, cos]])
    offset = np.array([size / 2, size / 2]) - linear @ np.array([square.cx - 0.5, square.cy - 0.5]) - 0.5
    return np.hstack([linear, offset[:, None]])


def cut(rgb: np.ndarray, square: Square, size: int, supersample: int = 2) -> np.ndarray:
    """The square, turned upright, as a size x size crop. Parts outside the frame repeat its edge.

    The source is area-averaged by a whole factor to between `supersample` and twice `supersample` times the crop's
    size, then turned and sampled bilinearly, then area-averaged to the crop's size: a direct bilinear warp from a
    face hundreds of pixels wide would alias, and one at the crop's own scale blurs a little (registration's grey
    patches take that, for speed).
    """
    if square.angle == 0.0:  # an upright square (the box crop's) is cut at whole pixels, as crop_square cuts it
        x, y, side, _ = square.rect()
        return cut_upright(rgb, x, y, side, size)
    diagonal = square.side * math.sqrt(2) / 2 + 8  # room for the corners, and for rounding to whole factors below
    x0, y0 = int(math.floor(square.cx - diagonal)), int(math.floor(square.cy - diagonal))
    x1, y1 = int(math.ceil(square.cx + diagonal)), int(math.ceil(square.cy + diagonal))
    h, w = rgb.shape[:2]
    patch = rgb[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    top, left, bottom, right = max(0, -y0), max(0, -x0), max(0, y1 - h), max(0, x1 - w)
    if top or left or bottom or right:
        patch = cv2.copyMakeBorder(patch, top, bottom, left, right, cv2.BORDER_REPLICATE)
    # Area-averaging by a whole factor is OpenCV's fast path; the bilinear warp then shrinks by less than 2.
    factor = max(1, int(square.side / (supersample * size)))
    if factor > 1:
        rows, cols = (patch.shape[0] // factor) * factor, (patch.shape[1] // factor) * factor
        small = cv2.resize(patch[:rows, :cols], (cols // factor, rows // factor), interpolation=cv2.INTER_AREA)
    else:
        small = patch
    local = Square((square.cx - x0) / factor, (square.cy - y0) / factor, square.side / factor, square.angle)
    big = cv2.warpAffine(
        small, source_to_crop(local, supersample * size), (supersample * size,) * 2, flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    return big if supersample == 1 else cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


class EyeFinder:
    """Both eyes inside a face box, from OpenCV's eye cascade, or None when no plausible pair is found.

    With the last eyes known, each is searched for in a window about it at nearby sizes (a fraction of the upper
    face's cost); the whole upper face is searched when that fails or nothing is known.
    """

    def __init__(self) -> None:
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + EYE_CASCADE)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV's {EYE_CASCADE} could not be loaded (is opencv-python >= 4.8, < 5 installed?)")

    def find(self, gray: np.ndarray, box: Box, last: Eyes | None = None) -> Eyes | None:
        if last is not None:
            found = [self._near(gray, point, last.size) for point in (last.left, last.right)]
            if all(f is not None for f in found):
                eyes = _pair(found, box)
                if eyes is not None:
                    return eyes
        return _pair(self._upper_face(gray, box), box)

    def _upper_face(self, gray: np.ndarray, box: Box) -> list[tuple[float, float, float]]:
        scale = SEARCH_WIDTH / box.w
        x0, y0 = max(0, int(box.x)), max(0, int(box.y + 0.12 * box.h))
        region = gray[y0 : max(y0, int(box.y + 0.62 * box.h)), x0 : max(x0, int(box.x + box.w))]
        return self._detect(region, scale, (x0, y0), 0.15 * SEARCH_WIDTH, 0.4 * SEARCH_WIDTH)

    def _near(self, gray: np.ndarray, point: tuple[float, float], size: float) -> tuple[float, float, float] | None:
        scale, reach = TRACK_EYE_SIDE / size, 0.9 * size
        x0, y0 = max(0, int(point[0] - reach)), max(0, int(point[1] - reach))
        region = gray[y0 : max(y0, int(point[1] + reach) + 1), x0 : max(x0, int(point[0] + reach) + 1)]
        found = self._detect(region, scale, (x0, y0), 0.8 * TRACK_EYE_SIDE, 1.25 * TRACK_EYE_SIDE, step=1.2)
        near = lambda f: math.hypot(f[0] - point[0], f[1] - point[1])  # noqa: E731
        return min(found, key=near) if found else None

    def _detect(
        self,
        region: np.ndarray,
        scale: float,
        origin: tuple[int, int],
        min_side: float,
        max_side: float,
        step: float = 1.15,
    ) -> list[tuple[float, float, float]]:
        """Eye boxes in a region of the source, searched at `scale` -> (centre x, centre y, side) in source pixels."""
        if min(region.shape[:2]) * scale < min_side:
            return []
        small = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        boxes = self._cascade.detectMultiScale(
            small, scaleFactor=step, minNeighbors=3, minSize=(int(min_side),) * 2, maxSize=(int(max_side) + 1,) * 2
        )
        return [(origin[0] + (x + w / 2) / scale, origin[1] + (y + h / 2) / scale, w / scale) for x, y, w, h in boxes]


def _eyes_in_crop(crop: CropParams, size: int) -> np.ndarray:
    """Where square_from_eyes puts the eye centres in a size x size crop (pixel centres): the same for every face."""
    eyes = Eyes((100.0, 100.0), (200.0, 100.0), 20.0)
    affine = source_to_crop(square_from_eyes(eyes, crop), size)
    return (eyes.array - 0.5) @ affine[:, :2].T + affine[:, 2]


@dataclass
class EccRegistrar:
    """Registers each face to the person's own mean face with cv2.findTransformECC (Evangelidis and Psarakis 2008,
    "Parametric image alignment using enhanced correlation coefficient maximization"): a rotation and shift of
    the grey crop that best matches the template over the upper face (eyes, brows, nose; the mouth, which
    expressions move, is left out), found to a fraction of a pixel. The template is the mean of the first frames
    aligned by their eyes. The result comes back as the eye positions it implies, for the smoothing to use.
    """

    crop: CropParams
    template: np.ndarray | None = None
    _collected: list = field(default_factory=list)

    def __post_init__(self) -> None:
        side = ECC_SIZE + 2 * ECC_MARGIN
        self._mask = np.zeros((side, side), np.uint8)
        self._mask[: ECC_MARGIN + round(0.6 * ECC_SIZE)] = 255
        self._eyes = _eyes_in_crop(self.crop, ECC_SIZE)

    def collect(self, gray: np.ndarray, eyes: Eyes) -> None:
        """Add a frame aligned by its eyes to the template, until it has ECC_TEMPLATE_FRAMES of them."""
        if self.template is None:
            self._collected.append(cut(gray, square_from_eyes(eyes, self.crop), ECC_SIZE, 1).astype(np.float32))
            if len(self._collected) == ECC_TEMPLATE_FRAMES:
                self.template, self._collected = np.mean(self._collected, axis=0), []

    def register(self, gray: np.ndarray, eyes: Eyes) -> Eyes | None:
        """The eyes as registration to the template places them, starting from `eyes`; None if it fails."""
        square = square_from_eyes(eyes, self.crop)
        outer = Square(square.cx, square.cy, square.side * (ECC_SIZE + 2 * ECC_MARGIN) / ECC_SIZE, square.angle)
        patch = cut(gray, outer, ECC_SIZE + 2 * ECC_MARGIN, 1).astype(np.float32)
        warp = np.array([[1, 0, ECC_MARGIN], [0, 1, ECC_MARGIN]], np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4)
        try:
            rho, warp = cv2.findTransformECC(self.template, patch, warp, cv2.MOTION_EUCLIDEAN, criteria, self._mask, 3)
        except cv2.error:  # no convergence: the frame keeps its eyes
            return None
        if rho < ECC_MIN_CORRELATION:
            return None
        in_patch = self._eyes @ warp[:, :2].T.astype(np.float64) + warp[:, 2]  # template pixels -> patch pixels
        back = cv2.invertAffineTransform(source_to_crop(outer, ECC_SIZE + 2 * ECC_MARGIN))
        points = in_patch @ back[:, :2].T + back[:, 2] + 0.5  # patch pixels -> source pixel corners
        return Eyes.from_array(points, eyes.size)


def _pair(candidates: list[tuple[float, float, float]], box: Box) -> Eyes | None:
    """The two candidates most like a pair of eyes in this face box: in its upper part, apart by a quarter to 0.7
    of its width, tilted by less than about 27 degrees, of similar size; among those, the most central and level."""
    inside = [c for c in candidates if box.x < c[0] < box.x + box.w and box.y < c[1] < box.y + 0.7 * box.h]
    best, best_cost = None, math.inf
    for i, a in enumerate(inside):
        for b in inside[i + 1 :]:
            left, right = (a, b) if a[0] < b[0] else (b, a)
            dx, dy = right[0] - left[0], right[1] - left[1]
            if not (0.25 * box.w < dx < 0.7 * box.w and abs(dy) < 0.5 * dx and 2 / 3 < left[2] / right[2] < 1.5):
                continue
            cost = abs((left[0] + right[0]) / 2 - box.cx) / box.w + abs(dy) / dx
            if cost < best_cost:
                best, best_cost = Eyes(left[:2], right[:2], (left[2] + right[2]) / 2), cost
    return best


def _inside(eyes: Eyes, box: Box) -> bool:
    """Whether both eyes still lie in the upper part of the face box (registration did not wander off)."""
    return all(box.x < x < box.x + box.w and box.y < y < box.y + 0.7 * box.h for x, y in (eyes.left, eyes.right))


@dataclass
class _Seen(Generic[T]):
    item: T
    time_s: float
    eyes: Eyes
    found: bool  # False: the box's estimate of the eyes stands in


@dataclass
class FaceAligner(Generic[T]):
    """Frames' face boxes in time order -> each frame's crop square, once the frames around it are known.

    `push(item, time_s, gray, box)` takes one frame (`box` None when it has no face; `item` comes back with its
    square) and yields (item, square, eyes found) for each frame whose square is now settled: with method "none" at
    once; with "eyes" when every frame up to 2 sd of smoothing later has come in (0.25 s of video by default),
    since a frame's eyes are a Gaussian-weighted mean over the frames around it. `flush()` yields the rest at the
    end. `independent` frames (a folder of photos) are neither tracked nor smoothed. `causal` (the live view)
    settles each frame at once, from the frames before it alone, over a quarter of the sd: a mean over the past
    lags behind a moving face, and the live view's 30 frames a second need less smoothing than 8 do.
    """

    params: AlignParams = field(default_factory=AlignParams)
    crop: CropParams = field(default_factory=CropParams)
    independent: bool = False
    causal: bool = False

    def __post_init__(self) -> None:
        if self.params.method not in ALIGN_METHODS:
            raise ValueError(f"alignment method {self.params.method!r}: use one of {', '.join(ALIGN_METHODS)}")
        self._finder = EyeFinder() if self.params.method != "none" else None
        # Photos are aligned alone: a template of "the person's mean face" needs a track of frames.
        use_ecc = self.params.method == "eyes+ecc" and not self.independent
        self._ecc = EccRegistrar(self.crop) if use_ecc else None
        self._since_check = 0
        self._sd = 0.0 if self.independent else self.params.smooth_s / (4 if self.causal else 1)
        self._reach = 2 * self._sd  # how far apart in time two frames may be and still smooth each other
        self._lookahead = 0.0 if self.causal else self._reach
        self._window: deque[_Seen[T]] = deque()  # frames within reach of one not yet settled, in time order
        self._next = 0  # index in _window of the first frame not yet settled
        self._last: Eyes | None = None  # the last frame's eyes, while the face is tracked

    def push(self, item: T, time_s: float, gray: np.ndarray, box: Box | None) -> Iterator[tuple[T, Square, bool]]:
        if box is not None and self._finder is None:
            yield item, square_from_box(box, self.crop), False
            return
        if box is not None:
            eyes = self._measure(gray, box)
            self._window.append(_Seen(item, time_s, eyes or eyes_in_box(box), eyes is not None))
        else:
            self._last = None
        yield from self._settle(time_s)

    def _measure(self, gray: np.ndarray, box: Box) -> Eyes | None:
        """This frame's eyes: from the eye cascade, or registered to the template from the last frame's eyes
        (the cascade then runs only every ECC_CHECK_EVERY frames, or when registration fails)."""
        ecc = self._ecc
        if ecc is not None and ecc.template is not None and self._last is not None:
            self._since_check += 1
            if self._since_check < ECC_CHECK_EVERY:
                registered = ecc.register(gray, self._last)
                if registered is not None and _inside(registered, box):
                    self._last = registered
                    return registered
        self._since_check = 0
        eyes = self._finder.find(gray, box, None if self.independent else self._last)
        if eyes is not None and ecc is not None:
            if ecc.template is None:
                ecc.collect(gray, eyes)
            else:
                eyes = ecc.register(gray, eyes) or eyes
        self._last = eyes
        return eyes

    def flush(self) -> Iterator[tuple[T, Square, bool]]:
        yield from self._settle(math.inf)

    def _settle(self, now: float) -> Iterator[tuple[T, Square, bool]]:
        while self._next < len(self._window) and self._window[self._next].time_s + self._lookahead <= now:
            seen = self._window[self._next]
            yield seen.item, square_from_eyes(self._smoothed(seen), self.crop), seen.found
            self._next += 1
        # Frames further back than one reach from the first unsettled one are nobody's neighbours any more.
        horizon = self._window[self._next].time_s if self._next < len(self._window) else now
        while self._window and self._next > 0 and self._window[0].time_s < horizon - self._reach:
            self._window.popleft()
            self._next -= 1

    def _smoothed(self, seen: _Seen[T]) -> Eyes:
        """A Gaussian-weighted mean over time of the eyes within reach, leaving out any far from their median
        (a false detection), and giving the box's stand-in estimates a tenth of a found pair's weight."""
        near = [s for s in self._window if abs(s.time_s - seen.time_s) <= self._reach]
        if len(near) < 2 or self._sd == 0:
            return seen.eyes
        points = np.stack([s.eyes.array for s in near])  # n x 2 eyes x (x, y)
        mids, half = points.mean(axis=1), len(near) // 2
        middle = np.sort(mids, axis=0)[half]  # a median (the upper one of an even count) without np.median's cost
        gap = np.sort(np.hypot(*(points[:, 1] - points[:, 0]).T))[half]
        keep = np.hypot(*(mids - middle).T) <= 0.35 * gap
        dt = np.array([s.time_s - seen.time_s for s in near]) / self._sd
        weight = np.exp(-0.5 * dt**2) * np.where([s.found for s in near], 1.0, 0.1) * keep
        if weight.sum() == 0:
            return seen.eyes
        mean = np.tensordot(weight / weight.sum(), points, axes=1)
        return Eyes.from_array(mean, seen.eyes.size)
