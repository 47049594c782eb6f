"""Sample sets with a known flaw, made from real crops: what a sample-quality score must rank below real frames.

Each takes uint8 N x H x W x 3 RGB crops and returns a set of the same kind, deterministic for a seed:

    blurred            a Gaussian blur of `sigma` pixels (a VAE's typical flaw, in degrees)
    noised             Gaussian pixel noise of `sigma` on [0, 1] values, clipped
    one_face           the first crop, repeated: total mode collapse
    copied_frames      `n_frames` crops spread over the set, each repeated: a model that replays a few frames
    another_person     an identity change of every crop (below)

`another_person` stands in for a different person, since the only real face this project may ship is the
astronaut's: the face is made 22% wider and 12% shorter about the crop centre (a rounder face with eyes, nose and
mouth in other places and proportions), then its colours move (hue turned by 36 degrees, saturation x0.6,
brightness x0.85: another skin tone and another lighting). Expression, pose and framing stay as they were, so a
feature space that separates it from the real crops responds to who is shown, not to what they do.
"""

from __future__ import annotations

import cv2
import numpy as np


def _check(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) == 0:
        raise ValueError(f"expected uint8 N x H x W x 3 crops, got {images.dtype} {images.shape}")
    return images


def blurred(images: np.ndarray, sigma: float) -> np.ndarray:
    images = _check(images)
    return np.stack([cv2.GaussianBlur(im, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT) for im in images])


def noised(images: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    images = _check(images)
    noise = np.random.default_rng(seed).normal(0.0, sigma * 255.0, images.shape)
    return np.clip(images + noise, 0, 255).round().astype(np.uint8)


def one_face(images: np.ndarray) -> np.ndarray:
    images = _check(images)
    return np.repeat(images[:1], len(images), axis=0)


def copied_frames(images: np.ndarray, n_frames: int = 10) -> np.ndarray:
    images = _check(images)
    picks = np.linspace(0, len(images) - 1, min(n_frames, len(images))).round().astype(int)
    return images[picks[np.arange(len(images)) % len(picks)]]


def another_person(images: np.ndarray) -> np.ndarray:
    """Every crop with another face shape and skin tone (see the module docstring)."""
    images = _check(images)
    h, w = images.shape[1:3]
    centre = np.array([w / 2 - 0.5, h / 2 - 0.5])
    # Inverse map: output pixel (x, y) reads the input at centre + (p - centre) / scale.
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = (centre[0] + (xs - centre[0]) / 1.22).astype(np.float32)
    map_y = (centre[1] + (ys - centre[1]) / 0.88).astype(np.float32)
    out = np.empty_like(images)
    for i, im in enumerate(images):
        warped = cv2.remap(im, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        hsv = cv2.cvtColor(warped, cv2.COLOR_RGB2HSV).astype(np.float32)  # OpenCV's hue runs 0-180
        hsv[..., 0] = (hsv[..., 0] + 18.0) % 180.0
        hsv[..., 1] *= 0.6
        hsv[..., 2] *= 0.85
        out[i] = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    return out


def degraded_sets(images: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Every flawed set above, in the order of the ranking test, from the same real crops."""
    return {
        "blur 1 px": blurred(images, 1.0),
        "blur 2 px": blurred(images, 2.0),
        "noise 0.05": noised(images, 0.05, seed),
        "noise 0.15": noised(images, 0.15, seed),
        "one face repeated": one_face(images),
        "10 training frames copied": copied_frames(images, 10),
        "another person": another_person(images),
    }


# What a sample-quality score must say about each flawed set, as (better set, worse set, measure): the first set
# scores better on the measure than the second ("real" is real crops in the generated set's place). Fidelity
# flaws (blur, noise, another person) must lower precision and density, diversity flaws (one face, a few frames)
# recall and coverage, every flaw raise the Fréchet distance, and stronger blur or noise more than weaker.
RANKING: tuple[tuple[str, str, str], ...] = (
    *[("real", s, m) for s in ("blur 1 px", "noise 0.05", "another person") for m in ("precision", "density")],
    *[("real", s, m) for s in ("one face repeated", "10 training frames copied") for m in ("recall", "coverage")],
    *[("real", s, "fd") for s in ("blur 1 px", "noise 0.05", "one face repeated", "10 training frames copied")],
    ("real", "another person", "fd"),
    *[
        (weak, strong, m)
        for weak, strong in (("blur 1 px", "blur 2 px"), ("noise 0.05", "noise 0.15"))
        for m in ("precision", "fd")
    ],
)


def ranking_margins(scores: dict[str, dict[str, float]]) -> list[tuple[str, float]]:
    """For each rule of RANKING, its description and the margin by which `scores` (set name -> measure -> value)
    keeps it, relative to the real set's value: > 0 kept, <= 0 broken. Lower is better for "fd" only."""
    out = []
    for better, worse, measure in RANKING:
        sign = -1.0 if measure == "fd" else 1.0
        scale = max(abs(scores["real"][measure]), 1e-12)
        margin = sign * (scores[better][measure] - scores[worse][measure]) / scale
        out.append((f"{measure}: {better} > {worse}" if sign > 0 else f"fd: {better} < {worse}", margin))
    return out
