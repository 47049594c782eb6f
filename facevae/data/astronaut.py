"""Real face crops without a video: skimage's astronaut photo, cut the way the crop cache cuts video frames."""

from __future__ import annotations

import cv2
import numpy as np

from facevae.data.faces import Box, CropParams, crop_square, load_cascade


def astronaut_crops(n: int = 200, seed: int = 0, size: int = 64) -> np.ndarray:
    """n real face crops from skimage.data.astronaut(), cut the way the crop cache cuts video frames -> uint8.

    The cascade's box on the photo, tightened to CropParams.scale (0.8) of its width and moved down by
    CropParams.shift_y (8%), then jittered as a tracked face jitters: centre +-5% of the box, side x0.92-1.08,
    brightness x0.75-1.25. A reference set of real crops for `face_detection_rate` that needs no video.
    """
    # skimage is needed for this test and benchmark set alone: not imported with the data package.
    from skimage.data import astronaut

    rgb = astronaut()
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    found = load_cascade().detectMultiScale(gray, 1.1, 5, minSize=(60, 60))
    x, y, w, h = (float(v) for v in max(found, key=lambda b: b[2] * b[3]))
    params = CropParams()
    rng = np.random.default_rng(seed)
    crops = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        dx, dy = rng.uniform(-0.05, 0.05, size=2) * w
        scale = params.scale * np.exp(rng.uniform(-0.08, 0.08))
        crop, _ = crop_square(rgb, Box(x + dx, y + dy, w, h), CropParams(scale, params.shift_y, size))
        crops[i] = np.clip(crop * rng.uniform(0.75, 1.25), 0, 255).astype(np.uint8)
    return crops
