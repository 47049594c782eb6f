"""Logging a picture to whichever loggers the run has, and keeping the latest copy as a PNG in the run."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger

from facevae.core.files import atomic_file


def log_image(trainer: pl.Trainer, key: str, image: np.ndarray, caption: str | None = None) -> None:
    """Send an H x W x 3 uint8 image to W&B and TensorBoard; every logger setup also gets `images/<key>.png`."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            extra = {"caption": [caption]} if caption else {}
            logger.log_image(key=key, images=[image], step=trainer.global_step, **extra)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, trainer.global_step, dataformats="HWC")
    if trainer.default_root_dir:
        path = Path(trainer.default_root_dir) / "images" / (key.replace("/", "_") + ".png")
        with atomic_file(path) as tmp:
            ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            if not ok:
                raise ValueError(f"{key}: OpenCV could not encode a {image.shape} image as PNG")
            tmp.write_bytes(png.tobytes())


def figure_to_array(fig) -> np.ndarray:
    """A matplotlib figure rendered to an H x W x 3 uint8 array (and closed)."""
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    array = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return array
