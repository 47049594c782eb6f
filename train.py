"""python train.py [group=choice ...] [key=value ...]: train a beta-VAE on face crops of one person.

With no arguments it trains on the built-in demo video, making the video and its crop cache first when missing.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from facevae.errors import exit_on_error
from facevae.training import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_error
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get("val/loss")  # the value a Hydra sweeper (Optuna) minimises


if __name__ == "__main__":
    main()
