"""Face detection with OpenCV's Haar cascade, tracking one face through a video, and the tightened square crop.

Detection runs on a downscaled grayscale frame. While a face is tracked, the cascade searches only a window around
the last box at nearby scales, which is several times cheaper than a full-frame search and cannot be lured away by
face-like texture in the background; a full search happens only when the track is lost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np

CASCADE_FILE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class Box:
    """A square-ish face box in source pixels (x, y of the top-left corner)."""

    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    def scaled(self, s: float) -> Box:
        return Box(self.x * s, self.y * s, self.w * s, self.h * s)


@dataclass
class DetectorParams:
    detect_width: int = 320  # width of the grayscale frame the cascade sees
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_face: float = 0.12  # smaller boxes (as a share of the frame's height) are rejected as too small
    max_jump: float = 0.6  # a centre that moves more than this many box widths between kept frames is a jump
    reacquire: int = 3  # a jumped-to face seen this many kept frames in a row becomes the new track
    smoothing: float = 0.6  # weight of the new box in the running average (1 = no smoothing)
    lost_after: int = 8  # kept frames without a face after which the track is forgotten


def load_cascade() -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE_FILE)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's {CASCADE_FILE} could not be loaded (is opencv-python >= 4.8, < 5 installed?)")
    return cascade


@dataclass
class FaceTracker:
    """Feed it grayscale frames in time order; it returns the smoothed face box or None, counting each rejection."""

    params: DetectorParams = field(default_factory=DetectorParams)
    rejected: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._cascade = load_cascade()
        self._track: Box | None = None  # smoothed box, source pixels
        self._missing = 0
        self._pending: Box | None = None
        self._pending_count = 0
        self.last_candidates = 0  # faces the cascade found in the last frame
        self.last_rejection: str | None = None  # why the last frame gave no face, in words

    def update(self, gray: np.ndarray) -> Box | None:
        scale = self.params.detect_width / gray.shape[1]
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        candidates = [b.scaled(1 / scale) for b in self._detect(small, scale)]
        self.last_candidates, self.last_rejection = len(candidates), None
        box = self._choose(candidates, gray.shape[0])
        if box is None:
            self._missing += 1
            if self._missing >= self.params.lost_after:
                self._track = None
            return None
        self._missing = 0
        self._track = box if self._track is None else _blend(self._track, box, self.params.smoothing)
        return self._track

    def _detect(self, small: np.ndarray, scale: float) -> list[Box]:
        if self._track is not None:
            found = self._detect_near(small, self._track.scaled(scale))
            if found:
                return found
        # Search down to half the accepted size so that too-small faces are seen, and counted as such.
        min_side = max(16, int(self.params.min_face * small.shape[0] / 2))
        return self._cascade_boxes(small, min_side, max(small.shape))

    def _detect_near(self, small: np.ndarray, track: Box) -> list[Box]:
        """Search a window twice the tracked box's size, at 0.7x to 1.4x its scale."""
        pad = track.w
        x0, y0 = max(0, int(track.x - pad / 2)), max(0, int(track.y - pad / 2))
        x1 = min(small.shape[1], int(track.x + track.w + pad / 2))
        y1 = min(small.shape[0], int(track.y + track.h + pad / 2))
        window = small[y0:y1, x0:x1]
        found = self._cascade_boxes(window, max(16, int(0.7 * track.w)), int(1.4 * track.w) + 1)
        return [Box(b.x + x0, b.y + y0, b.w, b.h) for b in found]

    def _cascade_boxes(self, image: np.ndarray, min_side: int, max_side: int) -> list[Box]:
        if min(image.shape[:2]) < min_side:
            return []
        boxes = self._cascade.detectMultiScale(
            image,
            scaleFactor=self.params.scale_factor,
            minNeighbors=self.params.min_neighbors,
            minSize=(min_side, min_side),
            maxSize=(max_side, max_side),
        )
        return [Box(*map(float, b)) for b in boxes]

    def _choose(self, candidates: list[Box], frame_height: int) -> Box | None:
        if not candidates:
            self.rejected["no_face"] += 1
            self.last_rejection = "no face found"
            return None
        if self._track is not None:
            best = min(candidates, key=lambda b: np.hypot(b.cx - self._track.cx, b.cy - self._track.cy))
        else:
            best = max(candidates, key=lambda b: b.w * b.h)
        if best.h < self.params.min_face * frame_height:
            self.rejected["too_small"] += 1
            self.last_rejection = (
                f"face too small ({best.h:.0f} px of {frame_height}; data.extraction.min_face={self.params.min_face:g} "
                "of the height)"
            )
            return None
        if self._track is not None and self._is_jump(best):
            return self._reacquire(best)
        self._pending, self._pending_count = None, 0
        return best

    def _is_jump(self, box: Box) -> bool:
        dist = np.hypot(box.cx - self._track.cx, box.cy - self._track.cy)
        return dist > self.params.max_jump * self._track.w or not 0.5 < box.w / self._track.w < 2.0

    def _reacquire(self, box: Box) -> Box | None:
        """A sudden jump is rejected, unless the face stays at the new place: then the track moves there."""
        if self._pending is not None and np.hypot(box.cx - self._pending.cx, box.cy - self._pending.cy) < (
            self.params.max_jump * self._pending.w
        ):
            self._pending_count += 1
        else:
            self._pending_count = 1
        self._pending = box
        if self._pending_count >= self.params.reacquire:
            self._track, self._pending, self._pending_count = None, None, 0
            return box
        self.rejected["jump"] += 1
        return None


def _blend(old: Box, new: Box, weight: float) -> Box:
    mix = lambda a, b: (1 - weight) * a + weight * b  # noqa: E731
    w = mix(old.w, new.w)
    h = mix(old.h, new.h)
    return Box(mix(old.cx, new.cx) - w / 2, mix(old.cy, new.cy) - h / 2, w, h)


@dataclass
class CropParams:
    scale: float = 0.8  # side of the square crop as a share of the Haar box's width: < 1 cuts ears and hair
    shift_y: float = 0.08  # centre moved down by this share of the box: Haar boxes sit high (forehead)
    size: int = 64


def crop_square(rgb: np.ndarray, box: Box, params: CropParams) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The tightened square around the face, resized to params.size with area interpolation.

    Returns the crop and its (x, y, side, side) rectangle in source pixels. Parts outside the frame are filled by
    repeating the edge, so a face at the border still gives a full-size crop.
    """
    side = max(2, int(round(params.scale * box.w)))
    cx, cy = box.cx, box.cy + params.shift_y * box.h
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    return cut_upright(rgb, x0, y0, side, params.size), (x0, y0, side, side)


def cut_upright(rgb: np.ndarray, x0: int, y0: int, side: int, size: int) -> np.ndarray:
    """The square of whole source pixels at (x0, y0), resized to size x size by area; the frame's edge repeats
    where the square leaves it."""
    h, w = rgb.shape[:2]
    top, left = max(0, -y0), max(0, -x0)
    bottom, right = max(0, y0 + side - h), max(0, x0 + side - w)
    patch = rgb[max(0, y0) : min(h, y0 + side), max(0, x0) : min(w, x0 + side)]
    if top or left or bottom or right:
        patch = cv2.copyMakeBorder(patch, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
