"""The live view: one 1280x720 BGR image per frame, the same in a window and in a written video.

    +-----------------------------+------------------------------------+
    | the frame and its crop      | the training crops' mu on a plane, |
    | square                      | coloured by smile when known; the  |
    +--------------+--------------+ current point and a fading trail   |
    | the crop     | its recon-   +------------------------------------+
    |              | struction    | the current mu as bars, over the   |
    | FPS, latency, frame, time   | training mean +- 1 sd of each      |
    +-----------------------------+------------------------------------+

What never changes (panels, the training points, the bars' bands) is drawn once into a background; each frame
draws its own parts on a copy of it.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from facevae.data.video import Frame
from facevae.live.face import FaceCode
from facevae.live.latent_map import LatentMap

VIEW_SIZE = (1280, 720)  # fixed, so a written video has one size whatever the source's

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
