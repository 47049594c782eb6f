"""One frame through the model: the tracked face, its crop, mu and reconstruction, and its point on the map.

Tracking, alignment and cropping are those that made the training crops, with the checkpoint's own detection, crop
and alignment settings, so the encoder sees what it was trained on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from facevae.core.tensors import to_float_images, to_uint8_hwc
from facevae.data.align import AlignParams, FaceAligner, cut
from facevae.data.faces import CropParams, DetectorParams, FaceTracker
from facevae.data.video import Frame
from facevae.live.latent_map import LatentMap


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
        # Aligned as training's crops were (the checkpoint's data.extraction.align), each frame at once from the ones
        # before it.
        self.aligner = FaceAligner(align or AlignParams(), crop, causal=True)
        self.device = next(model.parameters()).device

    def __call__(self, frame: Frame, clock: Stopwatch) -> FaceCode | None:
        box = self.tracker.update(frame.gray)
        settled = list(self.aligner.push(None, frame.time_s, frame.gray, box))
        clock.lap("detect")
        if not settled:
            return None
        crop = cut(frame.rgb(), settled[0][1], self.crop_params.size)
        square = settled[0][1].rect()
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
