"""PSNR over a set of images, as train.py logs it, and the trivial baseline every PSNR is read against.

One definition everywhere a set's PSNR is reported (train.py's val/psnr and test/psnr through torchmetrics'
PeakSignalNoiseRatio, evaluate.py's `psnr`, the mean-face baseline): 10 log10(data_range^2 / MSE) with the MSE over
every pixel of every image of the set. The mean of per-image PSNRs is another number (higher, by Jensen's
inequality, the more the images differ in error); evaluate.py reports it as `psnr_frame_mean`.
"""

from __future__ import annotations

import numpy as np


def set_psnr(mse_per_image: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR of a set from each image's MSE (images of one size): 10 log10(data_range^2 / mean MSE)."""
    mse = float(np.mean(np.asarray(mse_per_image, dtype=np.float64)))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def mean_face_psnr(train: np.ndarray, images: np.ndarray) -> float:
    """PSNR (data_range 1) of the mean training face as the reconstruction of every one of `images` (uint8 crops):
    the trivial baseline a model has to beat."""
    mean = np.asarray(train, dtype=np.float64).mean(axis=0) / 255.0
    mse = np.mean((np.asarray(images, dtype=np.float64) / 255.0 - mean) ** 2, axis=tuple(range(1, np.ndim(images))))
    return set_psnr(mse)
